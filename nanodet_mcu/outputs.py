"""What a command writes: checked before the work starts, written all together at the end, or not at all.

`check_file`/`check_dir` fail fast (before a conversion or a verify run) on a destination that cannot be written:
under a file, onto a directory, in a directory the user may not write to.  `Staged` collects a command's outputs and
commits them together: every file is first written to a temporary name beside its destination, then all are
renamed into place, so an error, a full disk or Ctrl-C leaves the old outputs (or none), never half of the new.
Directories made for outputs that were never committed are removed again.

`committing()` marks the commit: from there on SIGINT is deferred, so an interrupt just after the outputs are in
place cannot turn a complete, successful run into an "interrupted" exit (the CLI keeps it deferred to the end).
"""
from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from pathlib import Path

from nanodet_mcu.errors import NanodetError

HOLD_INTERRUPTS_AFTER_COMMIT = False  # the CLI sets this: once outputs are committed, the command runs to its end


def _what(option: str, target: Path) -> str:
    return f"{option} {target}" if option else str(target)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _existing_ancestor(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_writable(directory: Path, option: str, target: Path) -> None:
    """Create and remove a file: os.access says yes to root on read-only mounts and sysfs."""
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".nanodet-mcu-probe-")
    except OSError as exc:
        raise NanodetError(f"cannot write {_what(option, target)}: {directory} is not writable "
                           f"({_reason(exc)})") from None
    os.close(fd)
    os.unlink(tmp)


def _check_parents(target: Path, option: str) -> None:
    ancestor = _existing_ancestor(target.parent)
    if not ancestor.is_dir():
        raise NanodetError(f"cannot write {_what(option, target)}: {ancestor} is not a directory")
    _probe_writable(ancestor, option, target)


def check_file(path: str | Path, option: str) -> Path:
    """A file the command will write at `path` (made with its directories at commit time)."""
    target = Path(path)
    if target.is_dir():
        raise NanodetError(f"cannot write {_what(option, target)}: it is a directory")
    if target.exists() and not os.access(target, os.W_OK) and not os.access(target.parent, os.W_OK):
        raise NanodetError(f"cannot write {_what(option, target)}: permission denied")
    _check_parents(target, option)
    return target


def check_dir(path: str | Path, option: str) -> Path:
    """A directory the command will create or write files into."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise NanodetError(f"cannot write {_what(option, target)}: it exists and is not a directory")
    if target.is_dir():
        _probe_writable(target, option, target)
    else:
        _check_parents(target, option)
    return target


def same_file(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def make_dirs(directory: Path) -> list[Path]:
    """mkdir -p; returns the directories it created (deepest last), for removal when the outputs are abandoned."""
    missing = []
    p = Path(directory)
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            if not d.is_dir():
                raise
    return list(reversed(missing))


def remove_dirs(created: list[Path]) -> None:
    """Remove directories make_dirs created, deepest first, as long as they are empty."""
    for d in reversed(created):
        with contextlib.suppress(OSError):
            d.rmdir()


class Staged:
    """`with Staged() as out: out.add(path, data)...; out.commit()` - all files or none.

    Leaving the block without commit() (an error, Ctrl-C) removes the temporaries and the directories made for them.
    """

    def __init__(self):
        self._pending: list[tuple[Path, Path]] = []  # (temporary, destination)
        self._created: list[Path] = []
        self.committed = False

    def add(self, path: str | Path, data: bytes | str, mode: int = 0o644) -> None:
        dest = Path(path)
        if any(d.resolve() == dest.resolve() for _, d in self._pending):
            raise NanodetError(f"two outputs of this command would be written to {dest} (inputs with the same name?)")
        try:
            self._created += make_dirs(dest.parent)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        except OSError as exc:
            raise NanodetError(f"cannot write {dest}: {_reason(exc)}") from None
        self._pending.append((Path(tmp), dest))
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
            os.chmod(tmp, mode & ~_umask())
        except OSError as exc:
            raise NanodetError(f"cannot write {dest}: {_reason(exc)}") from None

    def commit(self) -> list[Path]:
        with committing():
            done = []
            try:
                for tmp, dest in self._pending:
                    os.replace(tmp, dest)
                    done.append(dest)
            except OSError as exc:
                raise NanodetError(f"cannot write {dest}: {_reason(exc)} ({len(done)} of {len(self._pending)} "
                                   "outputs were written)") from None
            self.committed = True
            self._pending = []
            return done

    def discard(self) -> None:
        for tmp, _ in self._pending:
            with contextlib.suppress(OSError):
                tmp.unlink()
        self._pending = []
        if not self.committed:
            remove_dirs(self._created)

    def __enter__(self) -> Staged:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def write_file(path: str | Path, data: bytes | str, mode: int = 0o644) -> None:
    """One file, whole or not at all."""
    with Staged() as out:
        out.add(path, data, mode)
        out.commit()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # what stops a command: Ctrl-C, kill, timeout, hang-up
_deferred: list[int] = []


def _defer(signum, frame) -> None:
    _deferred.append(signum)


@contextlib.contextmanager
def committing():
    """Defer SIGINT, SIGTERM and SIGHUP while outputs are moved into place (and, in the CLI, until the command
    returns); out of the CLI, a deferred signal is delivered to the restored handler once the files are in place."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _defer) for s in INTERRUPTS}
    try:
        yield
    finally:
        if not HOLD_INTERRUPTS_AFTER_COMMIT:
            for s, handler in previous.items():
                signal.signal(s, handler)
            deferred = list(dict.fromkeys(_deferred))
            _deferred.clear()
            for s in deferred:
                signal.raise_signal(s)
