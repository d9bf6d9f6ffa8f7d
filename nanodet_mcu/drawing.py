"""Boxes and labels drawn on an image (PIL), for `detect --out-dir`."""
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# --format choice -> (PIL format, file suffix, save options).  JPEG at quality 90 keeps a photo's annotated copy near
# the source's size (a PNG of a COCO photo is 400-700 KB).
FORMATS = {"jpg": ("JPEG", ".jpg", {"quality": 90}), "png": ("PNG", ".png", {})}

_PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]


def draw_detections(rgb: np.ndarray, detections: list[dict]) -> Image.Image:
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    for d in detections:
        colour = _PALETTE[d["class_id"] % len(_PALETTE)]
        x1, y1, x2, y2 = d["box"]
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=2)
        text = f"{d['label']} {d['score']:.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), text)
        draw.rectangle([left, top - (bottom - top) - 2, right + 2, y1], fill=colour)
        draw.text((x1 + 1, top - (bottom - top) - 1), text, fill=(0, 0, 0))
    return image


def output_format(source: str | Path, choice: str = "auto") -> str:
    """"jpg" or "png": `choice`, or with "auto" the source's own kind (JPEG in, JPEG out; PNG for the rest)."""
    if choice != "auto":
        return choice
    return "jpg" if Path(source).suffix.lower() in (".jpg", ".jpeg") else "png"


def encode(image: Image.Image, fmt: str) -> tuple[str, bytes]:
    """(file suffix, file contents) of the image in format `fmt`: detect stages its outputs and writes them together."""
    pil_format, suffix, options = FORMATS[fmt]
    buf = io.BytesIO()
    image.save(buf, pil_format, **options)
    return suffix, buf.getvalue()


def save(image: Image.Image, out_dir: str | Path, stem: str, fmt: str) -> Path:
    suffix, data = encode(image, fmt)
    path = Path(out_dir) / f"{stem}{suffix}"
    path.write_bytes(data)
    return path
