"""verify --bisect: the first step whose output differs between the device and the host reference.

One instrumented RUN has the device checksum (CRC-32) every step's outputs right after the step, while they are still
live.  The host computes the same CRCs from tflite-micro with every intermediate tensor preserved, through the
engine's step table (steps.py: a fused AOT step compares at its last output; a step without a host twin is skipped).
The first step whose CRC differs is named; then the device runs again, stops right after that step, and its outputs
are read back over the link and compared with the host's byte by byte (differing bytes, max |delta|, which channels
and rows), both saved as .npy.
"""
from __future__ import annotations

import io
import re
import zlib
from pathlib import Path

import numpy as np

from nanodet_mcu import model_info, outputs
from nanodet_mcu.errors import NanodetError
from nanodet_mcu.link import protocol as p
from nanodet_mcu.verify.profile import check_records
from nanodet_mcu.verify.steps import Step, StepOutput


def host_tensors(info: model_info.ModelInfo, x: np.ndarray, indices: set[int]) -> dict[int, np.ndarray]:
    """tflite-micro's value of every tensor in `indices` after one inference on x (all intermediates preserved)."""
    from tflite_micro.python.tflite_micro import runtime

    arena = 2 * sum(out.bytes for step in _operator_outputs(info) for out in step) + (4 << 20)
    try:
        interp = runtime.Interpreter.from_bytes(info.data, arena_size=arena,
                                                intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
        interp.set_input(np.ascontiguousarray(x, np.int8), 0)
        interp.invoke()
        return {i: np.asarray(interp.GetTensor(i, 0)["tensor_data"]).copy() for i in sorted(indices)}
    except Exception as exc:  # the wrapper raises RuntimeError/ValueError with TFLM's message
        raise NanodetError(f"tflite-micro could not compute the intermediate tensors: {exc}") from exc


def _operator_outputs(info: model_info.ModelInfo) -> list[list[StepOutput]]:
    return [[StepOutput(t.index, t.name, t.shape, t.dtype) for t in op.outputs] for op in model_info.operators(info)]


def expected_crcs(steps: list[Step], tensors: dict[int, np.ndarray]) -> list[int | None]:
    """Per step the CRC-32 of its host twins concatenated (as the device's nd_steps_done), None without a twin."""
    out = []
    for step in steps:
        if not step.has_twin:
            out.append(None)
            continue
        crc = 0
        for o in step.outputs:
            crc = zlib.crc32(np.ascontiguousarray(tensors[o.tensor]).tobytes(), crc)
        out.append(crc)
    return out


def first_divergence(steps: list[Step], device_crcs: list[int], expected: list[int | None]) -> int | None:
    for step, got, want in zip(steps, device_crcs, expected):
        if want is not None and got != want:
            return step.index
    return None


def compare_tensor(device: np.ndarray, host: np.ndarray) -> dict:
    """Differing bytes, max |delta|, and which rows (axis 1) and channels (the axes after the width, flattened)
    differ."""
    delta = np.abs(device.astype(np.int64) - host.astype(np.int64))
    diff = delta != 0
    shape = host.shape
    rows: list[int] = []
    channels: list[int] = []
    if len(shape) >= 3:
        rows = np.flatnonzero(diff.any(axis=tuple(a for a in range(len(shape)) if a != 1))).tolist()
        lead = 3 if len(shape) >= 4 else 2
        per_channel = diff.reshape(*shape[:lead], -1)
        channels = np.flatnonzero(per_channel.any(axis=tuple(range(lead)))).tolist()
    elif shape:
        channels = np.flatnonzero(diff.reshape(-1, shape[-1]).any(axis=0)).tolist()
    return {"differing_bytes": int(np.count_nonzero(diff)) * device.itemsize, "bytes": int(device.nbytes),
            "max_abs_delta": int(delta.max(initial=0)), "channels": channels, "rows": rows}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:60] or "tensor"


def step_dict(step: Step) -> dict:
    out = step.tensor
    return {"index": step.index, "op": step.op, "tensor": out.name if out else "",
            "shape": list(out.shape) if out else []}


