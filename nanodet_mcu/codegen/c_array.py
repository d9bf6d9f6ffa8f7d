"""Bytes as C array initialisers: one formatting for model data, images and lookup tables."""
from __future__ import annotations

import numpy as np

PER_LINE = 16


def hex_bytes(data: bytes | np.ndarray, indent: str = "  ") -> str:
    """'0x..,' lines of 16 unsigned bytes (the body of a uint8_t initialiser)."""
    raw = bytes(np.asarray(data, dtype=np.uint8).tobytes()) if isinstance(data, np.ndarray) else bytes(data)
    lines = []
    for i in range(0, len(raw), PER_LINE):
        lines.append(indent + ",".join(f"0x{b:02x}" for b in raw[i:i + PER_LINE]) + ",")
    return "\n".join(lines)


def int_values(values, indent: str = "  ", per_line: int = PER_LINE) -> str:
    """Decimal signed values, per_line a line (int8 tables)."""
    flat = [int(v) for v in np.asarray(values).ravel()]
    return "\n".join(indent + ", ".join(f"{v}" for v in flat[i:i + per_line]) + ","
                     for i in range(0, len(flat), per_line))


def parse_hex_bytes(text: str) -> bytes:
    """Inverse of hex_bytes over the '{...}' body of a rendered array (used by tests and checks)."""
    body = text[text.index("{") + 1:text.rindex("}")]
    return bytes(int(tok, 16) for tok in body.replace("\n", " ").split(",") if tok.strip())
