"""A man in the middle on a serial link: a new pty whose traffic is forwarded to/from another port, with bytes
dropped, bit-flipped or duplicated at a set rate (both directions), and/or the first N device frames of given message
types corrupted (one payload bit flipped: the CRC fails).  Test tool for the link's robustness."""
from __future__ import annotations

import os
import random
import select
import threading
import tty

import serial


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [], 0.05)


class FaultProxy:
    """`with FaultProxy(upstream_port, rate=1e-3) as proxy:` then talk to `proxy.port`."""

    def __init__(self, upstream: str, rate: float, seed: int = 1, kinds=("drop", "flip", "dup"),
                 corrupt_replies: dict[int, int] | None = None):
        """corrupt_replies: {message type: how many of the device's frames of that type to corrupt}."""
        self.rate, self.kinds = rate, kinds
        self.corrupt_replies = dict(corrupt_replies or {})
        self.corrupted = dict.fromkeys(self.corrupt_replies, 0)
        self._pending = bytearray()  # device bytes held until a whole frame is seen (targeted corruption only)
        self._rng = random.Random(seed)
        self._upstream = serial.Serial(upstream, 115200, timeout=0)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        self.port = os.ttyname(self._slave)
        self.faults = dict.fromkeys(kinds, 0)
        self.forwarded = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)

    def _mangle(self, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            if self._rng.random() >= self.rate:
                out.append(b)
                continue
            kind = self._rng.choice(self.kinds)
            self.faults[kind] += 1
            if kind == "flip":
                out.append(b ^ (1 << self._rng.randrange(8)))
            elif kind == "dup":
                out += bytes((b, b))
            # drop: nothing
        return bytes(out)

    def _target(self, data: bytes) -> bytes:
        """Whole device frames out of the stream, with the chosen ones corrupted; an incomplete frame waits."""
        buf = self._pending
        buf += data
        out = bytearray()
        while len(buf) >= 8:
            if buf[:2] != b"\xa5\x5a":
                out.append(buf.pop(0))
                continue
            total = 8 + int.from_bytes(buf[6:8], "little") + 4
            if len(buf) < total:
                break
            frame = bytearray(buf[:total])
            del buf[:total]
            kind = frame[3]
            if self.corrupted.get(kind, 0) < self.corrupt_replies.get(kind, 0):
                self.corrupted[kind] += 1
                frame[-5 if total > 12 else -1] ^= 0x10  # last payload byte (or the CRC of an empty frame)
            out += frame
        return bytes(out)

    def _pump(self) -> None:
        up = self._upstream.fileno()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master, up], [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # the host side closed its end; keep serving until stopped
                    continue
                if not data:
                    continue
                self.forwarded += len(data)
                if fd == up and self.corrupt_replies:
                    data = self._target(data)
                _write_all(up if fd == self._master else self._master, self._mangle(data))

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)
        self._upstream.close()
        os.close(self._master)
        os.close(self._slave)
