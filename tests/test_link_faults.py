"""Fault injection: a pty proxy between verify and the emulated board drops, flips and duplicates bytes.  verify
must either finish with every check passing (the data that got through is exact) or fail with a clear error inside
its time bound; it must never pass on wrong data."""
from __future__ import annotations

import time

import pytest

from nanodet_mcu.device.emulator import Emulator
from nanodet_mcu.errors import NanodetError
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
    assert error is not None and "no valid reply" in str(error)
    assert seconds < 10  # 4 attempts of 0.3 s per request, and it stops at the first request that fails


@pytest.mark.slow
def test_bulk_reads_through_every_fault_kind_arrive_exact(firmware):
    """100 KB of an embedded image through a link that drops, flips and duplicates 1 byte in 3000."""
    import numpy as np

    from nanodet_mcu.link import protocol as p

    with Emulator(firmware) as emu:
        with SerialTransport(emu.port) as t:
            clean = DeviceClient(t).read(p.REGION_IMAGE, 100_000, 0)
        with FaultProxy(emu.port, 3e-4, 5) as proxy, SerialTransport(proxy.port) as t:
            client = DeviceClient(t, timeout=0.3, retries=10)
            noisy = client.read(p.REGION_IMAGE, 100_000, 0)
            assert min(proxy.faults.values()) >= 3, proxy.faults
            assert client.stats.retries > 0
    assert np.array_equal(np.frombuffer(noisy, np.uint8), np.frombuffer(clean, np.uint8))
