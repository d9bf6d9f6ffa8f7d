"""AOT engine: every kernel and whole models byte-identical with tflite-micro; the emitted C is strict, sanitizer
clean and cross-compiles for Cortex-M7."""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from nanodet_mcu import model_info, preprocess
from nanodet_mcu.codegen.aot import emit_any, emit_c, kernels, quant
from nanodet_mcu.codegen.aot.host import KERNELS_DIR, REFERENCE_ONLY_FLAG, HostModel, kernel_sources
from nanodet_mcu.errors import NanodetError
from tests import aot_models
from tests.conftest import cortex_m7_flags, require_tool

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

KERNEL_CASES = [n for n in aot_models.case_names() if not n.startswith("unsupported_")]
# Every gate runs on each kernel build: the normal one (fast kernels where the generator chose them), the same with
# int8 conv weights (emit_c(weights_format="int8")), and ND_KERNELS_REFERENCE_ONLY (every op on nd_kernels_ref.c).
BUILDS = {"fast": (), "int8-weights": (), "reference": (REFERENCE_ONLY_FLAG,)}


def _weights(build: str) -> str:
    return "int8" if build == "int8-weights" else "int16"


def _tflm_outputs(interp, xs, n_out):
    for k, x in enumerate(xs):
        interp.set_input(x, k)
    interp.invoke()
    return [interp.get_output(k).copy() for k in range(n_out)]


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("case", KERNEL_CASES)
def test_kernel_matches_tflm(case, build):
    from tflite_micro.python.tflite_micro import runtime

    info = model_info.load(aot_models.build(case))
    model = HostModel(info, reference_only=build == "reference",  # also checks the scratch plan (nd_model_check)
                      weights_format=_weights(build))
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


class _FMap(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in ("h", "w", "c", "pstride", "cstride")]


class _ResizeParams(ctypes.Structure):  # nd_resize_params_t
    _fields_ = [("in_", _FMap), ("out", _FMap), ("align_corners", ctypes.c_int16),
                ("half_pixel_centers", ctypes.c_int16), ("kernel", ctypes.c_int)]


def test_resize_sources_match_the_c_and_pick_the_fast_kernels():
    """kernels.resize_sources (which picks RESIZE_QUARTER and RESIZE_HALF) against nd_resize_source, on NanoDet's and
    odd sizes."""
    lib = ctypes.CDLL(str(HostModel(model_info.load(aot_models.build("conv1x1_relu"))).lib_path))
    lib.nd_resize_source.restype = None
    out = [ctypes.c_int32() for _ in range(3)]
    for (ih, iw), (oh, ow) in [((20, 20), (40, 40)), ((40, 40), (20, 20)), ((5, 7), (10, 14)), ((4, 3), (7, 5)),
                               ((10, 9), (5, 4)), ((3, 8), (11, 2))]:
        for align, half in [(0, 0), (0, 1), (1, 0)]:
            p = kernels.Resize(kernels.FMap(ih, iw, 8, 8), kernels.FMap(oh, ow, 8, 8), align, half)
            c = _ResizeParams(_FMap(ih, iw, 8, 8, 1), _FMap(oh, ow, 8, 8, 1), align, half, 0)
            for axis in (0, 1):
                for o, want in enumerate(kernels.resize_sources(p, axis)):
                    lib.nd_resize_source(ctypes.byref(c), axis, o, *map(ctypes.byref, out))
                    assert tuple(v.value for v in out) == want, (p, axis, o)
    quarter = kernels.FMap(20, 20, 96, 96), kernels.FMap(40, 40, 96, 96)
    assert kernels.resize_quarter(kernels.Resize(*quarter, 0, 1))  # NanoDet's 2x up (weights 1/4, 3/4)
    assert kernels.resize_quarter(kernels.Resize(*quarter[::-1], 0, 1))  # and 1/2 down (1/2, 1/2)
    assert not kernels.resize_quarter(kernels.Resize(kernels.FMap(5, 6, 8, 8), kernels.FMap(9, 13, 8, 8), 1, 0))
    assert kernels.resize_half(kernels.Resize(*quarter[::-1], 0, 1))  # the 1/2 down is a 2x2 block's mean
    assert not kernels.resize_half(kernels.Resize(*quarter, 0, 1))
    assert not kernels.resize_half(kernels.Resize(*quarter[::-1], 0, 0))  # no half-pixel centres: weights 1, 0
    assert not kernels.resize_half(kernels.Resize(kernels.FMap(10, 9, 8, 8), kernels.FMap(5, 4, 8, 8), 0, 1))
    # the sample of a block summing to s: TFLM's weights (512 / 1024)^2 each, rounded half away from zero
    assert [kernels.resize_half_sample(s) for s in (-512, -7, -6, -2, -1, 0, 1, 2, 5, 6, 508)] == \
        [-128, -2, -2, -1, 0, 0, 0, 1, 1, 2, 127]


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
@pytest.mark.parametrize("build", BUILDS)
def test_whole_models_match_tflm(request, nxp_model_path, example_image, val_images, build):
    from nanodet_mcu.runners import TflmRunner

    for path in _model_paths(request, nxp_model_path):
        info = model_info.load(path)
        ref = TflmRunner(info)
        aot = HostModel(info, nanodet=True, reference_only=build == "reference", weights_format=_weights(build))
        lay = model_info.nanodet_layout(info)
        for p, x in _inputs(info, [example_image, *val_images[:50]]):
            got = aot.run([x])
            for w, g in zip(ref.run(x), (got[lay.scores_index], got[lay.boxes_index])):
                assert int((w != g).sum()) == 0, f"{Path(path).name} on {p.name}: outputs differ from TFLM ({build})"


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
    if (nd_model_check() >= 0 || nd_model_run(arena) != 0) return 4;
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
    """emitted(build) -> (info, directory, AotResult) of NXP's model, emitted once per weights format."""
    info, done = model_info.load(nxp_model_path), {}

    def emitted(build: str = "fast"):
        weights = _weights(build)
        if weights not in done:
            out = tmp_path_factory.mktemp(f"aot_nxp_{weights}")
            done[weights] = (info, out, emit_c(info, out, weights_format=weights))
        return done[weights]
    return emitted


