"""The device client against the real firmware (AOT engine, NXP model) in QEMU over a real pty: replies, every
refusal path, duplicate requests, resynchronisation after garbage, partial and oversized frames."""
from __future__ import annotations

import struct
import time
import zlib

import numpy as np
import pytest

from nanodet_mcu import model_info, preprocess
from nanodet_mcu.device.emulator import Emulator
from nanodet_mcu.errors import NanodetError
from nanodet_mcu.floatbits import f32_bits
from nanodet_mcu.link import protocol as p
from nanodet_mcu.link.client import DeviceClient, DeviceRefused
from nanodet_mcu.link.transport import SerialTransport
from tests import firmware_builds
from tests.conftest import require_tool


@pytest.fixture(scope="module")
def firmware(nxp_model_path, example_image, val_images):
    require_tool("qemu-system-arm")
    images = firmware_builds.ci_images(example_image, val_images)
    return firmware_builds.aot_firmware(nxp_model_path, images)[1], images


@pytest.fixture
def device(firmware):
    with Emulator(firmware[0]) as emu, SerialTransport(emu.port) as t:
        client = DeviceClient(t, timeout=1.0, retries=2)
        client.hello()
        yield client


def raw_exchange(client: DeviceClient, data: bytes, wait: float = 1.0, expect: int | None = 1,
                 seq: int | None = None) -> list[p.Frame]:
    """Send raw bytes; collect frames for `wait` seconds, or until `expect` frames arrived (None: the full wait).

    seq: keep only the replies to that request.  On a loaded machine an earlier client request may have been resent,
    and its second reply (HELLO is always executed) can still be on its way when the next exchange starts."""
    client.transport.write(data)
    frames, deadline = [], time.monotonic() + wait

    def ours(batch):
        return [f for f in batch if seq is None or f.seq == seq]

    while time.monotonic() < deadline and (expect is None or len(frames) < expect):
        frames += ours(client.transport.read_frames(deadline - time.monotonic()))
    if expect is not None:  # and nothing more is coming
        frames += ours(client.transport.read_frames(0.2))
    return frames


def refused(call, code: int) -> p.DeviceError:
    with pytest.raises(DeviceRefused) as exc:
        call()
    assert exc.value.error.code == code, exc.value
    return exc.value.error


def test_info_describes_the_firmware(device, nxp_model_path, firmware):
    info = device.hello()
    model = model_info.load(nxp_model_path)
    layout = model_info.nanodet_layout(model)
    assert (info.board, info.engine, info.timer_kind) == ("mps2-an500", "aot", "systick-instructions")
    assert (info.core_clock_hz, info.timer_units_per_tick, info.engine_status) == (25_000_000, 40, 0)
    assert info.model_sha256 == model.sha256 and info.num_images == len(firmware[1])
    assert info.input.scale_bits == f32_bits(layout.input.scale) and info.boxes.zero_point == layout.boxes.zero_point
    assert info.scores.shape == (1, 10, 10, 80) and info.max_payload == p.MAX_PAYLOAD
    assert [device.image_info(i).name for i in range(info.num_images)] == [f.name for f in firmware[1]]


def test_every_bad_request_is_refused_with_a_reason(device):
    refused(lambda: device.image_info(99), 4)
    refused(lambda: device.run(p.SOURCE_EMBEDDED, 99), 4)
    refused(lambda: device.read(p.REGION_SCORES, 10), 8)             # no RUN yet
    refused(lambda: device.run(p.SOURCE_UPLOAD), 5)                  # nothing uploaded
    refused(lambda: device.request(p.RUN, b"\x00"), 3)               # short payload
    refused(lambda: device.request(p.RUN, p.run_request(7, 0)), 3)   # unknown source
    refused(lambda: device.request(p.UPLOAD, p.upload_request(9, 0, b"x")), 3)
    refused(lambda: device.request(p.UPLOAD, p.upload_request(1, 4096, b"x")), 4)  # gap: offset 0 first
    refused(lambda: device.request(p.READ, p.read_request(p.REGION_IMAGE, 0, 307199, 2)), 4)  # past the end
    refused(lambda: device.request(p.READ, p.read_request(p.REGION_IMAGE, 0, 0, 4092)), 3)   # over a payload
    refused(lambda: device.request(p.READ, p.read_request(9, 0, 0, 1)), 4)
    (unknown,) = raw_exchange(device, p.encode(0x42, 5, b""), seq=5)
    assert unknown.type == p.ERROR and p.DeviceError.parse(unknown.payload).code == 2
    (version,) = raw_exchange(device, p.Frame(p.HELLO, 6, b"", version=2).encode(), seq=6)
    assert version.type == p.ERROR and p.DeviceError.parse(version.payload).code == 1
    assert device.hello().engine_status == 0  # still answering


