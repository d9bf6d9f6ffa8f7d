"""nd_postprocess.c as C: strict warnings, ASan/UBSan harness (tests/c/postprocess_harness.c) against the Python
integer model, rendered params compile, and the Cortex-M7 cross-build uses no float and no libm."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from nanodet_mcu import postprocess_fixed as pf
from tests.conftest import ROOT, cortex_m7_flags, require_tool
from tests.test_postprocess import VARIANTS, edge_cases, random_pair, to_layout

COMMON = ROOT / "firmware" / "common"
SOURCE = COMMON / "nd_postprocess.c"
HARNESS = ROOT / "tests" / "c" / "postprocess_harness.c"
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion", "-Wshadow"]
ARM_FLAGS = cortex_m7_flags()
# The only runtime helper allowed on the device: 64-bit unsigned division (the softmax expectation, candidates only).
ALLOWED_HELPERS = {"__aeabi_uldivmod"}


def compile_ok(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def params_source(params: list[pf.FixedParams]) -> str:
    p0 = params[0]
    scores = pf._extent((p0.scores_row_stride, p0.grid_h), (p0.scores_col_stride, p0.grid_w),
                        (p0.scores_class_stride, p0.num_classes))
    boxes = pf._extent((p0.boxes_row_stride, p0.grid_h), (p0.boxes_col_stride, p0.grid_w),
                       (p0.boxes_side_stride, pf.SIDES), (p0.boxes_bin_stride, p0.num_bins))
    inits = ",\n".join(p.c_initializer() for p in params)
    return (f'#include <stddef.h>\n#include "nd_postprocess.h"\n\nconst nd_post_params_t harness_params[] = {{\n'
            f"{inits}\n}};\nconst unsigned harness_param_count = {len(params)}u;\n"
            f"const size_t harness_scores_bytes = {scores}u;\nconst size_t harness_boxes_bytes = {boxes}u;\n")


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_strict_warnings(cc, tmp_path):
    require_tool(cc)
    compile_ok([cc, *STRICT, "-O2", "-c", str(SOURCE), "-o", str(tmp_path / "pp.o")])


def test_sanitized_harness_matches_python(tmp_path):
    """Edge cases under every params variant and random tensors, run under ASan+UBSan, equal to the model."""
    cc = require_tool(os.environ.get("CC", "gcc"))
    variants = list(VARIANTS.values())
    (tmp_path / "params.c").write_text(params_source(variants))
    exe = tmp_path / "harness"
    compile_ok([cc, *STRICT, "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                "-fno-omit-frame-pointer", f"-I{COMMON}", str(HARNESS), str(tmp_path / "params.c"), str(SOURCE),
                "-o", str(exe)])
    cases = []
    for k, p in enumerate(variants):
        for _, s, b in edge_cases():
            for cap in (0, 1, 100):
                cases.append((k, cap, *to_layout(p, s, b)))
    rng = np.random.default_rng(99)
    for i in range(600):
        k = i % len(variants)
        cases.append((k, int(rng.integers(0, 101)), *to_layout(variants[k], *random_pair(rng))))
    with open(tmp_path / "vectors.bin", "wb") as f:
        for k, cap, s, b in cases:
            f.write(bytes([k, cap & 0xFF, cap >> 8]) + s.tobytes() + b.tobytes())
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
    proc = subprocess.run([str(exe), str(tmp_path / "vectors.bin")], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-500:] + proc.stderr[-2000:]
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert len(lines) == len(cases)
    for line, (k, cap, s, b) in zip(lines, cases):
        expected = pf.run(s, b, variants[k], capacity=cap)
        fields = [int(v) for v in line.split()]
        assert fields[0] == len(expected)
        got = [pf.FixedDetection(*fields[1 + 7 * i: 8 + 7 * i]) for i in range(fields[0])]
        assert got == expected


def test_cortex_m7_build_has_no_float(tmp_path):
    """Cross-build as on the board; a soft-float build must call no float/double helper and nothing from libm."""
    cc = require_tool("arm-none-eabi-gcc")
    nm = require_tool("arm-none-eabi-nm")
    compile_ok([cc, *ARM_FLAGS, *STRICT, "-c", str(SOURCE), "-o", str(tmp_path / "hard.o")])
    soft = tmp_path / "soft.o"
    compile_ok([cc, "-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=soft", "-O2", *STRICT, "-c", str(SOURCE),
                "-o", str(soft)])
    undefined = set(subprocess.run([nm, "-u", str(soft)], capture_output=True, text=True, check=True)
                    .stdout.split()) - {"U"}
    assert undefined <= ALLOWED_HELPERS, undefined
    code = re.sub(r"/\*.*?\*/", "", SOURCE.read_text() + (COMMON / "nd_postprocess.h").read_text(), flags=re.S)
    assert not re.search(r"\b(float|double|malloc|free)\b", code)
    sizes = arm_section_sizes(tmp_path / "hard.o")  # reentrant: no mutable static state at all
    assert sizes.get(".data", 0) == 0 and sizes.get(".bss", 0) == 0, sizes


def test_rendered_params_compile_for_the_board(tmp_path):
    cc = require_tool("arm-none-eabi-gcc")
    src = tmp_path / "params.c"
    src.write_text(params_source([VARIANTS["nxp"]]))
    compile_ok([cc, *ARM_FLAGS, *STRICT, f"-I{COMMON}", "-c", str(src), "-o", str(tmp_path / "params.o")])


def arm_section_sizes(obj: Path) -> dict[str, int]:
    out = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes
