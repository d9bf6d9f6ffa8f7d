"""Progress of the long steps on stderr: a live bar or line on a terminal, plain log lines otherwise.

`Steps` serves convert and evaluate, `TransferProgress` verify's link transfers.

Log lines (stderr is a file, a pipe or CI's log) say when a step starts, how far it is at most every
`LOG_EVERY_S` seconds, and how long it took, so a 40-100 s conversion is never silent:

    convert: refining the activation ranges (100 items)...
    convert: refining the activation ranges 33/100 (10.2 s)
    convert: refining the activation ranges done (29.8 s)

`QUIET` has the same interface and prints nothing (library calls and tests).
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager

LOG_EVERY_S = 10.0


class _Step:
    def __init__(self, owner: Steps, description: str, total: int | None):
        self.owner, self.description, self.total = owner, description, total
        self.done = 0
        self.start = self._last_log = time.monotonic()
        self.bar = self.task = None

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.advance(self.task, n)
            return
        now = time.monotonic()
        if self.owner.enabled and now - self._last_log >= self.owner.every_s and self.done != self.total:
            self._last_log = now
            count = f"{self.done}/{self.total}" if self.total else str(self.done)
            self.owner.log(f"{self.description} {count} ({now - self.start:.1f} s)")


class Steps:
    """`with steps.step("calibrating", total=100) as s: ... s.advance()`."""

    def __init__(self, prefix: str, stream=None, interactive: bool | None = None, every_s: float = LOG_EVERY_S,
                 enabled: bool = True):
        self.prefix = prefix
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.every_s = every_s
        self.enabled = enabled

    def log(self, message: str) -> None:
        if self.enabled:
            print(f"{self.prefix}: {message}", file=self.stream, flush=True)

    @contextmanager
    def step(self, description: str, total: int | None = None):
        step = _Step(self, description, total)
        if not self.enabled:
            yield step
            return
        if self.interactive and total:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(TextColumn(f"{self.prefix}: {description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=Console(file=self.stream), transient=True) as bar:
                step.bar, step.task = bar, bar.add_task(description, total=total)
                yield step
        else:
            self.log(f"{description}" + (f" ({total} items)" if total else "") + "...")
            yield step
        self.log(f"{description} done ({time.monotonic() - step.start:.1f} s)")


QUIET = Steps("", enabled=False)


class TransferProgress:
    """What verify is doing, on stderr: one live line on a terminal; in a log (stderr not a TTY), a line for a
    link transfer (`link.client.Transfer`) only once it has taken LOG_EVERY_S seconds, then every LOG_EVERY_S
    seconds and when it ends: the same cadence as `Steps`."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr  # looked up now: tests swap sys.stderr between runs
        self.tty = self.stream.isatty()
        self.stage = ""
        self._live = False
        self._transfer = None  # the transfer being logged, and when its last line was
        self._logged: float | None = None

    def message(self, text: str) -> None:
        self.stage = text.split(":")[0]
        if self.tty:
            self._show(f"  {text}")

    def transfer(self, t) -> None:
        line = f"  {self.stage + ': ' if self.stage else ''}{t.describe()}"
        if self.tty:
            self._show(line)
            return
        if t is not self._transfer:
            self._transfer, self._logged = t, None
        now = time.monotonic()
        last = self._logged
        if (last is None and t.seconds >= LOG_EVERY_S) or (last is not None and (now - last >= LOG_EVERY_S or t.final)):
            print(line, file=self.stream, flush=True)
            self._logged = now

    def _show(self, text: str) -> None:
        self.stream.write("\r\x1b[K" + text[:200])
        self.stream.flush()
        self._live = True

    def close(self) -> None:
        if self._live:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._live = False
