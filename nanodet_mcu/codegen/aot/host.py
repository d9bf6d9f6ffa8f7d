"""The emitted C built for the host and called through ctypes: `nanodet-mcu detect --interpreter aot`."""
from __future__ import annotations

import ctypes
import hashlib
import shutil
from pathlib import Path

import numpy as np

from nanodet_mcu import FIRMWARE_DIR, hostcc, model_info, outputs, runners, spec
from nanodet_mcu.codegen.aot import emit_any
from nanodet_mcu.errors import NanodetError

PACKAGE_DIR = Path(__file__).resolve().parent
KERNELS_DIR = FIRMWARE_DIR / "common"


def kernel_sources(arm: bool = False) -> list[Path]:
    """The kernels' sources: C, plus for Arm targets the Cortex-M7 assembly (nd_kernels_*_m7.S, empty on cores
    without the DSP extension, whose C twins then build instead)."""
    c = sorted(KERNELS_DIR.glob("nd_kernels*.c"))
    return c + sorted(KERNELS_DIR.glob("nd_kernels*.S")) if arm else c


def emit_dir(info: model_info.ModelInfo, nanodet: bool, weights_format: str = "int16") -> Path:
    """Where the model's C is emitted: keyed by the model, the options and the generator's own source."""
    key = hashlib.sha256(info.sha256.encode() + bytes([nanodet]) + weights_format.encode())
    for src in sorted(PACKAGE_DIR.glob("*.py")):
        key.update(src.read_bytes())
    return hostcc.cache_dir().parent / "aot" / key.hexdigest()[:20]


REFERENCE_ONLY_FLAG = "-DND_KERNELS_REFERENCE_ONLY=1"


class HostModel:
    """Any supported int8 model's emitted C, built as a shared library: run(inputs) -> outputs.

    reference_only: build with ND_KERNELS_REFERENCE_ONLY (every op on its reference kernel); weights_format: see
    emit_c."""

    def __init__(self, info: model_info.ModelInfo, nanodet: bool = False,
                 flags: tuple[str, ...] = hostcc.DEFAULT_FLAGS, reference_only: bool = False,
                 weights_format: str = "int16"):
        out = emit_dir(info, nanodet, weights_format)
        fresh = not (out / "nd_model.c").exists() or not (out / "nd_model.h").exists()
        try:
            created = outputs.make_dirs(out) if fresh else []
        except OSError as exc:
            raise hostcc.cache_error(exc) from None
        self.dir = out
        flags = (*flags, REFERENCE_ONLY_FLAG) if reference_only else tuple(flags)
        try:
            if fresh:
                emit_any(info, out, nanodet, weights_format)
            self.lib_path = hostcc.build_shared_library(f"ndaot_{out.name[:12]}",
                                                        [out / "nd_model.c", *kernel_sources()],
                                                        [out, KERNELS_DIR], flags)
        except BaseException:  # a failed build leaves no sources in the cache (the next attempt emits them again)
            if fresh:
                shutil.rmtree(out, ignore_errors=True)
                outputs.remove_dirs(created)
            raise
        self._lib = ctypes.CDLL(str(self.lib_path))
        step = self._lib.nd_model_check()
        if step >= 0:
            raise NanodetError(f"the AOT kernels need other scratch than the plan reserved (step {step}): "
                               "kernels and generator do not match")
        for fn in ("nd_model_input_at", "nd_model_output_at"):
            getattr(self._lib, fn).restype = ctypes.c_void_p
            getattr(self._lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_int]
        self._lib.nd_model_run.argtypes = [ctypes.c_void_p]
        self.arena_bytes = self._define("ND_MODEL_ARENA_BYTES")
        self._arena = np.zeros(self.arena_bytes + 16, np.uint8)
        base = self._arena.ctypes.data
        self._base = base + (-base) % 16  # the contract: a 16-byte aligned arena
        self.inputs, self.outputs = info.inputs, info.outputs

    def _define(self, name: str) -> int:
        for line in (self.dir / "nd_model.h").read_text().splitlines():
            if line.startswith(f"#define {name} "):
                return int(line.split()[2].rstrip("u"))
        raise NanodetError(f"emitted nd_model.h has no {name}")

    def run(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        for k, (x, t) in enumerate(zip(xs, self.inputs)):
            x = np.ascontiguousarray(x, np.int8).reshape(t.shape)
            ctypes.memmove(self._lib.nd_model_input_at(self._base, k), x.ctypes.data, x.nbytes)
        if self._lib.nd_model_run(self._base) != 0:
            raise NanodetError("the AOT model failed to run")
        outs = []
        for k, t in enumerate(self.outputs):
            n = int(np.prod(t.shape))
            ptr = self._lib.nd_model_output_at(self._base, k)
            outs.append(np.ctypeslib.as_array((ctypes.c_int8 * n).from_address(ptr)).reshape(t.shape).copy())
        return outs


class AotRunner(runners.Runner):
    name = "aot"

    def __init__(self, info, flags: tuple[str, ...] = hostcc.DEFAULT_FLAGS):
        super().__init__(info)
        self.model = HostModel(info, nanodet=True, flags=flags)

    def run(self, x):
        outs = self.model.run([np.asarray(x).reshape(spec.INPUT_SHAPE)])
        return outs[self.layout.scores_index], outs[self.layout.boxes_index]
