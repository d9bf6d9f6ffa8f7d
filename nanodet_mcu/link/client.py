"""The device as the host sees it: one method per request, each bounded in time.

Every request carries a fresh sequence number; a reply counts only when its seq matches.  A request that gets no
valid reply within its timeout is sent again with the same seq (the device resends its cached reply instead of
redoing the work), at most `retries` times; then a NanodetError names what failed.
"""
from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nanodet_mcu import spec
from nanodet_mcu.errors import NanodetError
from nanodet_mcu.link import protocol as p

MAX_CHUNK = p.MAX_READ  # bulk transfer chunk: as large as a frame allows...
MIN_CHUNK = 256         # ...and no smaller than this on a noisy link


class DeviceRefused(NanodetError):
    """The device answered with an ERROR frame."""

    def __init__(self, error: p.DeviceError):
        super().__init__(error.describe())
        self.error = error


@dataclass
class LinkStats:
    requests: int = 0
    retries: int = 0
    stale_frames: int = 0  # valid frames answering an older request (a late reply after a retry)

    def as_dict(self) -> dict:
        return dict(vars(self))


class DeviceClient:
    def __init__(self, transport, timeout: float = 2.0, run_timeout: float = 60.0, retries: int = 4):
        self.transport = transport
        self.timeout = timeout
        self.run_timeout = run_timeout
        self.retries = retries
        self.stats = LinkStats()
        self._seq = random.randrange(0x10000)  # a new session never collides with the device's cached reply
        self._chunk, self._good = MAX_CHUNK, 0

    def request(self, type_: int, payload: bytes = b"", timeout: float | None = None, busy_timeout: float = 0.0,
                retries: int | None = None):
        """Send and wait for the reply.  `timeout` per attempt; a BUSY notice (the device accepted a long request)
        extends the wait to `busy_timeout` from its arrival."""
        self._seq = (self._seq + 1) & 0xFFFF
        seq, expected = self._seq, p.RESPONSE_OF[type_]
        frame = p.encode(type_, seq, payload)
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        self.stats.requests += 1
        for attempt in range(retries + 1):
            if attempt:
                self.stats.retries += 1
            self.transport.write(frame)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                for f in self.transport.read_frames(left):
                    if self._matches(f, seq, type_, expected):
                        return self._parse(f, expected)
                    if f.type == p.BUSY and f.seq == seq:
                        deadline = max(deadline, time.monotonic() + busy_timeout)
            for f in self.transport.resync():  # a corrupted length may have stalled a good reply behind it
                if self._matches(f, seq, type_, expected):
                    return self._parse(f, expected)
        raise NanodetError(f"no valid reply to {p.TYPE_NAMES[type_]} from {self.transport.port} after "
                           f"{retries + 1} attempts ({timeout:g} s each) (device not running the nanodet-mcu "
                           f"firmware, wrong baud rate, or link too noisy)")

    def _matches(self, f: p.Frame, seq: int, type_: int, expected: int) -> bool:
        if f.seq != seq:
            self.stats.stale_frames += 1
            return False
        if f.type == p.ERROR:
            try:
                error = p.DeviceError.parse(f.payload)
            except p.ProtocolError as exc:
                raise NanodetError(f"device sent a malformed ERROR: {exc}") from exc
            raise DeviceRefused(error)
        if f.type == p.BUSY:
            return False
        if f.type != expected:
            raise NanodetError(f"device answered {p.TYPE_NAMES[type_]} with message type 0x{f.type:02x} "
                               f"(expected {p.TYPE_NAMES[expected]}): wrong firmware or protocol?")
        return True

    @staticmethod
    def _parse(f: p.Frame, expected: int):
        try:
            return p.PARSERS[expected](f.payload)
        except p.ProtocolError as exc:
            raise NanodetError(f"device sent a malformed {p.TYPE_NAMES[expected]}: {exc}") from exc

    def hello(self) -> p.Info:
        info = self.request(p.HELLO)
        if info.protocol_version != p.VERSION:
            raise NanodetError(f"device speaks protocol {info.protocol_version}, host {p.VERSION}")
        return info

    def image_info(self, index: int) -> p.ImageEntry:
        return self.request(p.IMAGE_INFO, p.image_info_request(index))

    def _chunked(self, type_: int, payload_for: Callable[[int], bytes]):
        """One request of a bulk transfer, in the largest chunk the link currently carries: on a noisy link a
        4 KB frame rarely arrives whole, so after a failed attempt the chunk halves (down to MIN_CHUNK, where the
        full retry budget applies) and it grows back after a run of successes."""
        while True:
            last = self._chunk <= MIN_CHUNK
            try:
                reply = self.request(type_, payload_for(self._chunk), retries=None if last else 1)
            except DeviceRefused:
                raise
            except NanodetError:
                if last:
                    raise
                self._chunk = max(MIN_CHUNK, self._chunk // 2)
                self._good = 0
                continue
            self._good += 1
            if self._good >= 8 and self._chunk < MAX_CHUNK:
                self._chunk, self._good = min(MAX_CHUNK, self._chunk * 2), 0
            return reply

    def upload(self, kind: int, data: bytes) -> None:
        data = bytes(data)
        offset = 0
        while offset < len(data):
            sent = {}

            def payload(n: int, offset: int = offset, sent: dict = sent) -> bytes:
                sent["chunk"] = data[offset:offset + min(n, p.MAX_UPLOAD_CHUNK)]
                return p.upload_request(kind, offset, sent["chunk"])

            ack = self._chunked(p.UPLOAD, payload)
            end = offset + len(sent["chunk"])
            # More than `end` is fine: an attempt that timed out here still arrived, with these same bytes.
            if ack.kind != kind or not end <= ack.received <= len(data):
                raise NanodetError(f"upload acknowledged {ack.received} bytes, expected {end}")
            offset = ack.received

    def upload_rgb(self, rgb320: np.ndarray) -> None:
        if rgb320.shape != (spec.INPUT_SIZE, spec.INPUT_SIZE, 3) or rgb320.dtype != np.uint8:
            raise NanodetError(f"upload wants a 320x320x3 uint8 RGB image, got {rgb320.shape} {rgb320.dtype}")
        self.upload(p.UPLOAD_RGB888, rgb320.tobytes())

    def upload_tensor(self, x: np.ndarray) -> None:
        self.upload(p.UPLOAD_INT8, np.ascontiguousarray(x, np.int8).reshape(spec.INPUT_SHAPE).tobytes())

    def run(self, source: int, image_index: int = 0) -> p.Result:
        return self.request(p.RUN, p.run_request(source, image_index), busy_timeout=self.run_timeout)

    def read(self, region: int, size: int, index: int = 0) -> bytes:
        out = bytearray()
        while len(out) < size:
            asked = {}

            def payload(n: int, asked: dict = asked, done: int = len(out)) -> bytes:
                asked["n"] = min(n, p.MAX_READ, size - done)
                return p.read_request(region, index, done, asked["n"])

            d = self._chunked(p.READ, payload)
            if d.region != region or d.offset != len(out) or len(d.data) != asked["n"]:
                raise NanodetError(f"device returned region {d.region} offset {d.offset} length {len(d.data)}, "
                                   f"asked for region {region} offset {len(out)} length {asked['n']}")
            out += d.data
        return bytes(out)

    def read_outputs(self) -> tuple[np.ndarray, np.ndarray]:
        scores = np.frombuffer(self.read(p.REGION_SCORES, int(np.prod(spec.SCORES_SHAPE))), np.int8)
        boxes = np.frombuffer(self.read(p.REGION_BOXES, int(np.prod(spec.BOXES_SHAPE))), np.int8)
        return scores.reshape(spec.SCORES_SHAPE), boxes.reshape(spec.BOXES_SHAPE)

    def read_image(self, index: int) -> np.ndarray:
        raw = self.read(p.REGION_IMAGE, spec.INPUT_SIZE * spec.INPUT_SIZE * 3, index)
        return np.frombuffer(raw, np.uint8).reshape(spec.INPUT_SIZE, spec.INPUT_SIZE, 3)

    # ---- per-step instrumentation (firmware built with ND_PROFILE; verify --profile / --bisect) -------------------

    def run_steps(self, source: int, image_index: int = 0, flags: int = p.STEP_TIME, stop_step: int = 0) -> p.Result:
        """RUN with step instrumentation: `flags` of p.STEP_TIME | STEP_CRC | STEP_STOP (then it stops after
        `stop_step`, whose outputs read_step_output fetches; the RESULT carries no detections)."""
        return self.request(p.RUN, p.run_request(source, image_index, flags, stop_step), busy_timeout=self.run_timeout)

    def step_records(self) -> p.StepRecords:
        """Every step's record of the last RUN, in as many STEPS requests as the frame size needs."""
        first, records, head = 0, [], None
        while head is None or first < head.total:
            page = self.request(p.STEPS, p.steps_request(first, p.MAX_STEP_RECORDS))
            if page.first != first or not page.records or (head is not None and page.total != head.total):
                raise NanodetError(f"device returned step records from {page.first} ({len(page.records)} of "
                                   f"{page.total}), asked from {first}")
            head = head or page
            records += page.records
            first += len(page.records)
        return p.StepRecords(head.total, head.completed, head.flags, 0, tuple(records))

    def read_step_output(self, output: int, size: int) -> bytes:
        """Output `output` of the step the last RUN stopped after (`size` bytes)."""
        return self.read(p.REGION_STEP_OUTPUT, size, output)

    def shutdown(self, code: int = 0) -> None:
        """Stop the device (the emulator exits with it); the port may vanish before BYE is read."""
        from nanodet_mcu.link.transport import LinkClosed

        with contextlib.suppress(LinkClosed):
            self.request(p.SHUTDOWN, p.shutdown_request(code))
