"""Writes the golden frames (run once; the files are committed and both codecs are tested against them).

    python tests/golden/make_golden.py

index.txt, one frame file a line: <file> <expect> <type> <seq> <payload bytes>
expect: ok (exactly one frame), crc (CRC failure, no frame), length (length refused, no frame), stream2 (two frames,
the listed one last, with garbage around them).
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from nanodet_mcu.floatbits import f32_bits  # noqa: E402
from nanodet_mcu.link import protocol as p  # noqa: E402

HERE = Path(__file__).resolve().parent

INFO = p.Info(1, "mps2-an500", "aot", "0.1.0", "ab" * 32, "systick-instructions", 25_000_000, 40, 921600, 115200, 0,
              4, 4096, 100, p.TensorDesc((1, 320, 320, 3), f32_bits(0.018658), -14),
              p.TensorDesc((1, 10, 10, 80), f32_bits(1 / 256), -128),
              p.TensorDesc((1, 10, 10, 32), f32_bits(0.07276), 18))
STEP_RECORDS = p.StepRecords(119, 119, p.STEP_TIME | p.STEP_CRC, 117,
                             ((26140, 0x9A3C11F0, 8000), (1640, 0x0BADF00D, 8000)))
RESULT = p.Result(0, 2, 0x4BCEDF26, 38401, 27003350, 2350, 8,
                  ((0, 0, 29542, 20241, 0, 23, 127), (51172, -3, 80694, 50976, 6, 58, -90)))


def frames() -> list[tuple[str, str, int, int, bytes]]:
    ok = [
        ("hello_request", p.HELLO, 1, b""),
        ("info_response", p.INFO, 1, INFO.pack()),
        ("image_info_request", p.IMAGE_INFO, 2, p.image_info_request(3)),
        ("image_response", p.IMAGE, 2, p.ImageEntry(3, 307200, "000000000139.jpg").pack()),
        ("upload_request", p.UPLOAD, 3, p.upload_request(p.UPLOAD_RGB888, 4091, bytes(range(16)))),
        ("upload_ack", p.UPLOAD_ACK, 3, p.UploadAck(p.UPLOAD_RGB888, 4107).pack()),
        ("run_request", p.RUN, 0xFFFF, p.run_request(p.SOURCE_EMBEDDED, 2)),
        ("result_response", p.RESULT, 0xFFFF, RESULT.pack()),
        ("read_request", p.READ, 0x1234, p.read_request(p.REGION_SCORES, 0, 4091, 3909)),
        ("data_response", p.DATA, 0x1234, p.Data(p.REGION_BOXES, 0, bytes((i * 7) & 0xFF for i in range(4091))).pack()),
        ("error_response", p.ERROR, 9, p.DeviceError(4, p.RUN, "no embedded image with that index").pack()),
        ("shutdown_request", p.SHUTDOWN, 10, p.shutdown_request(0)),
        ("bye_response", p.BYE, 10, b""),
        ("busy_notice", p.BUSY, 0xFFFF, b""),
        ("run_steps_request", p.RUN, 20, p.run_request(p.SOURCE_UPLOAD, 0, p.STEP_CRC | p.STEP_STOP, 57)),
        ("steps_request", p.STEPS, 21, p.steps_request(117, p.MAX_STEP_RECORDS)),
        ("step_records_response", p.STEP_RECORDS, 21, STEP_RECORDS.pack()),
        ("read_step_output_request", p.READ, 22, p.read_request(p.REGION_STEP_OUTPUT, 1, 4091, 100)),
        ("no_steps_error", p.ERROR, 23,
         p.DeviceError(p.ERR_NO_STEPS, p.STEPS, "firmware built without step instrumentation").pack()),
    ]
    out = [(name, "ok", t, s, p.encode(t, s, pl)) for name, t, s, pl in ok]
    hello = p.encode(p.HELLO, 7, b"")
    bad_crc = bytearray(hello)
    bad_crc[-1] ^= 0x01
    out.append(("bad_crc", "crc", p.HELLO, 7, bytes(bad_crc)))
    flipped = bytearray(p.encode(p.RUN, 8, p.run_request(0, 1)))
    flipped[9] ^= 0x80  # a payload bit
    out.append(("flipped_payload_bit", "crc", p.RUN, 8, bytes(flipped)))
    too_long = b"\xA5\x5A" + struct.pack("<BBHH", 1, p.UPLOAD, 5, p.MAX_PAYLOAD + 1)
    out.append(("oversize_length", "length", p.UPLOAD, 5, too_long))
    # garbage, a lone sync byte, a doubled first sync byte, then two good frames
    stream = (b"\x00\xFF\xA5\x13\xA5" + p.encode(p.HELLO, 11, b"") + b"\x5A\x5A" + p.encode(p.RUN, 12, p.run_request(1))
              + b"\xA5")
    out.append(("stream_noise", "stream2", p.RUN, 12, stream))
    return [(n, e, t, s, f) for n, e, t, s, f in out]


def main() -> None:
    lines = []
    for name, expect, type_, seq, data in frames():
        (HERE / f"{name}.bin").write_bytes(data)
        payload = len(data) - p.HEADER_BYTES - p.CRC_BYTES if expect in ("ok", "crc") else 0
        if expect == "stream2":
            payload = 3
        lines.append(f"{name}.bin {expect} {type_} {seq} {payload}")
    (HERE / "index.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
