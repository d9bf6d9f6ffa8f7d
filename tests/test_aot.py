"""AOT engine: every kernel and whole models byte-identical with tflite-micro; the emitted C is strict, sanitizer
clean and cross-compiles for Cortex-M7."""
from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from nanodet_mcu import model_info, preprocess
from nanodet_mcu.codegen.aot import emit_any, emit_c, quant
from nanodet_mcu.codegen.aot.host import KERNELS_DIR, HostModel, kernel_sources
from nanodet_mcu.errors import NanodetError
from tests import aot_models
from tests.conftest import cortex_m7_flags, require_tool

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

KERNEL_CASES = [n for n in aot_models.case_names() if not n.startswith("unsupported_")]


def _tflm_outputs(interp, xs, n_out):
    for k, x in enumerate(xs):
        interp.set_input(x, k)
    interp.invoke()
    return [interp.get_output(k).copy() for k in range(n_out)]


@pytest.mark.parametrize("case", KERNEL_CASES)
def test_kernel_matches_tflm(case):
    from tflite_micro.python.tflite_micro import runtime

    info = model_info.load(aot_models.build(case))
    model = HostModel(info)
    interp = runtime.Interpreter.from_bytes(info.data)
    rng = np.random.default_rng(zlib.crc32(case.encode()))  # per case, and the same in every run
    trials = [[rng.integers(-128, 128, t.shape).astype(np.int8) for t in info.inputs] for _ in range(3)]
    trials += [[np.full(t.shape, v, np.int8) for t in info.inputs] for v in (-128, 127)]
    for xs in trials:
        want = _tflm_outputs(interp, xs, len(info.outputs))
        got = model.run(xs)
        for w, g in zip(want, got):
            assert w.shape == g.shape
            assert int((w != g).sum()) == 0, f"{case}: {int((w != g).sum())} bytes differ from tflite-micro"


def test_unsupported_op_is_refused(tmp_path):
    info = model_info.load(aot_models.build("unsupported_avgpool"))
    with pytest.raises(NanodetError, match="AVERAGE_POOL_2D"):
        emit_any(info, tmp_path / "out")
    assert not (tmp_path / "out").exists(), "a refused model must leave no emitted files behind"


def test_emit_c_refuses_non_nanodet(tmp_path):
    info = model_info.load(aot_models.build("conv1x1_relu"))
    with pytest.raises(NanodetError, match="NanoDet"):
        emit_c(info, tmp_path)


def test_fixed_point_primitives_match_python():
    """The C primitives against quant.py (which generates the tables), on edge cases and random values."""
    lib = ctypes.CDLL(str(HostModel(model_info.load(aot_models.build("conv1x1_relu"))).lib_path))
    lib.nd_mbqm.restype = lib.nd_srdhm.restype = ctypes.c_int32
    lib.nd_mbqm.argtypes = [ctypes.c_int32, ctypes.c_int32, ctypes.c_int]
    lib.nd_srdhm.argtypes = [ctypes.c_int32, ctypes.c_int32]
    rng = np.random.default_rng(3)
    edge = [-(1 << 31), (1 << 31) - 1, 0, 1, -1, 1 << 30, -(1 << 30)]
    for a in edge:
        for b in edge:
            assert lib.nd_srdhm(a, b) == quant.srdhm(a, b)
    for _ in range(3000):
        x = int(rng.integers(-(1 << 24), 1 << 24))
        m = int(rng.integers(1 << 30, (1 << 31) - 1))
        s = int(rng.integers(-31, 4))
        assert lib.nd_mbqm(x, m, s) == quant.mbqm(x, m, s), (x, m, s)


def test_quantize_multiplier_edges():
    assert quant.quantize_multiplier(0.0) == (0, 0)
    assert quant.quantize_multiplier(0.5) == (1 << 30, 0)
    m, s = quant.quantize_multiplier(1.0 - 2**-40)  # rounds up to 2^31: halved, shift bumped
    assert (m, s) == (1 << 30, 1)
    assert quant.quantize_multiplier(2.0**-40) == (0, 0)


# --- whole models ----------------------------------------------------------------------------------------------

