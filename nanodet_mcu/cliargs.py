"""argparse types for numeric options: a negative timeout, a zero limit or a NaN threshold is refused at parse time
with a one-line message instead of being accepted (and misbehaving later)."""
from __future__ import annotations

import argparse
import math


def _number(kind, text: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"'{text}' is not a finite number")
    return value


MAX_SECONDS = 1e6  # 11.6 days; far beyond, the operating system's timers overflow (select() with 1e12 s fails)


def seconds(text: str) -> float:
    """A duration: more than 0 and at most MAX_SECONDS."""
    value = _number(float, text)
    if not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_SECONDS:.0f} seconds, got {value:g}")
    return value


def int_within(low: int, high: int | None = None, why: str = ""):
    """An integer in low..high (no upper bound when high is None); `why` explains the bound in the message."""
    def parse(text: str) -> int:
        value = _number(int, text)
        if value < low or (high is not None and value > high):
            bound = f"at least {low}" if high is None else f"within {low}..{high}"
            raise argparse.ArgumentTypeError(f"must be {bound}{why}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}" if high is None else f"integer in {low}..{high}"
    return parse


def fraction(text: str) -> float:
    value = _number(float, text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {value:g}")
    return value


positive_int = int_within(1)
non_negative_int = int_within(0)
