"""QEMU mps2-an500 process management with the real firmware: start, pty, semihosting exit, the emulate command."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from nanodet_mcu.device.emulator import Emulator, check_elf
from nanodet_mcu.errors import NanodetError
from nanodet_mcu.link.client import DeviceClient
from nanodet_mcu.link.transport import SerialTransport
from tests import firmware_builds
from tests.conftest import require_tool


@pytest.fixture(scope="module")
def elf(nxp_model_path, example_image, val_images):
    require_tool("qemu-system-arm")
    return firmware_builds.aot_firmware(nxp_model_path, firmware_builds.ci_images(example_image, val_images))[1]


def test_check_elf_refuses_what_qemu_cannot_run(tmp_path):
    text = tmp_path / "fw.elf"
    text.write_text("not an elf")
    with pytest.raises(NanodetError, match="not a 32-bit Arm ELF"):
        check_elf(text)
    with pytest.raises(NanodetError, match="not a 32-bit Arm ELF"):
        check_elf(sys.executable)  # a host ELF
    with pytest.raises(NanodetError, match="cannot read firmware"):
        check_elf(tmp_path / "missing.elf")


@pytest.mark.parametrize("code,qemu_status", [(0, 0), (3, 1)])
def test_firmware_runs_and_exits_through_semihosting(elf, code, qemu_status):
    with Emulator(elf) as emu:
        assert emu.port.startswith("/dev/")
        with SerialTransport(emu.port) as t:
            client = DeviceClient(t, timeout=2.0)
            assert client.hello().board == "mps2-an500"
            client.shutdown(code)
        assert emu.wait(10) == qemu_status
        assert not emu.running()


def _default_sigint() -> None:
    """Ctrl-C at a terminal reaches a foreground job, whose SIGINT is never ignored; a test run started in the
    background (`pytest &` in a script) hands its children SIGINT ignored, so restore the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_emulate_command_prints_the_port_and_stops_on_ctrl_c(elf):
    proc = subprocess.Popen([sys.executable, "-m", "nanodet_mcu", "emulate", str(elf)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=_default_sigint)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serial port: /dev/"), line + proc.stderr.read()
        port = line.split(": ", 1)[1].strip()
        with SerialTransport(port) as t:
            assert DeviceClient(t).hello().engine == "aot"
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not os.path.exists(port) or not _qemu_holds(port)


def _qemu_holds(port: str) -> bool:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return any("qemu-system-arm" in ln and "mps2-an500" in ln for ln in out.splitlines()) and os.path.exists(port)
