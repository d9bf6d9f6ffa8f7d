"""The device as the host sees it: one method per request, each bounded in time.

Every request carries a fresh sequence number; a reply counts only when its seq matches.  A request that gets no
valid reply within its timeout is sent again with the same seq (the device resends its cached reply instead of
redoing the work), at most `retries` times; then a NanodetError names what failed.  Bulk transfers halve their chunk
after each failed attempt (a new request: the device would answer a same-seq retry with the old chunk's reply)
within the same budget, so a device that stopped answering fails every request after (retries + 1) x timeout.

Long requests (RUN) answer BUSY first; the host then re-asks with the same seq, first after the time the last
such request took (or `timeout`), then at doubling intervals, so one lost RESULT costs seconds, not --run-timeout.
Across the session: an optional total `deadline`, a retry-rate limit over the last frames ("link too noisy"), and
progress reports of bulk transfers (bytes, rate, ETA, retry rate) through `progress`.
"""
from __future__ import annotations

import collections
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nanodet_mcu import spec
from nanodet_mcu.errors import NanodetError
from nanodet_mcu.link import protocol as p
from nanodet_mcu.link.transport import WriteTimeout

MAX_CHUNK = p.MAX_READ  # bulk transfer chunk: as large as a frame allows...
MIN_CHUNK = 256         # ...and no smaller than this on a noisy link
NOISE_WINDOW = 64       # frames over which the retry rate is judged
NOISE_MIN_FRAMES = 32   # ...once at least this many were sent
_NONE = object()        # no reply (a parsed reply may be None: BYE)


class DeviceRefused(NanodetError):
    """The device answered with an ERROR frame."""

    def __init__(self, error: p.DeviceError):
        super().__init__(error.describe())
        self.error = error


class NoReply(NanodetError):
    """A request used up its attempts without a valid reply."""

    def __init__(self, message: str, attempts: int = 0, silent: int = 0):
        super().__init__(message)
        self.attempts, self.silent = attempts, silent  # attempts made; how many got not one byte back


class LinkDeadline(NanodetError):
    """The session's total deadline passed."""


class LinkTooNoisy(NanodetError):
    """Too many of the recent frames had to be sent again."""


@dataclass
class LinkStats:
    requests: int = 0
    retries: int = 0
    stale_frames: int = 0  # valid frames answering an older request (a late reply after a retry)
    reasks: int = 0        # same-seq re-asks while a BUSY request runs (answered at once after a lost reply)

    @property
    def frames(self) -> int:
        return self.requests + self.retries

    @property
    def retry_rate(self) -> float:
        return self.retries / self.frames if self.frames else 0.0

    def as_dict(self) -> dict:
        return {**vars(self), "retry_rate": round(self.retry_rate, 4)}


@dataclass
class Transfer:
    """Where a bulk transfer is, for progress displays."""
    what: str
    done: int
    total: int
    started: float  # time.monotonic()
    stats: LinkStats
    final: bool = False

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """bytes/s so far"""
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate > 0 else None

    def describe(self) -> str:
        eta = "" if self.final or self.eta is None else f", ETA {self.eta:.0f} s"
        return (f"{self.what}: {self.done / 1024:.0f}/{self.total / 1024:.0f} KB ({100 * self.done / self.total:.0f}%)"
                f" at {self.rate / 1024:.1f} KB/s{eta}, {100 * self.stats.retry_rate:.1f}% of frames retried")