class Bisector:
    """Runs the bisection on one input over the link.  `start_run(flags, stop)` makes the device run that input
    (uploading it again when it came over the link) with the step flags and returns the RESULT."""

    def __init__(self, client, info: model_info.ModelInfo, engine: str, steps: list[Step], out_dir: str | Path,
                 progress=lambda msg: None):
        self.client, self.info, self.engine, self.steps = client, info, engine, steps
        self.out_dir = Path(out_dir)
        self.progress = progress

    def run(self, x: np.ndarray, start_run, outputs_differ: bool) -> dict:
        """The Report's `bisect`.  outputs_differ: whether the outputs check of this input failed."""
        try:
            return self._run(x, start_run, outputs_differ)
        except NanodetError as exc:
            return {"status": "error", "detail": str(exc)}

    def _run(self, x: np.ndarray, start_run, outputs_differ: bool) -> dict:
        self.progress("bisect: run with a CRC-32 of every step's outputs")
        result = start_run(p.STEP_CRC, 0)
        if result.input_crc32 != zlib.crc32(np.ascontiguousarray(x, np.int8).tobytes()):
            raise NanodetError("the device's input tensor differs from the host's (see the preprocess check): "
                               "bisect compares the steps on one and the same input")
        records = self.client.step_records()
        check_records(self.steps, records, self.engine)
        if records.completed != len(self.steps) or not records.flags & p.STEP_CRC:
            raise NanodetError(f"the checksummed run completed {records.completed} of {len(self.steps)} steps")
        self.progress("bisect: host reference with every intermediate tensor")
        tensors = host_tensors(self.info, x, {o.tensor for s in self.steps if s.has_twin for o in s.outputs})
        expected = expected_crcs(self.steps, tensors)
        k = first_divergence(self.steps, [r[1] for r in records.records], expected)
        compared = sum(e is not None for e in expected)
        untwinned = [s.index for s, e in zip(self.steps, expected) if e is None]
        if k is not None:
            return self._diverged(self.steps[k], tensors, start_run, compared)
        if outputs_differ and untwinned:
            return {"status": "no-host-twin",
                    "detail": f"the outputs differ, but all {compared} steps with a host twin match; the difference "
                              f"arises in step(s) {untwinned}, which have none"}
        detail = f"all {compared} steps with a host twin have the host's CRC-32"
        if untwinned:
            detail += f" ({len(untwinned)} steps have none: {untwinned})"
        if outputs_differ:
            detail += "; the output difference of the checked run did not reproduce (a nondeterministic device?)"
        return {"status": "identical", "detail": detail}

    def _diverged(self, step: Step, tensors: dict[int, np.ndarray], start_run, compared: int) -> dict:
        self.progress(f"bisect: step {step.index} ({step.op}) differs; run again, stop after it and read it back")
        start_run(p.STEP_STOP, step.index)
        records = self.client.step_records()
        if records.completed != step.index + 1:
            raise NanodetError(f"the device did not stop after step {step.index} (completed {records.completed})")
        read = []
        for k, out in enumerate(step.outputs[:p.STEP_STOP_OUTPUTS]):
            host = np.ascontiguousarray(tensors[out.tensor])
            dev = np.frombuffer(self.client.read_step_output(k, out.bytes), host.dtype).reshape(host.shape)
            read.append((out, dev, host, compare_tensor(dev, host)))
        out, dev, host, cmp = next((r for r in read if r[3]["differing_bytes"]), read[0])
        base = self.out_dir / f"step{step.index:03d}_{_safe(out.name)}"
        device_npy, host_npy = Path(f"{base}_device.npy"), Path(f"{base}_host.npy")
        with outputs.Staged() as files:  # both or neither; an unwritable --bisect-dir is one line, not a traceback
            for path, array in ((device_npy, dev), (host_npy, host)):
                npy = io.BytesIO()
                np.save(npy, array)
                files.add(path, npy.getvalue())
            files.commit()
        where = {**step_dict(step), "tensor": out.name, "shape": list(out.shape)}
        detail = (f"first divergent step {step.index} of {len(self.steps)} ({compared} compared): {step.op} -> "
                  f"'{out.name}' {'x'.join(map(str, out.shape))}: {cmp['differing_bytes']}/{cmp['bytes']} bytes "
                  f"differ, max |delta| {cmp['max_abs_delta']}, in {len(cmp['channels'])} channel(s) and "
                  f"{len(cmp['rows'])} row(s)")
        if not cmp["differing_bytes"]:
            detail += " (read back after stopping there it equals the host's: a nondeterministic device?)"
        return {"status": "diverged", "detail": detail, "step": where, **cmp, "device_npy": str(device_npy),
                "host_npy": str(host_npy)}
