"""Shared fixtures: paths into ../shared (skip with a reason when absent) and toolchain checks."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def shared_path(rel: str) -> Path:
    p = SHARED / rel
    if not p.exists():
        pytest.skip(f"shared data not available: {p} (tests that need ../shared skip without it)")
    return p


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (.ci/run installs it)")
    return path


def cortex_m7_flags() -> list[str]:
    """The Cortex-M7 flags the emulated board's firmware is compiled with (its board file), for cross-build checks."""
    from nanodet_mcu import boards

    board = boards.load("mps2-an500")
    return [*board.arch_flags, *board.data["build"]["cflags"]]


def require_sdk(layout: str | None = None, tools: bool = True):
    """The MCUXpresso SDK tree MCUX_SDK_ROOT names (nanodet_mcu.device.sdk.SdkTree: its layout, "mcuxsdk" or
    "classic", and root) with the Arm toolchain and, unless `tools` is false, what its builds need; or skip with the
    reason.  `layout` skips the other layout."""
    import os

    from nanodet_mcu.device import sdk
    from nanodet_mcu.errors import NanodetError

    root = os.environ.get("MCUX_SDK_ROOT")
    if not root:
        pytest.skip("MCUX_SDK_ROOT not set: full RT builds need an MCUXpresso SDK tree with eIQ TFLM, the current "
                    "west mcuxsdk layout (v24.12.00 checked) or a classic one (2.15, MCUX_2.15.000)")
    try:
        tree = sdk.detect(root)
    except NanodetError as exc:
        pytest.skip(str(exc))
    if layout is not None and tree.sdk != layout:
        pytest.skip(f"MCUX_SDK_ROOT holds {sdk.NAMES[tree.sdk]}; this test needs {sdk.NAMES[layout]}")
    missing = sdk.missing_tools(tree.sdk) if tools else []
    if missing:
        pytest.skip(f"the {tree.sdk} build needs {', '.join(missing)}")
    require_tool("arm-none-eabi-gcc")
    return tree


@pytest.fixture(scope="session")
def onnx_path() -> Path:
    return shared_path("models/nanodet_m_0.5x.onnx")


@pytest.fixture(scope="session")
def nxp_model_path() -> Path:
    return shared_path("models/nxp_nanodet_m_0.5x.tflite")


@pytest.fixture(scope="session")
def example_image() -> Path:
    return shared_path("images/example_input.jpg")


@pytest.fixture(scope="session")
def val_dir() -> Path:
    return shared_path("coco/val")


@pytest.fixture(scope="session")
def calib_dir() -> Path:
    return shared_path("coco/calib")


@pytest.fixture(scope="session")
def val_images(val_dir) -> list[Path]:
    return sorted(val_dir.glob("*.jpg"))


@pytest.fixture(scope="session")
def our_model_path(onnx_path, calib_dir) -> Path:
    """Our int8 model converted from the ONNX export with the default calibration draw, once per cache key.

    The key hashes the converter's sources, the weights and the calibration images, so any change that could
    alter the file converts again; otherwise the cached file under the nanodet-mcu cache dir is reused.
    """
    import hashlib
    from importlib.metadata import version

    import nanodet_mcu
    from nanodet_mcu import hostcc
    from nanodet_mcu.model import convert

    pkg = Path(nanodet_mcu.__file__).parent
    key = hashlib.sha256(f"tensorflow {version('tensorflow')}".encode())
    sources = [pkg / "preprocess.py", *sorted((pkg / "model").rglob("*.py"))]
    for f in [*sources, onnx_path, *sorted(p for p in calib_dir.iterdir() if p.is_file())]:
        key.update(f.name.encode() + f.read_bytes())
    out = hostcc.cache_dir().parent / "models" / f"nanodet_m_0.5x-{key.hexdigest()[:20]}.tflite"
    if not out.exists():
        convert.convert(onnx_path, calib_dir, out_path=out)  # written atomically: never a half file in the cache
    return out