@pytest.mark.slow
@pytest.mark.parametrize("build", BUILDS)
def test_emitted_c_runs_clean_under_sanitizers(nxp_emitted, example_image, tmp_path, build):
    from nanodet_mcu.runners import TflmRunner

    info, out, _ = nxp_emitted(build)
    (tmp_path / "driver.c").write_text(_DRIVER)
    exe = tmp_path / "model_san"
    cmd = [os.environ.get("CC", "cc"), "-std=c99", "-D_ISOC11_SOURCE", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
           "-fsanitize=address,undefined", "-fno-sanitize-recover=all", *BUILDS[build], f"-I{out}", f"-I{KERNELS_DIR}",
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


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("profile", [False, True])
def test_emitted_c_cross_compiles_for_cortex_m7(nxp_emitted, tmp_path, profile, build):
    cc = require_tool("arm-none-eabi-gcc")
    _, out, _ = nxp_emitted(build)
    flags = [*cortex_m7_flags(), "-std=c99", "-Wall", "-Wextra", "-Werror", *BUILDS[build], f"-I{out}",
             f"-I{KERNELS_DIR}"] + (["-DND_PROFILE"] if profile else [])
    for src in [out / "nd_model.c", *kernel_sources(arm=True)]:
        subprocess.run([cc, *flags, "-c", str(src), "-o", str(tmp_path / (src.stem + ".o"))], check=True,
                       capture_output=True, text=True)


def test_arena_is_far_below_tflm(nxp_emitted):
    info, _, result = nxp_emitted()
    assert result.arena_bytes < model_info.tflm_arena_bytes(info.data)
    assert result.arena_bytes % 16 == 0


# --- the same gates on the emulated Cortex-M7 (the Cortex-M7 assembly kernels run only there) -------------------

_M7_MAIN = r"""
#include <stdio.h>
#include <string.h>
#include "nd_board.h"
#include "nd_model.h"
#include "m7_inputs.h"

static uint8_t arena[ND_MODEL_ARENA_BYTES] __attribute__((aligned(16)));

int main(void)
{
    char line[64];
    nd_board_init();
    if (nd_model_check() >= 0) {
        return 3;
    }
    for (int t = 0; t < M7_TRIALS; ++t) {
        for (int k = 0; k < ND_MODEL_NUM_INPUTS; ++k) {
            memcpy(nd_model_input_at(arena, k), m7_inputs[t][k], m7_input_bytes[k]);
        }
        if (nd_model_run(arena) != 0) {
            return 4;
        }
        for (int k = 0; k < ND_MODEL_NUM_OUTPUTS; ++k) {
            uint32_t h = 2166136261u;
            const int8_t *o = nd_model_output_at(arena, k);
            for (uint32_t i = 0; i < m7_output_bytes[k]; ++i) {
                h = (h ^ (uint8_t)o[i]) * 16777619u;
            }
            snprintf(line, sizeof line, "OUT %d %d %08lx\n", t, k, (unsigned long)h);
            nd_board_uart_write((const uint8_t *)line, strlen(line));
        }
    }
    return 0;
}
"""


def _m7_inputs_header(info, trials) -> str:
    def sizes(tensors) -> str:
        return ", ".join(str(int(np.prod(t.shape))) for t in tensors)

    lines = ["#include <stdint.h>", f"#define M7_TRIALS {len(trials)}",
             f"static const uint32_t m7_input_bytes[] = {{{sizes(info.inputs)}}};",
             f"static const uint32_t m7_output_bytes[] = {{{sizes(info.outputs)}}};"]
    names = []
    for t, xs in enumerate(trials):
        row = []
        for k, x in enumerate(xs):
            lines.append(f"static const int8_t m7_in_{t}_{k}[] = {{{', '.join(str(int(v)) for v in x.reshape(-1))}}};")
            row.append(f"m7_in_{t}_{k}")
        names.append("{" + ", ".join(row) + "}")
    lines.append(f"static const int8_t *const m7_inputs[][{len(info.inputs)}] = {{{', '.join(names)}}};")
    return "\n".join(lines) + "\n"


@pytest.mark.slow
@pytest.mark.parametrize("build", BUILDS)
def test_kernels_on_cortex_m7_match_tflm(build, tmp_path_factory):
    """Every single-op model built for the Cortex-M7 (mps2-an500, the same flags as the firmware) and run on QEMU:
    outputs byte-identical with tflite-micro on the host."""
    from tflite_micro.python.tflite_micro import runtime

    from nanodet_mcu.codegen.aot import qemu

    if qemu.tools() is None:
        pytest.skip("arm-none-eabi-gcc and qemu-system-arm are needed (.ci/run installs them)")
    objects = tmp_path_factory.mktemp(f"m7_objs_{build}")
    failures = []
    for case in KERNEL_CASES:
        info = model_info.load(aot_models.build(case))
        out = tmp_path_factory.mktemp(f"m7_{case}_{build}")
        emit_any(info, out, weights_format=_weights(build))
        rng = np.random.default_rng(zlib.crc32(case.encode()))
        trials = [[rng.integers(-128, 128, t.shape).astype(np.int8) for t in info.inputs] for _ in range(3)]
        trials += [[np.full(t.shape, v, np.int8) for t in info.inputs] for v in (-128, 127)]
        (out / "m7_inputs.h").write_text(_m7_inputs_header(info, trials))
        (out / "m7_main.c").write_text(_M7_MAIN)
        elf = qemu.build_elf(out, [out / "nd_model.c", out / "m7_main.c"], out / "m7.elf",
                             reference_only=build == "reference", objects_dir=objects)
        lines = [line.split()[1:] for line in qemu.run_elf(elf, timeout=120).splitlines() if line.startswith("OUT ")]
        got = {(int(t), int(k)): int(h, 16) for t, k, h in lines}
        interp = runtime.Interpreter.from_bytes(info.data)
        for t, xs in enumerate(trials):
            for k, want in enumerate(_tflm_outputs(interp, xs, len(info.outputs))):
                if got.get((t, k)) != qemu.fnv1a(want.astype(np.int8).tobytes()):
                    failures.append(f"{case} trial {t} output {k}")
    assert not failures, "differ from tflite-micro on the Cortex-M7: " + ", ".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("build", BUILDS)
def test_whole_models_on_cortex_m7(request, nxp_model_path, example_image, build, tmp_path):
    """Both models built for the Cortex-M7 and run on QEMU in each kernel build: outputs byte-identical with
    tflite-micro on the host, and the painted stack below the caller within ND_KERNELS_STACK_BYTES."""
    import re

    from nanodet_mcu.codegen.aot import kernels, qemu
    from nanodet_mcu.runners import TflmRunner

    if qemu.tools() is None:
        pytest.skip("arm-none-eabi-gcc and qemu-system-arm are needed (.ci/run installs them)")
    for k, path in enumerate(_model_paths(request, nxp_model_path)):
        info = model_info.load(path)
        out = tmp_path / f"m{k}"
        _, x = next(_inputs(info, [example_image]))
        elf, _ = qemu.build_aot_elf(info, x, out, _weights(build), reference_only=build == "reference")
        stdout = qemu.run_elf(elf, timeout=600)
        got = re.search(r"TOTAL \d+ HASH ([0-9a-f]+) RC (-?\d+)", stdout)
        stack = re.search(r"STACK (\d+) \d+", stdout)
        assert got and stack, stdout[-1000:]
        want = b"".join(t.astype(np.int8).tobytes() for t in TflmRunner(info).run(x))
        assert got.group(2) == "0" and int(got.group(1), 16) == qemu.fnv1a(want), f"{Path(path).name}: outputs differ"
        assert int(stack.group(1)) <= kernels.stack_bytes(), f"{Path(path).name}: stack {stack.group(1)} B"


def test_generate_weights_format(nxp_model_path, tmp_path):
    """`generate --weights-format int8` halves the conv weights' flash and records the choice; TFLM refuses it."""
    from nanodet_mcu.codegen import generate

    projects = {fmt: generate.generate("mps2-an500", nxp_model_path, engine="aot", out_dir=tmp_path / fmt,
                                       weights_format=fmt, log=lambda m: None) for fmt in ("int16", "int8")}
    for fmt, project in projects.items():
        manifest = json.loads((project.out_dir / "project.json").read_text())
        assert manifest["aot"]["weights_format"] == fmt
        assert 0 < manifest["aot"]["scratch_bytes"] < project.arena_bytes
    assert projects["int8"].flash_bytes["aot_constants"] < 0.7 * projects["int16"].flash_bytes["aot_constants"]
    with pytest.raises(NanodetError, match="aot engine only"):
        generate.generate("mps2-an500", nxp_model_path, engine="tflm", out_dir=tmp_path / "tflm",
                          weights_format="int8", log=lambda m: None)
    assert not (tmp_path / "tflm").exists()
