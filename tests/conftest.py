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