def test_a_repeated_request_gets_the_cached_reply_without_rerunning(device):
    run = p.encode(p.RUN, 4242, p.run_request(p.SOURCE_EMBEDDED, 0))
    first = [f for f in raw_exchange(device, run, wait=30.0, expect=2, seq=4242) if f.type != p.BUSY]
    again = raw_exchange(device, run, wait=1.0, seq=4242)
    assert [f.type for f in again] == [p.RESULT]  # no BUSY: not run again
    assert again == first


def test_resync_after_garbage_partial_and_oversized_frames(device):
    hello = p.encode(p.HELLO, 100)
    assert [f.type for f in raw_exchange(device, b"\x00\xA5\xA5\x13garbage" + hello, seq=100)] == [p.INFO]
    oversized = b"\xA5\x5A" + struct.pack("<BBHH", 1, p.UPLOAD, 101, 60000)
    assert [f.type for f in raw_exchange(device, oversized + p.encode(p.HELLO, 102), seq=102)] == [p.INFO]
    corrupted = bytearray(p.encode(p.HELLO, 103))
    corrupted[-1] ^= 0xFF
    assert raw_exchange(device, bytes(corrupted), wait=0.5, expect=None) == []
    # half a frame, then silence: the device drops it after its frame timeout and answers the next one
    assert raw_exchange(device, p.encode(p.UPLOAD, 104, p.upload_request(1, 0, bytes(100)))[:50], wait=2.5,
                        expect=None) == []
    # (59 bytes are missing: the client's 3 HELLO attempts cannot fill them, only the frame deadline clears it)
    assert device.hello().board == "mps2-an500"


def test_embedded_run_and_readback(device, firmware):
    result = device.run(p.SOURCE_EMBEDDED, 0)
    info = device.hello()
    rgb = preprocess.resize_rgb(preprocess.load_rgb(firmware[1][0]))
    assert np.array_equal(device.read_image(0), rgb)
    x = preprocess.quantize(rgb, info.input.scale, info.input.zero_point)
    assert result.input_crc32 == zlib.crc32(x.tobytes())
    assert result.inference_ticks > 1_000_000 and 0 < result.preprocess_ticks < result.inference_ticks
    scores, boxes = device.read_outputs()
    assert scores.shape == (1, 10, 10, 80) and boxes.shape == (1, 10, 10, 32)


@pytest.mark.slow
def test_uploaded_int8_tensor_runs_like_the_embedded_image(device, firmware):
    info = device.hello()
    embedded = device.run(p.SOURCE_EMBEDDED, 1)
    out_embedded = device.read_outputs()
    rgb = preprocess.resize_rgb(preprocess.load_rgb(firmware[1][1]))
    device.upload_tensor(preprocess.quantize(rgb, info.input.scale, info.input.zero_point))
    uploaded = device.run(p.SOURCE_UPLOAD)
    assert uploaded.preprocess_ticks < 100  # nothing to preprocess
    assert (uploaded.input_crc32, uploaded.detections) == (embedded.input_crc32, embedded.detections)
    for a, b in zip(device.read_outputs(), out_embedded):
        assert np.array_equal(a, b)
    refused(lambda: device.run(p.SOURCE_UPLOAD), 5)  # an upload is good for one run


def test_no_device_on_the_port_fails_in_bounded_time(tmp_path):
    import os
    import pty

    master, slave = pty.openpty()  # a port nobody answers on
    try:
        with SerialTransport(os.ttyname(slave)) as t:
            started = time.monotonic()
            with pytest.raises(NanodetError, match="no valid reply to HELLO .* after 3 attempts"):
                DeviceClient(t, timeout=0.3, retries=2).hello()
            assert time.monotonic() - started < 3
    finally:
        os.close(master)
        os.close(slave)
