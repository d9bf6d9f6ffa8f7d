"""Fault injection: a pty proxy between verify and the emulated board drops, flips and duplicates bytes (or corrupts
chosen reply frames); the emulator is frozen (SIGSTOP) or killed.  verify must either finish with every check passing
(the data that got through is exact) or fail with a clear one-line error inside the limits the user set; it must
never pass on wrong data, and never wait out a limit when asking again would do."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from nanodet_mcu.device.emulator import Emulator
from nanodet_mcu.errors import NanodetError
from nanodet_mcu.link import protocol as p
from nanodet_mcu.link.client import DeviceClient
from nanodet_mcu.link.transport import SerialTransport
from nanodet_mcu.verify import verifier as verify
from tests import firmware_builds
from tests.conftest import require_tool
from tests.pty_fault_proxy import FaultProxy


@pytest.fixture(scope="module")
def firmware(nxp_model_path, example_image, val_images):
    require_tool("qemu-system-arm")
    return firmware_builds.aot_firmware(nxp_model_path, firmware_builds.ci_images(example_image, val_images))[1]


def verify_through_proxy(elf, model, rate, seed, timeout=0.5, retries=6):
    with Emulator(elf) as emu, FaultProxy(emu.port, rate, seed) as proxy, SerialTransport(proxy.port) as t:
        client = DeviceClient(t, timeout=timeout, run_timeout=30.0, retries=retries)
        verifier = verify.Verifier(client, model)
        started = time.monotonic()
        try:
            report = verifier.run([verify.ImageInput("example", embedded_index=0)], runs=1)
            return report, None, proxy.faults, time.monotonic() - started
        except NanodetError as exc:
            return None, exc, proxy.faults, time.monotonic() - started


@pytest.mark.slow
@pytest.mark.parametrize("rate,seed", [(3e-5, 1)])
def test_low_fault_rate_recovers_and_passes(firmware, nxp_model_path, rate, seed):
    report, error, faults, _ = verify_through_proxy(firmware, nxp_model_path, rate, seed)
    assert error is None, f"{error} (faults {faults})"
    assert report.passed, [c.detail for c in report.checks if not c.passed]
    assert sum(faults.values()) > 0 and report.link["retries"] > 0  # the faults happened and were recovered


def test_high_fault_rate_fails_cleanly_in_bounded_time(firmware, nxp_model_path):
    report, error, faults, seconds = verify_through_proxy(firmware, nxp_model_path, 0.02, 3, timeout=0.3,
                                                          retries=3)
    assert report is None or report.passed  # never a pass on wrong data (and a completed run must be right)
    assert error is not None and ("no valid reply" in str(error) or "too noisy" in str(error))
    assert seconds < 10  # 4 attempts of 0.3 s per request, and it stops at the first request that fails


@pytest.mark.slow
def test_bulk_reads_through_every_fault_kind_arrive_exact(firmware):
    """100 KB of an embedded image through a link that drops, flips and duplicates 1 byte in 3000."""
    import numpy as np

    with Emulator(firmware) as emu:
        with SerialTransport(emu.port) as t:
            clean = DeviceClient(t).read(p.REGION_IMAGE, 100_000, 0)
        with FaultProxy(emu.port, 3e-4, 5) as proxy, SerialTransport(proxy.port) as t:
            client = DeviceClient(t, timeout=0.3, retries=10)
            noisy = client.read(p.REGION_IMAGE, 100_000, 0)
            assert min(proxy.faults.values()) >= 3, proxy.faults
            assert client.stats.retries > 0
    assert np.array_equal(np.frombuffer(noisy, np.uint8), np.frombuffer(clean, np.uint8))


@pytest.mark.slow
def test_one_corrupted_result_is_reasked_not_waited_for(firmware):
    """The RESULT after BUSY is lost: the host re-asks with the same seq after --timeout (then after the time the
    last inference took) and the device resends its cached RESULT; it used to wait out the whole --run-timeout."""
    with Emulator(firmware) as emu, FaultProxy(emu.port, 0.0, corrupt_replies={p.RESULT: 2}) as proxy, \
            SerialTransport(proxy.port) as t:
        client = DeviceClient(t, timeout=2.0, run_timeout=60.0, retries=2)
        client.hello()
        started = time.monotonic()
        first = client.run(p.SOURCE_EMBEDDED, 0)
        second = client.run(p.SOURCE_EMBEDDED, 0)
        seconds = time.monotonic() - started
        assert proxy.corrupted[p.RESULT] == 2 and client.stats.reasks >= 2  # each lost RESULT came by a re-ask
        assert first.detections == second.detections and first.input_crc32 == second.input_crc32
    assert seconds < 15, f"{seconds:.1f} s for two runs whose RESULT was lost once each (run timeout 60 s)"


def _frozen(emu):
    os.kill(emu._proc.pid, signal.SIGSTOP)  # the QEMU this test started


@pytest.mark.slow
@pytest.mark.parametrize("request_kind", ["read", "upload", "run"])
def test_frozen_device_fails_after_retries_times_timeout(firmware, request_kind):
    """SIGSTOP on QEMU: every request fails after (retries + 1) x timeout, bulk transfers included (their chunk
    halving used to take 13 attempts, and a blocked write 10 s more): it took 149 s with the defaults."""
    import numpy as np

    with Emulator(firmware) as emu, SerialTransport(emu.port) as t:
        client = DeviceClient(t, timeout=1.0, run_timeout=60.0, retries=2)
        client.hello()
        _frozen(emu)
        started = time.monotonic()
        with pytest.raises(NanodetError, match="stopped answering") as err:
            if request_kind == "read":
                client.read(p.REGION_IMAGE, 307200, 0)
            elif request_kind == "upload":
                client.upload_rgb(np.zeros((320, 320, 3), np.uint8))
            else:
                client.run(p.SOURCE_EMBEDDED, 0)
        seconds = time.monotonic() - started
    assert "after 3 attempts" in str(err.value)
    assert seconds < 3 * 1.0 + 3.0, seconds  # 3 s of attempts (the old halving made it 11 attempts, 11 s)


def _verify_cli(*args, timeout=300):
    proc = subprocess.run([sys.executable, "-m", "nanodet_mcu", "verify", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stderr


@pytest.mark.slow
def test_noisy_link_stops_at_the_deadline_with_progress_and_retry_rate(firmware, nxp_model_path):
    """1 byte in 1000 corrupted: verify is exact but slow; --deadline bounds it and the error says where it was
    (transfer, ETA) and how noisy the link is."""
    with Emulator(firmware) as emu, FaultProxy(emu.port, 1e-3, 3) as proxy:
        started = time.monotonic()
        code, err = _verify_cli("--port", proxy.port, "--model", nxp_model_path, "--timeout", "0.5",
                                "--deadline", "12")
        seconds = time.monotonic() - started
    last = err.strip().splitlines()[-1]
    assert code == 1 and "not done within --deadline 12 s" in last and "% of frames retried" in last, err
    assert "KB/s" in err and "Traceback" not in err
    assert seconds < 12 + 8, seconds  # the deadline counts from the start; the interpreter's start-up is extra


@pytest.mark.slow
def test_retry_rate_limit_says_link_too_noisy(firmware):
    with Emulator(firmware) as emu, FaultProxy(emu.port, 2e-3, 4) as proxy, SerialTransport(proxy.port) as t:
        client = DeviceClient(t, timeout=0.3, retries=10, max_retry_rate=0.05)
        with pytest.raises(NanodetError, match=r"link too noisy: \d+% of the last \d+ frames retried"):
            client.read(p.REGION_IMAGE, 307200, 0)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
def test_dead_or_frozen_emulator_under_verify(firmware, nxp_model_path, tmp_path, how):
    """verify --emulate whose QEMU is killed (or frozen) mid-upload: one line naming the emulator's death (not
    "write failed: [Errno 5]"), or the frozen device, within the user's limits."""
    import shutil

    from tests.conftest import shared_path

    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(shared_path("images/example_input.jpg"), images)
    proc = subprocess.Popen([sys.executable, "-m", "nanodet_mcu", "verify", "--emulate", str(firmware), "--model",
                             str(nxp_model_path), "--images", str(images), "--timeout", "1", "--retries", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    qemu = _child_qemu(proc.pid)
    time.sleep(3)  # mid-upload
    os.kill(qemu, getattr(signal, how))
    started = time.monotonic()
    _, err = proc.communicate(timeout=120)
    seconds = time.monotonic() - started
    lines = [ln for ln in err.splitlines() if not ln.startswith(("emulating ", "  "))]
    assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in err, err
    if how == "SIGKILL":
        assert "the emulator died (killed by SIGKILL) while verifying example_input.jpg" in lines[0]
    else:
        assert "stopped answering" in lines[0] and "after 3 attempts (1 s each" in lines[0]
    assert seconds < 3 * 1 + 3, seconds


def _child_qemu(parent: int, wait: float = 30.0) -> int:
    """The QEMU a verify process started (by parent pid, from /proc)."""
    until = time.monotonic() + wait
    while time.monotonic() < until:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if ppid == parent and b"qemu-system-arm" in cmd:
                return int(pid)
        time.sleep(0.1)
    raise AssertionError("verify did not start QEMU")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP"])
def test_killed_verify_stops_its_emulator(firmware, nxp_model_path, tmp_path, how):
    """A CI timeout (SIGTERM) or a closed terminal (SIGHUP) mid-upload: verify says so on one line, exits 128 + the
    signal, and its QEMU (in its own session, so the signal never reaches it) is stopped, not left spinning."""
    import shutil

    from tests.conftest import shared_path

    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(shared_path("images/example_input.jpg"), images)
    proc = subprocess.Popen([sys.executable, "-m", "nanodet_mcu", "verify", "--emulate", str(firmware), "--model",
                             str(nxp_model_path), "--images", str(images)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    qemu = _child_qemu(proc.pid)
    time.sleep(3)  # mid-upload
    signum = getattr(signal, how)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signum and f"verify: terminated by {how}" in err and "Traceback" not in err, err
    until = time.monotonic() + 5
    while os.path.exists(f"/proc/{qemu}") and time.monotonic() < until:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{qemu}"), "QEMU outlived the verify that started it"
