"""Frames and messages of the link protocol (docs/protocol.md), the host side of firmware/common/nd_protocol.{c,h}.

Frame: A5 5A | version u8 | type u8 | seq u16 | length u16 | payload | CRC-32 u32 (zlib's, over version..payload).
Everything little-endian.  Pure code: no I/O, so the golden frames in tests/golden drive it directly.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from nanodet_mcu.errors import NanodetError
from nanodet_mcu.floatbits import f32_from_bits

SYNC = b"\xA5\x5A"
VERSION = 1
HEADER = struct.Struct("<2sBBHH")
HEADER_BYTES = HEADER.size  # 8
CRC_BYTES = 4
MAX_PAYLOAD = 4096
MAX_FRAME = HEADER_BYTES + MAX_PAYLOAD + CRC_BYTES

# requests
HELLO, IMAGE_INFO, UPLOAD, RUN, READ, SHUTDOWN = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
STEPS = 0x08  # 0x07 is no request: its reply type would be BUSY's
# responses
INFO, IMAGE, UPLOAD_ACK, RESULT, DATA, BYE, ERROR = 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0xFF
BUSY = 0x87  # empty, same seq as a RUN: accepted, the RESULT follows after the inference
STEP_RECORDS = 0x88
RESPONSE_OF = {HELLO: INFO, IMAGE_INFO: IMAGE, UPLOAD: UPLOAD_ACK, RUN: RESULT, READ: DATA, SHUTDOWN: BYE,
               STEPS: STEP_RECORDS}
TYPE_NAMES = {HELLO: "HELLO", IMAGE_INFO: "IMAGE_INFO", UPLOAD: "UPLOAD", RUN: "RUN", READ: "READ",
              SHUTDOWN: "SHUTDOWN", STEPS: "STEPS", INFO: "INFO", IMAGE: "IMAGE", UPLOAD_ACK: "UPLOAD_ACK",
              RESULT: "RESULT", DATA: "DATA", BYE: "BYE", ERROR: "ERROR", BUSY: "BUSY", STEP_RECORDS: "STEP_RECORDS"}

UPLOAD_RGB888, UPLOAD_INT8 = 1, 2
SOURCE_EMBEDDED, SOURCE_UPLOAD = 0, 1
REGION_SCORES, REGION_BOXES, REGION_IMAGE = 0, 1, 2
REGION_STEP_OUTPUT = 3  # index = output of the step an instrumented RUN stopped after
# RUN step flags (firmware/common/nd_steps.h): per-step timer ticks, per-step output CRC-32, stop after one step
STEP_TIME, STEP_CRC, STEP_STOP = 0x01, 0x02, 0x04
STEP_STOP_OUTPUTS = 8  # outputs of the stop step READ reaches (ND_STEPS_MAX_OUTPUTS)
STEP_RECORD = struct.Struct("<III")  # ticks, CRC-32 of the outputs, their bytes
STEPS_HEADER = struct.Struct("<HHBHH")  # total steps, completed, flags of the last RUN, first, count
MAX_STEP_RECORDS = (MAX_PAYLOAD - STEPS_HEADER.size) // STEP_RECORD.size
DATA_HEADER_BYTES = 5  # region u8 + offset u32
MAX_READ = MAX_PAYLOAD - DATA_HEADER_BYTES
UPLOAD_HEADER_BYTES = 5  # kind u8 + offset u32
MAX_UPLOAD_CHUNK = MAX_PAYLOAD - UPLOAD_HEADER_BYTES

ERROR_NAMES = {1: "version", 2: "unknown-type", 3: "malformed", 4: "index", 5: "no-input", 6: "engine",
               7: "postprocess", 8: "no-output", 9: "no-steps"}
ERR_UNKNOWN_TYPE, ERR_NO_STEPS = 2, 9


class ProtocolError(NanodetError):
    """A frame or payload that does not fit the protocol (one that does not parse, or is too large to send)."""


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes = b""
    version: int = VERSION

    def encode(self) -> bytes:
        if len(self.payload) > MAX_PAYLOAD:
            raise ProtocolError(f"payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")
        body = HEADER.pack(SYNC, self.version, self.type, self.seq & 0xFFFF, len(self.payload))[2:] + self.payload
        return SYNC + body + struct.pack("<I", zlib.crc32(body))


def encode(type_: int, seq: int, payload: bytes = b"") -> bytes:
    return Frame(type_, seq, bytes(payload)).encode()


class FrameDecoder:
    """Stream -> frames.  Garbage, truncated and corrupted frames are skipped: after a bad CRC or an impossible
    length it resumes the search one byte past the bad frame's sync, so a real frame hidden inside is still found."""

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self.max_payload = max_payload
        self._buf = bytearray()
        self.dropped_bytes = 0  # garbage skipped while hunting for sync
        self.bad_frames = 0     # CRC or length failures

    def reset(self) -> None:
        self.dropped_bytes += len(self._buf)
        self._buf.clear()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames = []
        while True:
            start = self._buf.find(SYNC)
            if start < 0:
                keep = 1 if self._buf[-1:] == SYNC[:1] else 0  # a frame may begin with the last byte
                self.dropped_bytes += len(self._buf) - keep
                del self._buf[:len(self._buf) - keep]
                return frames
            if start:
                self.dropped_bytes += start
                del self._buf[:start]
            if len(self._buf) < HEADER_BYTES:
                return frames
            _, version, type_, seq, length = HEADER.unpack_from(self._buf)
            if length > self.max_payload:
                self._skip_bad()
                continue
            total = HEADER_BYTES + length + CRC_BYTES
            if len(self._buf) < total:
                return frames
            body = bytes(self._buf[2:HEADER_BYTES + length])
            (crc,) = struct.unpack_from("<I", self._buf, HEADER_BYTES + length)
            if crc != zlib.crc32(body):
                self._skip_bad()
                continue
            frames.append(Frame(type_, seq, body[HEADER_BYTES - 2:], version))
            del self._buf[:total]

    def resync(self) -> list[Frame]:
        """Give up on the frame in progress (after a timeout it will never complete: its length was probably
        corrupted) and look again in the bytes buffered after its sync."""
        if not self._buf:
            return []
        self._skip_bad()
        return self.feed(b"")

    @property
    def pending(self) -> int:
        return len(self._buf)

    def _skip_bad(self) -> None:
        self.bad_frames += 1
        self.dropped_bytes += 1
        del self._buf[:1]


