"""Seed inputs for fuzz_app (one request script per file; format in fuzz_app.c): python fuzz/make_seeds.py OUT_DIR
(fuzz/run_fuzz.sh and tests/test_protocol_fuzz.py write them into their corpus; they are generated, not stored).

Besides single requests, the seeds hold whole sessions as the host runs them (a 307200-byte upload in 4 KB frames,
retried and halved chunks, RUN, chunked READs), the golden frames of tests/golden as raw bytes, and frames at the
4096-byte payload limit and just past it: the fuzzer mutates from there instead of growing inputs byte by byte.
"""
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nanodet_mcu.link import protocol as p  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMAGE_BYTES = 320 * 320 * 3


def frame(type_, seq, payload=b""):
    """Record 1: a frame the harness encodes with a good CRC."""
    return bytes([1, type_]) + struct.pack("<HH", seq, len(payload)) + payload


def raw(data: bytes) -> bytes:
    """Record 3: bytes as they are (whole recorded frames, cut frames, garbage)."""
    return b"".join(bytes([3]) + struct.pack("<H", len(data[i:i + 0xFFFF])) + data[i:i + 0xFFFF]
                    for i in range(0, len(data), 0xFFFF))


PAUSE = bytes([2])


def pixels(n: int, offset: int = 0, first: int = 0) -> bytes:
    """Image bytes without 0xFF (the harness reads 0xFF 0xFE as a pause on the line); byte 0 of the image is
    `first` (0xEE makes the harness's engine fail the RUN)."""
    data = bytearray((7 * (offset + i)) % 251 for i in range(n))
    if offset == 0 and n:
        data[0] = first
    return bytes(data)


def upload(kind: int, seq: int, chunks: list[int], total: int = IMAGE_BYTES, repeat_every: int = 0,
           first: int = 0) -> tuple[bytes, int]:
    """UPLOAD frames of the given chunk sizes (cycled) up to `total` bytes; every `repeat_every`-th chunk is sent
    twice with the same seq (a host retry after a lost ACK)."""
    out, offset, k = bytearray(), 0, 0
    while offset < total:
        n = min(chunks[k % len(chunks)], total - offset, p.MAX_UPLOAD_CHUNK)
        f = frame(p.UPLOAD, seq, p.upload_request(kind, offset, pixels(n, offset, first)))
        out += f + (f if repeat_every and k % repeat_every == 0 else b"")
        offset, seq, k = offset + n, seq + 1, k + 1
    return bytes(out), seq


def read_all(region: int, size: int, seq: int, index: int = 0, chunk: int = p.MAX_READ) -> tuple[bytes, int]:
    out, offset = bytearray(), 0
    while offset < size:
        n = min(chunk, size - offset)
        out += frame(p.READ, seq, p.read_request(region, index, offset, n))
        offset, seq = offset + n, seq + 1
    return bytes(out), seq


def session_rgb() -> bytes:
    seq = 100
    out = frame(p.HELLO, seq) + frame(p.IMAGE_INFO, seq + 1, p.image_info_request(0))
    up, seq = upload(p.UPLOAD_RGB888, seq + 2, [p.MAX_UPLOAD_CHUNK], repeat_every=25)
    out += up + frame(p.RUN, seq, p.run_request(p.SOURCE_UPLOAD)) + frame(p.RUN, seq, p.run_request(p.SOURCE_UPLOAD))
    scores, seq = read_all(p.REGION_SCORES, 8000, seq + 1)
    boxes, seq = read_all(p.REGION_BOXES, 3200, seq)
    image, seq = read_all(p.REGION_IMAGE, 3 * p.MAX_READ, seq, index=1)
    return out + scores + boxes + image + frame(p.SHUTDOWN, seq, b"\x00")


def session_int8_halving() -> bytes:
    """Chunks halving and growing as on a noisy link; the tensor starts with 0xEE, so the (harness) engine fails
    the RUN and the READ after it finds no outputs."""
    up, seq = upload(p.UPLOAD_INT8, 500, [4091, 2048, 1024, 512, 256, 256, 512, 1024, 2048], first=0xEE)
    scores, seq = read_all(p.REGION_SCORES, 8000, seq + 1, chunk=1024)
    return up + PAUSE + frame(p.RUN, seq, p.run_request(p.SOURCE_UPLOAD)) + scores


def near_limits() -> bytes:
    too_long = bytearray(p.encode(p.UPLOAD, 40, p.upload_request(1, 0, pixels(p.MAX_UPLOAD_CHUNK))))
    too_long[6:8] = struct.pack("<H", p.MAX_PAYLOAD + 1)  # a header announcing 4097 bytes: refused
    return (frame(p.UPLOAD, 30, p.upload_request(p.UPLOAD_RGB888, 0, pixels(p.MAX_UPLOAD_CHUNK)))  # payload 4096
            + frame(p.READ, 31, p.read_request(p.REGION_IMAGE, 0, IMAGE_BYTES - p.MAX_READ, p.MAX_READ))
            + frame(p.READ, 32, p.read_request(p.REGION_IMAGE, 0, 0, p.MAX_READ + 1))
            + frame(p.RUN, 33, pixels(p.MAX_PAYLOAD)) + raw(bytes(too_long)) + PAUSE
            + raw(p.encode(p.UPLOAD, 34, p.upload_request(1, 0, pixels(p.MAX_UPLOAD_CHUNK)))[:3000]) + PAUSE
            + frame(p.HELLO, 35) + bytes([0x81]) + frame(p.HELLO, 36)[1:])  # record bit 7: protocol version 2


def golden(names: list[str]) -> bytes:
    return b"".join(raw((ROOT / "tests" / "golden" / f"{n}.bin").read_bytes()) for n in names)


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
    "golden_requests": golden(["hello_request", "image_info_request", "upload_request", "run_request",
                               "read_request", "bad_crc", "flipped_payload_bit", "oversize_length", "stream_noise",
                               "shutdown_request"]),
    "golden_replies_sent_back": golden(["info_response", "data_response", "result_response", "busy_notice",
                                        "error_response"]),  # device frames (data_response: a 4 KB one) as requests
    "session_upload_rgb": session_rgb(),
    "session_upload_int8_halving": session_int8_halving(),
    "near_limits": near_limits(),
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



def write(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, data in SEEDS.items():
        (out / f"{name}.bin").write_bytes(data)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python fuzz/make_seeds.py OUT_DIR")
    write(Path(sys.argv[1]))
