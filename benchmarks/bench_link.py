"""Link figures on the emulated board: round-trip time, bulk throughput both ways, and what verify sees through a
faulty link (the tests' pty proxy dropping/flipping/duplicating bytes at a set rate).

Needs a built mps2-an500 firmware (generate --board mps2-an500 + build):

    /work/venv/bin/python benchmarks/bench_link.py ELF [--faults 1e-5,1e-4,3e-4,1e-3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nanodet_mcu.device.emulator import Emulator  # noqa: E402
from nanodet_mcu.errors import NanodetError  # noqa: E402
from nanodet_mcu.link import protocol as p  # noqa: E402
from nanodet_mcu.link.client import DeviceClient  # noqa: E402
from nanodet_mcu.link.transport import SerialTransport  # noqa: E402
from tests.pty_fault_proxy import FaultProxy  # noqa: E402


def clean_link(elf: str) -> None:
    with Emulator(elf) as emu, SerialTransport(emu.port) as t:
        c = DeviceClient(t)
        c.hello()
        n = 50
        t0 = time.perf_counter()
        for _ in range(n):
            c.hello()
        print(f"HELLO round trip      {(time.perf_counter() - t0) / n * 1e3:8.2f} ms")
        t0 = time.perf_counter()
        c.read(p.REGION_IMAGE, 307200, 0)
        dt = time.perf_counter() - t0
        print(f"device -> host        {307200 / dt / 1e3:8.1f} KB/s  (307200 B image read-back in {dt:.2f} s)")
        data = bytes(61440)
        t0 = time.perf_counter()
        c.upload(p.UPLOAD_INT8, data)
        dt = time.perf_counter() - t0
        print(f"host -> device        {len(data) / dt / 1e3:8.1f} KB/s  (307200 B upload would take "
              f"{307200 / (len(data) / dt):.1f} s)")
        t0 = time.perf_counter()
        c.run(p.SOURCE_EMBEDDED, 0)
        print(f"RUN (embedded #0)     {time.perf_counter() - t0:8.2f} s wall")


def faulty_link(elf: str, rate: float, nbytes: int = 100_000) -> None:
    with Emulator(elf) as emu, FaultProxy(emu.port, rate, seed=7) as proxy, SerialTransport(proxy.port) as t:
        c = DeviceClient(t, timeout=0.3, retries=10)
        t0 = time.perf_counter()
        try:
            c.hello()
            c.read(p.REGION_IMAGE, nbytes, 0)
            outcome = "ok"
        except NanodetError as exc:
            outcome = f"FAILED cleanly: {str(exc)[:60]}"
        dt = time.perf_counter() - t0
        print(f"fault rate {rate:7.0e}: {sum(proxy.faults.values()):4d} faults {proxy.faults}, "
              f"{c.stats.retries:4d} retries, {t.decoder.bad_frames:4d} bad frames, {nbytes / dt / 1e3:7.1f} KB/s "
              f"-> {outcome}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("elf")
    ap.add_argument("--faults", default="1e-5,1e-4,3e-4,1e-3")
    args = ap.parse_args()
    clean_link(args.elf)
    for rate in (float(r) for r in args.faults.split(",") if r):
        faulty_link(args.elf, rate)


if __name__ == "__main__":
    main()
