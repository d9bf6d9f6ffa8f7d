"""Generated + built mps2-an500 firmware for the tests, made once per test session and model."""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import require_tool

_BASE: Path | None = None
_BUILT: dict[tuple, tuple[Path, Path]] = {}


def _base() -> Path:
    global _BASE
    if _BASE is None:
        _BASE = Path(tempfile.mkdtemp(prefix="nanodet-fw-"))
        atexit.register(shutil.rmtree, _BASE, True)
    return _BASE


def aot_firmware(model: Path, images: list[Path]) -> tuple[Path, Path]:
    """(project dir, ELF) of `generate --board mps2-an500 --engine aot` + `build` for this model and images."""
    require_tool("arm-none-eabi-gcc")
    key = (str(model), tuple(map(str, images)))
    if key not in _BUILT:
        from nanodet_mcu import build, generate

        out = _base() / f"p{len(_BUILT)}"
        try:
            generate.generate("mps2-an500", model, engine="aot", out_dir=out, embed_images=images, log=lambda m: None)
        except ImportError as exc:  # pragma: no cover - the AOT engine is part of the package
            pytest.skip(f"AOT engine unavailable: {exc}")
        _BUILT[key] = (out, build.build(out))
    return _BUILT[key]


def ci_images(example_image: Path, val_images: list[Path]) -> list[Path]:
    """The CI set: the example image and the first 3 COCO validation images."""
    return [example_image, *val_images[:3]]
