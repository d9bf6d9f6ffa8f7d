"""Build C sources into a shared library for the host, cached by content, for ctypes.

Used by the `c` decoder and the `aot` interpreter: the same C that runs on the board runs here.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from nanodet_mcu import outputs
from nanodet_mcu.errors import NanodetError

DEFAULT_FLAGS = ("-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared")


def cache_dir() -> Path:
    base = os.environ.get("NANODET_MCU_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "nanodet-mcu")
    return Path(base) / "hostcc"


def cache_error(exc: OSError) -> NanodetError:
    return NanodetError(f"cannot use the cache directory {cache_dir().parent} ({exc.strerror or exc}: "
                        f"{exc.filename}); set NANODET_MCU_CACHE to a writable directory")


def compiler() -> str:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise NanodetError(f"no C compiler found ('{cc}'); install gcc or set CC")
    return cc


def build_shared_library(name: str, sources: list[Path], include_dirs: list[Path] = (),
                         flags: tuple[str, ...] = DEFAULT_FLAGS) -> Path:
    """Compile `sources` into lib<name>.so, reusing a cached build when nothing that goes into it changed."""
    cc = compiler()
    key = hashlib.sha256()
    key.update(" ".join((cc, *flags)).encode())
    for inc in include_dirs:
        for header in sorted(Path(inc).glob("*.h")):
            key.update(header.name.encode() + header.read_bytes())
    for src in sources:
        key.update(Path(src).name.encode() + Path(src).read_bytes())
    out_dir = cache_dir() / f"{name}-{key.hexdigest()[:20]}"
    lib = out_dir / f"lib{name}.so"
    if lib.exists():
        return lib
    try:
        created = outputs.make_dirs(out_dir)
        with tempfile.NamedTemporaryFile(dir=out_dir, suffix=".so", delete=False) as tmp:
            tmp_path = Path(tmp.name)
    except OSError as exc:
        raise cache_error(exc) from None
    try:
        cmd = [cc, *flags, *(f"-I{d}" for d in include_dirs), *map(str, sources), "-o", str(tmp_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            first = next((ln for ln in lines if "error" in ln), lines[0] if lines else f"{cc} exit {proc.returncode}")
            raise NanodetError(f"host build of {name} failed: {first.strip()}")
        tmp_path.replace(lib)  # atomic: a concurrent or interrupted build never leaves a half-written library
    except BaseException:  # a failed or interrupted build leaves nothing in the cache
        tmp_path.unlink(missing_ok=True)
        outputs.remove_dirs(created)
        raise
    return lib
