"""Generated projects built against a real MCUXpresso SDK and a real TensorFlow Lite Micro, and the TFLM firmware
run on the emulator.  Nothing external is part of the project: each test runs only when the environment names it
and skips with the reason otherwise.

- MCUX_SDK_ROOT: a classic MCUXpresso SDK tree (west layout with core/ and middleware/eiq/tensorflow-lite, or an SDK
  package) -> the RT projects are built with their own build.sh, TFLM from the SDK's sources (ND_TFLM_PREBUILT=OFF,
  the slow path that test_generate_build.py leaves out), and the link map is checked.
- TFLM_INCLUDE (space-separated: the tflite-micro root, its flatbuffers/include and gemmlowp) and
  TFLM_LIB (libtensorflow-microlite.a for cortex-m7, hard float) -> the mps2-an500 TFLM project links, and
  with qemu-system-arm one inference on the emulator must match the host TFLM bit for bit (this is what catches a
  TFLM whose optimised kernels miscompute the model, e.g. CMSIS-NN's TRANSPOSE skipping 5-D shuffles).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_sdk_root, require_tool
from tests.firmware_builds import tflm_firmware

pytestmark = pytest.mark.slow


def _run(cmd, cwd=None, env=None, timeout=3600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def _generate(board: str, engine: str, model: Path, out: Path, images=()) -> dict:
    from nanodet_mcu.codegen import generate

    generate.generate(board, model, engine=engine, out_dir=out, embed_images=list(images), log=lambda m: None)
    return json.loads((out / "project.json").read_text())


def _section(elf: Path, name: str) -> tuple[int, int]:
    """(address, size) of an ELF section."""
    for line in _run(["arm-none-eabi-readelf", "-SW", elf]).stdout.splitlines():
        fields = line.replace("[", " ").replace("]", " ").split()
        if name in fields:
            i = fields.index(name)
            return int(fields[i + 2], 16), int(fields[i + 4], 16)
    raise AssertionError(f"{elf} has no {name} section")


@pytest.mark.parametrize("board", ["rt1050", "rt1170"])
def test_rt_tflm_project_builds_tflm_from_sdk_sources(board, nxp_model_path, tmp_path):
    root = require_sdk_root()
    out = tmp_path / board
    manifest = _generate(board, "tflm", nxp_model_path, out)
    env = dict(os.environ, MCUX_SDK_ROOT=str(root), ND_TFLM_PREBUILT="OFF")
    _run(["sh", out / "build.sh"], cwd=out, env=env)
    elf = out / manifest["elf"]
    assert elf.is_file()
    from nanodet_mcu import boards

    region = next(m for m in boards.load(board).memory if m.name == manifest["arena_region"])
    arena, _ = _section(elf, ".nd_arena")
    assert region.address <= arena and arena + manifest["arena_bytes"] <= region.address + region.size
    # The model must stay in XIP flash (the SDK linker file puts .rodata in .text), not be copied into RAM.
    symbols = _run(["arm-none-eabi-nm", elf]).stdout.split()
    model = int(symbols[symbols.index("nd_model_data") - 2], 16)
    text, text_size = _section(elf, ".text")
    assert text <= model < text + text_size, f"nd_model_data at {model:#x} is outside .text (flash)"


def test_mps2_tflm_firmware_matches_host_tflm_on_the_emulator(nxp_model_path, example_image, tmp_path):
    _, elf = tflm_firmware(nxp_model_path, [example_image])  # the link itself is the first check
    require_tool(os.environ.get("NANODET_MCU_QEMU", "qemu-system-arm"))
    report = tmp_path / "verify.json"
    proc = subprocess.run([sys.executable, "-m", "nanodet_mcu", "verify", "--emulate", elf,
                           "--model", nxp_model_path, "--embedded", "--run-timeout", "1800",
                           "--report", report], capture_output=True, text=True, timeout=3600)
    assert report.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    checks = json.loads(report.read_text())["checks"]
    failed = [c for c in checks if not c["passed"]]
    assert not failed, f"device differs from the host TFLM: {failed}"