class DeviceClient:
    def __init__(self, transport, timeout: float = 2.0, run_timeout: float = 60.0, retries: int = 4,
                 deadline: float | None = None, max_retry_rate: float = 0.5,
                 progress: Callable[[Transfer], None] | None = None):
        """deadline: seconds from now for the whole session (None: none); max_retry_rate: fail with LinkTooNoisy
        when more than this fraction of the last NOISE_WINDOW frames were retries."""
        self.transport = transport
        self.timeout = timeout
        self.run_timeout = run_timeout
        self.retries = retries
        self.deadline: float | None = None
        self._deadline_seconds = 0.0
        if deadline is not None:
            self.set_deadline(deadline)
        self.max_retry_rate = max_retry_rate
        self.progress = progress
        self.stats = LinkStats()
        self.doing = ""  # what the session is doing, for error messages
        self._seq = random.randrange(0x10000)  # a new session never collides with the device's cached reply
        self._chunk, self._good = MAX_CHUNK, 0
        self._recent: collections.deque[bool] = collections.deque(maxlen=NOISE_WINDOW)  # True: a retry
        self._busy_seconds: dict[int, float] = {}  # request type -> how long its last BUSY -> reply took
        self._transfer: Transfer | None = None  # the bulk transfer in progress, for messages

    # --- session limits ----------------------------------------------------------------------------------------
    def set_deadline(self, seconds: float, started: float | None = None) -> None:
        """The session fails with LinkDeadline `seconds` after `started` (a time.monotonic(); default now)."""
        self.deadline = (time.monotonic() if started is None else started) + seconds
        self._deadline_seconds = seconds

    def _left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def check_deadline(self) -> None:
        if self._left() <= 0:
            where = f" while {self.doing}" if self.doing else ""
            transfer = self._transfer
            if transfer is not None and not transfer.final:
                where += f" ({transfer.describe()})"
            raise LinkDeadline(f"not done within --deadline {self._deadline_seconds:g} s{where}; link: "
                               f"{self.describe_link()}")

    def describe_link(self) -> str:
        st, t = self.stats, self.transport
        return (f"{st.frames} frames sent, {100 * st.retry_rate:.0f}% retried, {t.decoder.bad_frames} bad frames "
                f"received")

    def _count_frame(self, retry: bool) -> None:
        if retry:
            self.stats.retries += 1
        else:
            self.stats.requests += 1
        self._recent.append(retry)
        if len(self._recent) >= NOISE_MIN_FRAMES:
            rate = sum(self._recent) / len(self._recent)
            if rate > self.max_retry_rate:
                raise LinkTooNoisy(f"link too noisy: {100 * rate:.0f}% of the last {len(self._recent)} frames "
                                   f"retried (limit {100 * self.max_retry_rate:.0f}%; {self.describe_link()}): "
                                   f"lower the baud rate or check the cable and ground")

    def _send(self, frame: bytes, wait: float) -> bool:
        """Write a frame; False when the device took none of it within `wait` (it counts as a failed attempt)."""
        try:
            self.transport.write(frame, timeout=max(0.01, min(wait, self._left())))
            return True
        except WriteTimeout:
            return False

    # --- requests ----------------------------------------------------------------------------------------------
    def request(self, type_: int, payload: bytes = b"", timeout: float | None = None, busy_timeout: float = 0.0,
                retries: int | None = None, resend: bool = False):
        """Send and wait for the reply.  `timeout` per attempt; a BUSY notice (the device accepted a long request)
        extends the wait to `busy_timeout` from its arrival, with same-seq re-asks in between.  `resend`: this
        request redoes one that failed (a smaller chunk): its first frame counts as a retry."""
        self._seq = (self._seq + 1) & 0xFFFF
        seq, expected = self._seq, p.RESPONSE_OF[type_]
        frame = p.encode(type_, seq, payload)
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        silent = 0  # attempts during which not one byte came back
        for attempt in range(retries + 1):
            self.check_deadline()
            self._count_frame(retry=attempt > 0 or resend)
            received = self.transport.bytes_received
            reply = self._attempt(type_, frame, seq, expected, timeout, busy_timeout)
            if reply is not _NONE:
                return reply
            silent += self.transport.bytes_received == received
        self.check_deadline()
        raise self._no_reply(type_, retries + 1, silent, timeout)

    def _no_reply(self, type_: int, attempts: int, silent: int, timeout: float, note: str = "") -> NoReply:
        why = ("the device stopped answering (frozen, reset or unplugged?), or it does not run the nanodet-mcu "
               "firmware or uses another baud rate" if silent == attempts else
               f"link too noisy: {100 * self.stats.retry_rate:.0f}% of frames retried ({self.describe_link()})")
        return NoReply(f"no valid reply to {p.TYPE_NAMES[type_]} from {self.transport.port} after {attempts} "
                       f"attempts ({timeout:g} s each{note}): {why}", attempts, silent)

    def _attempt(self, type_, frame, seq, expected, timeout, busy_timeout):
        if not self._send(frame, timeout):
            return _NONE
        until = time.monotonic() + timeout
        busy_since = reask_at = None
        interval, reasks = timeout, 0
        while True:
            now = time.monotonic()
            if busy_since is not None and now >= reask_at and now < until:
                # Still computing, or its reply was lost: the same seq gets the cached reply at once when done.
                self.stats.reasks += 1
                reasks += 1
                self._send(frame, timeout)
                interval *= 2
                reask_at = now + interval
            limit = min(until, self.deadline or until, reask_at or until)
            left = limit - time.monotonic()
            if left <= 0 and (busy_since is None or time.monotonic() >= until or self._left() <= 0):
                break
            for f in self.transport.read_frames(max(left, 0.0)):
                if self._matches(f, seq, type_, expected):
                    if busy_since is not None:
                        self._busy_seconds[type_] = time.monotonic() - busy_since
                    return self._parse(f, expected)
                if f.type == p.BUSY and f.seq == seq and busy_since is None:
                    busy_since = time.monotonic()
                    until = max(until, busy_since + busy_timeout)
                    interval = max(timeout, 1.5 * self._busy_seconds.get(type_, 0.0))
                    reask_at = busy_since + interval
        if busy_since is not None and self._left() > 0:
            raise NoReply(f"no {p.TYPE_NAMES[expected]} within {busy_timeout:g} s of the device's BUSY "
                          f"(--run-timeout; re-asked {reasks} times)")
        for f in self.transport.resync():  # a corrupted length may have stalled a good reply behind it
            if self._matches(f, seq, type_, expected):
                return self._parse(f, expected)
        return _NONE

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
        """One piece of a bulk transfer, in the largest chunk the link currently carries: on a noisy link a 4 KB
        frame rarely arrives whole, so after each failed attempt the chunk halves (down to MIN_CHUNK) and it grows
        back after a run of successes.  A halved chunk is a new request (new seq), but the attempts share one
        budget of retries + 1: a device that stopped answering fails here after (retries + 1) x timeout."""
        budget = self.retries + 1
        attempts = silent = 0
        first = self._chunk
        while True:
            at_min = self._chunk <= MIN_CHUNK
            try:
                reply = self.request(type_, payload_for(self._chunk), retries=budget - 1 if at_min else 0,
                                     resend=attempts > 0)
            except NoReply as exc:
                budget -= exc.attempts
                attempts, silent = attempts + exc.attempts, silent + exc.silent
                if budget <= 0:
                    note = f", chunks {first} down to {self._chunk} bytes" if first != self._chunk else ""
                    raise self._no_reply(type_, attempts, silent, self.timeout, note) from None
                self._chunk = max(MIN_CHUNK, self._chunk // 2)
                self._good = 0
                continue
            self._good += 1
            if self._good >= 8 and self._chunk < MAX_CHUNK:
                self._chunk, self._good = min(MAX_CHUNK, self._chunk * 2), 0
            return reply

    def _report(self, transfer: Transfer, done: int) -> None:
        transfer.done = done
        transfer.final = done >= transfer.total
        if self.progress is not None:
            self.progress(transfer)

    def upload(self, kind: int, data: bytes, what: str = "upload") -> None:
        data = bytes(data)
        offset = 0
        transfer = self._transfer = Transfer(what, 0, len(data), time.monotonic(), self.stats)
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
            self._report(transfer, offset)

    def upload_rgb(self, rgb320: np.ndarray) -> None:
        if rgb320.shape != (spec.INPUT_SIZE, spec.INPUT_SIZE, 3) or rgb320.dtype != np.uint8:
            raise NanodetError(f"upload wants a 320x320x3 uint8 RGB image, got {rgb320.shape} {rgb320.dtype}")
        self.upload(p.UPLOAD_RGB888, rgb320.tobytes(), "upload 320x320 RGB888")

    def upload_tensor(self, x: np.ndarray) -> None:
        self.upload(p.UPLOAD_INT8, np.ascontiguousarray(x, np.int8).reshape(spec.INPUT_SHAPE).tobytes(),
                    "upload int8 input")

    def run(self, source: int, image_index: int = 0) -> p.Result:
        return self.request(p.RUN, p.run_request(source, image_index), busy_timeout=self.run_timeout)

    def read(self, region: int, size: int, index: int = 0, what: str = "read") -> bytes:
        out = bytearray()
        transfer = self._transfer = Transfer(what, 0, size, time.monotonic(), self.stats)
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
            self._report(transfer, len(out))
        return bytes(out)

    def read_outputs(self) -> tuple[np.ndarray, np.ndarray]:
        scores = np.frombuffer(self.read(p.REGION_SCORES, int(np.prod(spec.SCORES_SHAPE)), what="read scores"), np.int8)
        boxes = np.frombuffer(self.read(p.REGION_BOXES, int(np.prod(spec.BOXES_SHAPE)), what="read boxes"), np.int8)
        return scores.reshape(spec.SCORES_SHAPE), boxes.reshape(spec.BOXES_SHAPE)

    def read_image(self, index: int) -> np.ndarray:
        raw = self.read(p.REGION_IMAGE, spec.INPUT_SIZE * spec.INPUT_SIZE * 3, index, f"read embedded image #{index}")
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
