"""Generated + built mps2-an500 firmware for the tests, made once per test session, engine, model and image set."""
from __future__ import annotations

import atexit
import os
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


def _firmware(engine: str, model: Path, images: list[Path], profile: bool = False, defines: str = "",
              stock_transpose: bool = False) -> tuple[Path, Path]:
    key = (engine, str(model), tuple(map(str, images)), profile, defines, stock_transpose)
    if key not in _BUILT:
        from nanodet_mcu.codegen import generate
        from nanodet_mcu.device import build

        out = _base() / f"p{len(_BUILT)}"
        generate.generate("mps2-an500", model, engine=engine, out_dir=out, embed_images=images, log=lambda m: None,
                          profile=profile, tflm_stock_transpose=stock_transpose)
        old = os.environ.get("ND_DEFINES")
        os.environ["ND_DEFINES"] = defines  # the generated Makefile's extra -D flags (test-only faults)
        try:
            _BUILT[key] = (out, build.build(out))
        finally:
            if old is None:
                del os.environ["ND_DEFINES"]
            else:
                os.environ["ND_DEFINES"] = old
    return _BUILT[key]


def aot_firmware(model: Path, images: list[Path], profile: bool = False, defines: str = "") -> tuple[Path, Path]:
    """(project dir, ELF) of `generate --board mps2-an500 --engine aot [--profile]` + `build` for this model and
    images; `defines`: extra -D flags of the build (ND_DEFINES)."""
    require_tool("arm-none-eabi-gcc")
    return _firmware("aot", model, images, profile, defines)


def user_tflm() -> tuple[str, str]:
    """TFLM_INCLUDE / TFLM_LIB of a TFLM built for Cortex-M7 beside the project, or skip with the reason."""
    include, lib = os.environ.get("TFLM_INCLUDE", ""), os.environ.get("TFLM_LIB", "")
    if not (include.strip() and lib.strip()):
        pytest.skip("TFLM_INCLUDE / TFLM_LIB not set: the mps2-an500 TFLM build needs a TFLM built for cortex-m7+fp "
                    "(tflite-micro make TARGET=cortex_m_generic TARGET_ARCH=cortex-m7+fp)")
    if not Path(lib).is_file():
        pytest.skip(f"TFLM_LIB={lib} is not a file")
    return include, lib


def tflm_firmware(model: Path, images: list[Path], profile: bool = False, stock_transpose: bool = False,
                  defines: str = "") -> tuple[Path, Path]:
    """(project dir, ELF) of `generate --board mps2-an500 --engine tflm` + `build`, linked against the user's TFLM
    (TFLM_INCLUDE / TFLM_LIB, which the generated Makefile reads from the environment); skips without one."""
    user_tflm()
    require_tool("arm-none-eabi-g++")
    require_tool("make")
    return _firmware("tflm", model, images, profile, defines, stock_transpose)


def ci_images(example_image: Path, val_images: list[Path]) -> list[Path]:
    """The CI set: the example image and the first 3 COCO validation images."""
    return [example_image, *val_images[:3]]
