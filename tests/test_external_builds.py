"""Generated projects built against a real MCUXpresso SDK and a real TensorFlow Lite Micro, and the TFLM firmware
run on the emulator.  Nothing external is part of the project: each test runs only when the environment names it
and skips with the reason otherwise.

- MCUX_SDK_ROOT: an MCUXpresso SDK tree with eIQ TFLM, the current west mcuxsdk layout (v24.12.00 checked) or the
  classic one (2.15: west layout with core/ and middleware/eiq/tensorflow-lite, or an SDK package) -> the RT TFLM
  projects are generated for the layout the tree holds and built with their own build.sh, TFLM from the SDK's
  sources (ND_TFLM_PREBUILT=OFF, the slow path that test_generate_build.py leaves out), and the image is checked.
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

import pytest

from tests.conftest import require_sdk, require_tool
from tests.firmware_builds import tflm_firmware
from tests.rt_builds import build_with_the_sdk, check_rt_image, section

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("board", ["rt1050", "rt1170"])
def test_rt_tflm_project_builds_tflm_from_sdk_sources(board, nxp_model_path, tmp_path):
    from nanodet_mcu.codegen import generate

    tree = require_sdk()
    project = generate.generate(board, nxp_model_path, engine="tflm", out_dir=tmp_path / board, log=lambda m: None,
                                sdk=tree.sdk)
    elf, output = build_with_the_sdk(project, tree, prebuilt="OFF")
    found = check_rt_image(project, elf)
    if tree.sdk == "mcuxsdk":  # TFLM really compiled: its sources and CMSIS-NN's, not the SDK's libtflm.a
        assert "micro_interpreter.cpp.obj" in output and "arm_convolve_s8.c.obj" in output
        assert "libtflm.a" not in (tmp_path / board / "build" / "build.ninja").read_text()
    # The model must stay in XIP flash (the SDK linker file puts .rodata in .text), not be copied into RAM.
    text, text_size = section(elf, ".text")
    assert text <= found["nd_model_data"][0] < text + text_size, "nd_model_data is outside .text (flash)"


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
