"""Image -> model input, the one definition shared by detect, calibration, generate and verify.

The pipeline is: decode -> RGB888 -> resize to 320x320 (uint8, PIL bilinear, no letterbox, as the zoo's
example does) -> per-channel lookup table to int8 in BGR order.  Because the resize happens in uint8 and the
quantisation is a 256-entry table per channel, the device (which receives RGB888 pixels and applies the same
table) reproduces the host's input tensor bit for bit.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nanodet_mcu import spec
from nanodet_mcu.errors import NanodetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to HxWx3 uint8 RGB."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            # Over Pillow's pixel limit it warns, over twice the limit it refuses (DecompressionBombError): both are
            # refused here, on one line, before gigabytes are allocated.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise NanodetError(f"cannot read image {path}: {_one_line(exc)}") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:  # Pillow's decoders raise all of these
        raise NanodetError(f"cannot read image {path}: {_one_line(exc) or type(exc).__name__}") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def resize_rgb(rgb: np.ndarray, size: int = spec.INPUT_SIZE) -> np.ndarray:
    """Resize HxWx3 uint8 RGB to size x size x 3 uint8 (aspect ratio not kept)."""
    from PIL import Image

    if rgb.shape[:2] == (size, size):
        return np.ascontiguousarray(rgb, dtype=np.uint8)
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR), dtype=np.uint8)


def normalize(rgb320: np.ndarray) -> np.ndarray:
    """320x320x3 uint8 RGB -> 1x320x320x3 float32 BGR, (x - mean) / std: the float model's input."""
    bgr = rgb320[..., ::-1].astype(np.float32)
    out = (bgr - np.asarray(spec.MEAN_BGR, np.float32)) / np.asarray(spec.STD_BGR, np.float32)
    return out[None]


def input_lut(scale: float, zero_point: int) -> np.ndarray:
    """(3, 256) int8 table: lut[c][v] is the quantised input for BGR channel c and pixel value v.

    Round half to even, then clip to int8 (never a wrapping cast).
    """
    v = np.arange(256, dtype=np.float64)
    mean = np.asarray(spec.MEAN_BGR, np.float64)[:, None]
    std = np.asarray(spec.STD_BGR, np.float64)[:, None]
    q = np.round((v[None, :] - mean) / std / float(scale)) + int(zero_point)
    return np.clip(q, -128, 127).astype(np.int8)


def quantize(rgb320: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """320x320x3 uint8 RGB -> 1x320x320x3 int8 BGR through the per-channel table."""
    lut = input_lut(scale, zero_point)
    bgr = rgb320[..., ::-1]
    out = np.empty(bgr.shape, np.int8)
    for c in range(3):
        out[..., c] = lut[c][bgr[..., c]]
    return out[None]


def list_images(directory: str | Path) -> list[Path]:
    """Image files of a directory, sorted by name (the order every command uses)."""
    d = Path(directory)
    if not d.is_dir():
        raise NanodetError(f"not a directory: {d}")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise NanodetError(f"no images (*.jpg, *.png, *.bmp) in {d}")
    return files
