"""Byte transport to the device over pyserial (a board's USB-UART or the emulator's pty), frames in and out."""
from __future__ import annotations

import termios
import time

from nanodet_mcu.errors import NanodetError
from nanodet_mcu.link import protocol


class LinkClosed(NanodetError):
    """The port went away (board unplugged, emulator exited)."""


class WriteTimeout(NanodetError):
    """The device stopped taking bytes (a frozen emulator, a board halted in the debugger): the port is still open,
    so the request just failed, like one that got no reply."""


class SerialTransport:
    """Writes frames, reads whatever arrives and turns it into frames; counts what it saw for the report."""

    def __init__(self, port: str, baud: int = 115200):
        import serial

        self.port = port
        try:
            self._serial = serial.Serial(port, baudrate=baud, timeout=0.05, write_timeout=10.0)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise NanodetError(f"cannot open serial port {port}: {exc}") from exc
        self.decoder = protocol.FrameDecoder()
        self.bytes_sent = 0
        self.bytes_received = 0

    def write(self, data: bytes, timeout: float = 10.0) -> None:
        """All of `data`, or WriteTimeout when the device takes none of it for `timeout` seconds."""
        import serial

        try:
            self._serial.write_timeout = max(timeout, 0.01)
            self._serial.write(data)
            self._serial.flush()
        except serial.SerialTimeoutException as exc:
            raise WriteTimeout(f"{self.port} took no data for {timeout:g} s") from exc
        except (serial.SerialException, OSError, termios.error) as exc:  # pty of an exited emulator: termios.error
            raise LinkClosed(f"writing to {self.port} failed: {exc}") from exc
        self.bytes_sent += len(data)

    def read_frames(self, timeout: float) -> list[protocol.Frame]:
        """Frames completed within `timeout` seconds (returns as soon as at least one is complete)."""
        import serial

        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                chunk = self._serial.read(max(1, self._serial.in_waiting))
            except (serial.SerialException, OSError, termios.error) as exc:
                raise LinkClosed(f"reading from {self.port} failed: {exc}") from exc
            if chunk:
                self.bytes_received += len(chunk)
                frames = self.decoder.feed(chunk)
                if frames:
                    return frames
            if time.monotonic() >= deadline:
                return []

    def resync(self) -> list[protocol.Frame]:
        """After a timeout: drop the stalled partial frame, return frames found in the bytes behind it."""
        frames = []
        while self.decoder.pending and not frames:
            frames = self.decoder.resync()
        return frames

    def close(self) -> None:
        self._serial.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
