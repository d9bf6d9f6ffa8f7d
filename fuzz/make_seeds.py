"""Seed inputs for fuzz_app (one request script per file; format in fuzz_app.c).  python fuzz/make_seeds.py"""
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nanodet_mcu.link import protocol as p  # noqa: E402


def frame(type_, seq, payload=b""):
    return bytes([1, type_]) + struct.pack("<HH", seq, len(payload)) + payload


SEEDS = {
    "hello": frame(p.HELLO, 1),
    "image_info": frame(p.IMAGE_INFO, 2, p.image_info_request(1)) + frame(p.IMAGE_INFO, 3, p.image_info_request(9)),
    "run_read": frame(p.RUN, 4, p.run_request(0, 1)) + frame(p.READ, 5, p.read_request(0, 0, 0, 4091))
    + frame(p.READ, 6, p.read_request(2, 1, 307100, 100)),
    "upload_run": frame(p.UPLOAD, 7, p.upload_request(1, 0, bytes(64)))
    + frame(p.UPLOAD, 8, p.upload_request(1, 64, bytes(64))) + frame(p.RUN, 9, p.run_request(1)),
    "repeat": frame(p.RUN, 10, p.run_request(0, 0)) + frame(p.RUN, 10, p.run_request(0, 0)),
    "partial_then_pause": bytes([0, 6]) + p.encode(p.HELLO, 11)[:6] + bytes([2]) + frame(p.HELLO, 12),
    "shutdown": frame(p.SHUTDOWN, 13, b"\x00"),
    # step instrumentation: a timed and checksummed run, its records, a stopped run and its step outputs
    "steps_profile": frame(p.RUN, 14, p.run_request(0, 0, p.STEP_TIME | p.STEP_CRC))
    + frame(p.STEPS, 15, p.steps_request(0, 3)) + frame(p.STEPS, 16, p.steps_request(2, 0xFFFF)),
    "steps_stop_read": frame(p.RUN, 17, p.run_request(0, 1, p.STEP_STOP, 2))
    + frame(p.READ, 18, p.read_request(p.REGION_STEP_OUTPUT, 1, 3100, 100))
    + frame(p.READ, 19, p.read_request(p.REGION_STEP_OUTPUT, 0, 0, 4091)),
    "steps_refused": frame(p.RUN, 20, p.run_request(0, 0, 0x80, 0)) + frame(p.RUN, 21, p.run_request(0, 0, 4, 9))
    + frame(p.STEPS, 22, p.steps_request(3, 1)) + frame(p.STEPS, 23, b"\x00")
    + frame(p.READ, 24, p.read_request(p.REGION_STEP_OUTPUT, 0, 0, 1)),
}

if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "seeds_app"
    out.mkdir(exist_ok=True)
    for name, data in SEEDS.items():
        (out / f"{name}.bin").write_bytes(data)