def decode_one(data: bytes) -> Frame:
    """Exactly one frame, nothing around it (golden tests)."""
    dec = FrameDecoder()
    frames = dec.feed(data)
    if len(frames) != 1 or dec._buf or dec.dropped_bytes:
        raise ProtocolError(f"not exactly one valid frame ({len(frames)} decoded, {dec.bad_frames} bad)")
    return frames[0]


# ---- payload reading -------------------------------------------------------------------------------------------

class Reader:
    def __init__(self, data: bytes, what: str):
        self.data, self.pos, self.what = bytes(data), 0, what

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise ProtocolError(f"{self.what} payload too short ({len(self.data)} bytes)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        s = struct.Struct("<" + fmt)
        return s.unpack(self.take(s.size))

    def u8(self) -> int:
        return self.unpack("B")[0]

    def u16(self) -> int:
        return self.unpack("H")[0]

    def u32(self) -> int:
        return self.unpack("I")[0]

    def i32(self) -> int:
        return self.unpack("i")[0]

    def string(self) -> str:
        return self.take(self.u8()).decode("utf-8", errors="replace")

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)

    def done(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolError(f"{self.what} payload has {len(self.data) - self.pos} unexpected trailing bytes")


def _str(s: str) -> bytes:
    b = s.encode()[:255]
    return bytes([len(b)]) + b


# ---- messages --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorDesc:
    shape: tuple[int, ...]
    scale_bits: int
    zero_point: int

    @property
    def scale(self) -> float:
        return f32_from_bits(self.scale_bits)

    def pack(self) -> bytes:
        return (bytes([len(self.shape)]) + struct.pack(f"<{len(self.shape)}H", *self.shape)
                + struct.pack("<Ii", self.scale_bits, self.zero_point))

    @classmethod
    def read(cls, r: Reader) -> TensorDesc:
        ndim = r.u8()
        shape = r.unpack(f"{ndim}H")
        bits, zp = r.unpack("Ii")
        return cls(tuple(shape), bits, zp)


@dataclass(frozen=True)
class Info:
    protocol_version: int
    board: str
    engine: str
    firmware_version: str
    model_sha256: str
    timer_kind: str
    core_clock_hz: int
    timer_units_per_tick: int
    arena_bytes: int
    uart_baud: int
    engine_status: int
    num_images: int
    max_payload: int
    max_detections: int
    input: TensorDesc
    scores: TensorDesc
    boxes: TensorDesc

    def pack(self) -> bytes:
        return (bytes([self.protocol_version]) + b"".join(_str(s) for s in (
            self.board, self.engine, self.firmware_version, self.model_sha256, self.timer_kind))
            + struct.pack("<IIIIiHHH", self.core_clock_hz, self.timer_units_per_tick, self.arena_bytes,
                          self.uart_baud, self.engine_status, self.num_images, self.max_payload,
                          self.max_detections)
            + self.input.pack() + self.scores.pack() + self.boxes.pack())

    @classmethod
    def parse(cls, payload: bytes) -> Info:
        r = Reader(payload, "INFO")
        head = [r.u8(), *(r.string() for _ in range(5))]
        nums = r.unpack("IIIIiHHH")
        tensors = [TensorDesc.read(r) for _ in range(3)]
        r.done()
        return cls(*head, *nums, *tensors)

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("input", "scores", "boxes")}
        for k in ("input", "scores", "boxes"):
            t = getattr(self, k)
            d[k] = {"shape": list(t.shape), "scale": t.scale, "zero_point": t.zero_point}
        return d


@dataclass(frozen=True)
class ImageEntry:
    index: int
    size: int
    name: str

    def pack(self) -> bytes:
        return struct.pack("<HI", self.index, self.size) + _str(self.name)

    @classmethod
    def parse(cls, payload: bytes) -> ImageEntry:
        r = Reader(payload, "IMAGE")
        index, size = r.unpack("HI")
        name = r.string()
        r.done()
        return cls(index, size, name)


