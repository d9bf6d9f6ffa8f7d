"""Boxes and labels drawn on an image (PIL), for `detect --out-dir`."""
import numpy as np
from PIL import Image, ImageDraw

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
