"""QEMU's mps2-an500 (Cortex-M7) running a firmware ELF, its UART0 on a pty the link can open like a serial port.

-icount shift=0 makes the emulation deterministic: one instruction per virtual nanosecond, so SysTick (25 MHz core
clock model) advances one tick per 40 instructions and the device's timer counts emulated instructions.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from nanodet_mcu.errors import NanodetError

QEMU = "qemu-system-arm"
MACHINE = "mps2-an500"
_PTY_LINE = re.compile(r"char device redirected to (\S+) \(label serial0\)")
_EM_ARM = 40


def qemu_binary() -> str:
    path = shutil.which(os.environ.get("NANODET_MCU_QEMU", QEMU))
    if path is None:
        raise NanodetError(f"{QEMU} not found: install it (Debian: apt install qemu-system-arm)")
    return path


def check_elf(elf: str | Path) -> Path:
    p = Path(elf)
    try:
        head = p.read_bytes()[:20]
    except OSError as exc:
        raise NanodetError(f"cannot read firmware {p}: {exc.strerror or exc}") from exc
    if head[:4] != b"\x7fELF" or len(head) < 20 or head[4] != 1 or int.from_bytes(head[18:20], "little") != _EM_ARM:
        raise NanodetError(f"{p} is not a 32-bit Arm ELF (build the project with `nanodet-mcu build`)")
    return p


def qemu_command(elf: Path, qemu: str) -> list[str]:
    return [qemu, "-M", MACHINE, "-nographic", "-kernel", str(elf), "-icount", "shift=0",
            "-serial", "pty", "-monitor", "none", "-semihosting"]


class Emulator:
    """`with Emulator(elf) as emu: use emu.port` starts QEMU and always stops it."""

    def __init__(self, elf: str | Path, start_timeout: float = 15.0):
        self.elf = check_elf(elf)
        self.start_timeout = start_timeout
        self.port: str | None = None
        self._proc: subprocess.Popen | None = None
        self._log = None

    @property
    def command(self) -> list[str]:
        return qemu_command(self.elf, qemu_binary())

    def start(self) -> str:
        # QEMU's console output goes to a file, not a pipe: an unread pipe could fill and stall the emulation.
        self._log = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - open for the emulator's lifetime
        self._proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            m = _PTY_LINE.search(self.output())
            if m:
                self.port = m.group(1)
                return self.port
            if self._proc.poll() is not None:
                break
            time.sleep(0.02)
        out = self.output().strip().splitlines()
        self.stop()
        raise NanodetError(f"QEMU did not offer its serial port: {out[-1] if out else 'no output'}")

    def output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def fatal_line(self) -> str | None:
        """QEMU's own complaint (`qemu: fatal: Lockup ...`, `qemu-system-arm: ...`), if it printed one."""
        return next((line.strip() for line in self.output().splitlines()
                     if line.startswith(("qemu: fatal:", "qemu-system-arm:"))), None)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout: float) -> int | None:
        """Exit code once QEMU ends (semihosting exit), or None if it is still running after `timeout`."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> int | None:
        proc, self._proc = self._proc, None
        code = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.send_signal(signal.SIGCONT)  # a stopped QEMU (SIGSTOP, a debugger) handles SIGTERM only then
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            code = proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