@dataclass(frozen=True)
class UploadAck:
    kind: int
    received: int

    def pack(self) -> bytes:
        return struct.pack("<BI", self.kind, self.received)

    @classmethod
    def parse(cls, payload: bytes) -> UploadAck:
        r = Reader(payload, "UPLOAD_ACK")
        out = cls(*r.unpack("BI"))
        r.done()
        return out


DETECTION = struct.Struct("<iiiiHBb")  # x1 y1 x2 y2 (fixed point), cell, class id, int8 score


@dataclass(frozen=True)
class Result:
    source: int
    image_index: int
    input_crc32: int
    preprocess_ticks: int
    inference_ticks: int
    postprocess_ticks: int
    coord_frac_bits: int
    detections: tuple[tuple[int, int, int, int, int, int, int], ...] = field(default=())  # as nd_detection_t

    def pack(self) -> bytes:
        return (struct.pack("<BHIIIIHH", self.source, self.image_index, self.input_crc32, self.preprocess_ticks,
                            self.inference_ticks, self.postprocess_ticks, self.coord_frac_bits,
                            len(self.detections))
                + b"".join(DETECTION.pack(*d) for d in self.detections))

    @classmethod
    def parse(cls, payload: bytes) -> Result:
        r = Reader(payload, "RESULT")
        *head, n = r.unpack("BHIIIIHH")
        dets = tuple(DETECTION.unpack(r.take(DETECTION.size)) for _ in range(n))
        r.done()
        return cls(*head, dets)


@dataclass(frozen=True)
class Data:
    region: int
    offset: int
    data: bytes

    def pack(self) -> bytes:
        return struct.pack("<BI", self.region, self.offset) + self.data

    @classmethod
    def parse(cls, payload: bytes) -> Data:
        r = Reader(payload, "DATA")
        region, offset = r.unpack("BI")
        return cls(region, offset, r.rest())


@dataclass(frozen=True)
class StepRecords:
    """Per-step records of the last RUN (STEP_RECORDS): `records[i]` is step `first + i` as (timer ticks, CRC-32 of
    its outputs, their bytes); `completed` steps ran; `flags` says what that RUN recorded (STEP_*)."""
    total: int
    completed: int
    flags: int
    first: int
    records: tuple[tuple[int, int, int], ...] = field(default=())

    def pack(self) -> bytes:
        return (STEPS_HEADER.pack(self.total, self.completed, self.flags, self.first, len(self.records))
                + b"".join(STEP_RECORD.pack(*r) for r in self.records))

    @classmethod
    def parse(cls, payload: bytes) -> StepRecords:
        r = Reader(payload, "STEP_RECORDS")
        total, completed, flags, first, n = r.unpack(STEPS_HEADER.format[1:])
        records = tuple(STEP_RECORD.unpack(r.take(STEP_RECORD.size)) for _ in range(n))
        r.done()
        if first + n > total or completed > total:
            raise ProtocolError(f"STEP_RECORDS of steps {first}..{first + n - 1} (completed {completed}) "
                                f"beyond the {total} steps it announces")
        return cls(total, completed, flags, first, records)


@dataclass(frozen=True)
class DeviceError:
    code: int
    request_type: int
    text: str

    def pack(self) -> bytes:
        return struct.pack("<HB", self.code, self.request_type) + _str(self.text)

    @classmethod
    def parse(cls, payload: bytes) -> DeviceError:
        r = Reader(payload, "ERROR")
        code, req = r.unpack("HB")
        text = r.string()
        r.done()
        return cls(code, req, text)

    def describe(self) -> str:
        req = TYPE_NAMES.get(self.request_type, f"0x{self.request_type:02x}")
        return f"device refused {req}: {self.text} (error {self.code}, {ERROR_NAMES.get(self.code, '?')})"


# request payloads
def image_info_request(index: int) -> bytes:
    return struct.pack("<H", index)


def upload_request(kind: int, offset: int, chunk: bytes) -> bytes:
    return struct.pack("<BI", kind, offset) + bytes(chunk)


def run_request(source: int, image_index: int = 0, step_flags: int = 0, stop_step: int = 0) -> bytes:
    """A plain RUN is 3 bytes; with step flags (STEP_*) it grows by the flags and the stop step."""
    if step_flags:
        return struct.pack("<BHBH", source, image_index, step_flags, stop_step)
    return struct.pack("<BH", source, image_index)


def steps_request(first: int, count: int) -> bytes:
    return struct.pack("<HH", first, count)


def read_request(region: int, index: int, offset: int, length: int) -> bytes:
    return struct.pack("<BHIH", region, index, offset, length)


def shutdown_request(code: int = 0) -> bytes:
    return bytes([code & 0xFF])


PARSERS = {INFO: Info.parse, IMAGE: ImageEntry.parse, UPLOAD_ACK: UploadAck.parse, RESULT: Result.parse,
           DATA: Data.parse, ERROR: DeviceError.parse, BYE: lambda p: None, STEP_RECORDS: StepRecords.parse}
