"""The frame codec, C and Python, against the same golden frames; stream properties of the Python decoder."""
from __future__ import annotations

import subprocess
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanodet_mcu import FIRMWARE_DIR
from nanodet_mcu.link import protocol as p
from tests.conftest import require_tool
from tests.golden import make_golden

GOLDEN = Path(__file__).resolve().parent / "golden"
COMMON = FIRMWARE_DIR / "common"


def golden_entries():
    for line in (GOLDEN / "index.txt").read_text().splitlines():
        name, expect, type_, seq, length = line.split()
        yield name, expect, int(type_), int(seq), int(length)


def test_golden_files_are_what_the_generator_writes():
    for name, _, _, _, data in make_golden.frames():
        assert (GOLDEN / f"{name}.bin").read_bytes() == data, f"{name}.bin is stale: run tests/golden/make_golden.py"


@pytest.mark.parametrize("entry", list(golden_entries()), ids=lambda e: e[0])
def test_python_codec_on_golden_frames(entry):
    name, expect, type_, seq, length = entry
    data = (GOLDEN / name).read_bytes()
    dec = p.FrameDecoder()
    frames = dec.feed(data)
    if expect == "ok":
        assert len(frames) == 1 and dec.bad_frames == 0
        f = frames[0]
        assert (f.type, f.seq, len(f.payload), f.version) == (type_, seq, length, p.VERSION)
        assert f.encode() == data
    elif expect in ("crc", "length"):
        assert frames == [] and dec.bad_frames >= 1
    else:  # stream2
        assert [(f.type, f.seq) for f in frames] == [(p.HELLO, 11), (type_, seq)]


def test_golden_payloads_parse_back():
    frames = {name: p.decode_one((GOLDEN / f"{name}.bin").read_bytes()) for name, *_ in make_golden.frames()
              if name[:3] not in ("bad", "fli", "ove", "str")}
    assert p.Info.parse(frames["info_response"].payload) == make_golden.INFO
    assert p.Result.parse(frames["result_response"].payload) == make_golden.RESULT
    err = p.DeviceError.parse(frames["error_response"].payload)
    assert err.code == 4 and "no embedded image" in err.describe()
    assert p.ImageEntry.parse(frames["image_response"].payload).name == "000000000139.jpg"
    assert p.Data.parse(frames["data_response"].payload).data[:3] == bytes([0, 7, 14])
    assert make_golden.INFO.input.scale == pytest.approx(0.018658)
    assert p.StepRecords.parse(frames["step_records_response"].payload) == make_golden.STEP_RECORDS
    run = frames["run_steps_request"].payload
    assert len(run) == 6 and run[3] == p.STEP_CRC | p.STEP_STOP and int.from_bytes(run[4:], "little") == 57
    assert len(frames["run_request"].payload) == 3  # a plain RUN keeps its 3 bytes
    assert "no-steps" in p.DeviceError.parse(frames["no_steps_error"].payload).describe()


def test_step_records_refuse_what_they_cannot_hold():
    good = make_golden.STEP_RECORDS
    with pytest.raises(p.ProtocolError, match="beyond"):
        p.StepRecords.parse(p.StepRecords(118, 0, 0, 117, good.records).pack())  # 117..118 of 118 steps
    with pytest.raises(p.ProtocolError, match="too short"):
        p.StepRecords.parse(good.pack()[:-1])
    assert p.MAX_STEP_RECORDS * p.STEP_RECORD.size + p.STEPS_HEADER.size <= p.MAX_PAYLOAD


def test_truncated_payloads_are_protocol_errors():
    info = make_golden.INFO.pack()
    with pytest.raises(p.ProtocolError):
        p.Info.parse(info[:-1])
    with pytest.raises(p.ProtocolError):
        p.Result.parse(make_golden.RESULT.pack() + b"\0")


def test_c_codec_on_golden_frames(tmp_path):
    cc = require_tool("gcc")
    exe = tmp_path / "check_golden"
    build = subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
                            f"-I{COMMON}", str(GOLDEN / "check_golden.c"), str(COMMON / "nd_protocol.c"),
                            "-o", str(exe)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe), str(GOLDEN)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 failures" in run.stdout


def test_crc_is_zlibs():
    frame = p.encode(p.HELLO, 1)
    assert int.from_bytes(frame[-4:], "little") == zlib.crc32(frame[2:-4])


frames_st = st.builds(lambda t, s, pl: p.Frame(t, s, pl), st.integers(0, 255), st.integers(0, 0xFFFF),
                      st.binary(max_size=300))
garbage_st = st.binary(max_size=40).map(lambda b: b.replace(b"\xA5", b"\x00"))  # no sync starts inside garbage


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(garbage_st, frames_st), max_size=6), st.integers(1, 64))
def test_decoder_finds_every_frame_in_noise_whatever_the_chunking(items, chunk):
    stream = b"".join(g + f.encode() for g, f in items)
    dec = p.FrameDecoder()
    got = []
    for i in range(0, len(stream), chunk):
        got += dec.feed(stream[i:i + chunk])
    assert got == [f for _, f in items]


@settings(max_examples=200, deadline=None)
@given(frames_st, st.data())
def test_a_corrupted_frame_is_never_accepted_and_the_next_one_is(frame, data):
    raw = bytearray(frame.encode())
    pos = data.draw(st.integers(2, len(raw) - 1))  # version..CRC (sync damage just hides the frame)
    raw[pos] ^= 1 << data.draw(st.integers(0, 7))
    nxt = p.Frame(p.HELLO, 77)
    dec = p.FrameDecoder()
    got = dec.feed(bytes(raw) + nxt.encode())
    while dec.pending and nxt not in got:  # a corrupted length stalls the decoder until the host times out
        got += dec.resync()
    assert got[-1] == nxt and frame not in got[:-1]