def _model_paths(request, nxp_model_path):
    paths = [nxp_model_path]
    with contextlib.suppress(pytest.FixtureLookupError):
        paths.append(request.getfixturevalue("our_model_path"))
    return paths


def _inputs(info, images):
    lay = model_info.nanodet_layout(info)
    for p in images:
        yield p, preprocess.quantize(preprocess.resize_rgb(preprocess.load_rgb(p)), lay.input.scale,
                                     lay.input.zero_point)


@pytest.mark.slow
def test_whole_models_match_tflm(request, nxp_model_path, example_image, val_images):
    from nanodet_mcu.codegen.aot.host import AotRunner
    from nanodet_mcu.runners import TflmRunner

    for path in _model_paths(request, nxp_model_path):
        info = model_info.load(path)
        ref, aot = TflmRunner(info), AotRunner(info)
        for p, x in _inputs(info, [example_image, *val_images[:50]]):
            for want, got in zip(ref.run(x), aot.run(x)):
                assert int((want != got).sum()) == 0, f"{Path(path).name} on {p.name}: outputs differ from TFLM"


_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "nd_model.h"
/* Sanitizer run of the emitted model: input bytes from argv[1], outputs (scores then boxes) to argv[2]. */
int main(int argc, char **argv)
{
    if (argc != 3) return 2;
    uint8_t *arena = aligned_alloc(16, (ND_MODEL_ARENA_BYTES + 15u) / 16u * 16u);
    FILE *f = fopen(argv[1], "rb");
    if (!arena || !f || fread(nd_model_input(arena), 1, 320 * 320 * 3, f) != 320 * 320 * 3) return 3;
    fclose(f);
    if (nd_model_run(arena) != 0) return 4;
    f = fopen(argv[2], "wb");
    if (!f) return 5;
    fwrite(nd_model_scores(arena), 1, 10 * 10 * 80, f);
    fwrite(nd_model_boxes(arena), 1, 10 * 10 * 32, f);
    fclose(f);
    free(arena);
    return 0;
}
"""


@pytest.fixture(scope="module")
def nxp_emitted(nxp_model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("aot_nxp")
    info = model_info.load(nxp_model_path)
    result = emit_c(info, out)
    return info, out, result


@pytest.mark.slow
def test_emitted_c_runs_clean_under_sanitizers(nxp_emitted, example_image, tmp_path):
    from nanodet_mcu.runners import TflmRunner

    info, out, _ = nxp_emitted
    (tmp_path / "driver.c").write_text(_DRIVER)
    exe = tmp_path / "model_san"
    cmd = [os.environ.get("CC", "cc"), "-std=c99", "-D_ISOC11_SOURCE", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
           "-fsanitize=address,undefined", "-fno-sanitize-recover=all", f"-I{out}", f"-I{KERNELS_DIR}",
           str(tmp_path / "driver.c"), str(out / "nd_model.c"), *map(str, kernel_sources()), "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    _, x = next(_inputs(info, [example_image]))
    (tmp_path / "in.bin").write_bytes(x.tobytes())
    proc = subprocess.run([str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "runtime error" not in proc.stderr
    got = np.frombuffer((tmp_path / "out.bin").read_bytes(), np.int8)
    scores, boxes = TflmRunner(info).run(x)
    assert np.array_equal(got, np.concatenate([scores.reshape(-1), boxes.reshape(-1)]))


@pytest.mark.parametrize("profile", [False, True])
def test_emitted_c_cross_compiles_for_cortex_m7(nxp_emitted, tmp_path, profile):
    cc = require_tool("arm-none-eabi-gcc")
    _, out, _ = nxp_emitted
    flags = [*cortex_m7_flags(), "-std=c99", "-Wall",
             "-Wextra", "-Werror", f"-I{out}", f"-I{KERNELS_DIR}"] + (["-DND_PROFILE"] if profile else [])
    for src in [out / "nd_model.c", *kernel_sources()]:
        subprocess.run([cc, *flags, "-c", str(src), "-o", str(tmp_path / (src.stem + ".o"))], check=True,
                       capture_output=True, text=True)


def test_arena_is_far_below_tflm(nxp_emitted):
    info, _, result = nxp_emitted
    assert result.arena_bytes < model_info.tflm_arena_bytes(info.data)
    assert result.arena_bytes % 16 == 0
