"""Step instrumentation (verify --profile / --bisect): the recorder in C, the step tables, the profile and bisect
logic on the host, and, on the emulated board, the issue's demonstrations: the AOT profile agrees with
benchmarks/bench_aot_qemu.py per step, a fault compiled into one AOT step is named by --bisect, TFLM + CMSIS-NN with
its stock TRANSPOSE is bisected to the first 5-D TRANSPOSE, and the instrumentation costs nothing when off."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import zlib

import numpy as np
import pytest

from nanodet_mcu import cli, model_info
from nanodet_mcu.errors import NanodetError
from nanodet_mcu.link import protocol as p
from nanodet_mcu.verify import bisect, profile, report, steps
from nanodet_mcu.verify.verifier import Report
from tests import firmware_builds
from tests.conftest import ROOT, require_tool

COMMON = ROOT / "firmware" / "common"
PROFILE_KEYS = {"engine", "unit", "clock_hz", "units_per_tick", "inference_ticks", "sum_ticks", "steps"}
STEP_KEYS = {"index", "op", "tensor", "shape", "macs", "ticks", "value", "ms", "share", "per_mac"}
BISECT_KEYS = {"status", "detail", "step", "differing_bytes", "bytes", "max_abs_delta", "channels", "rows",
               "device_npy", "host_npy"}


# ---- host: the recorder in C, messages, tables ----------------------------------------------------------------------

def test_recorder_in_c_under_sanitizers(tmp_path):
    cc = require_tool(os.environ.get("CC", "gcc"))
    exe = tmp_path / "steps"
    subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion", "-Wshadow", "-O1",
                    "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", f"-I{COMMON}",
                    str(ROOT / "tests/c/steps_harness.c"), str(COMMON / "nd_steps.c"), str(COMMON / "nd_protocol.c"),
                    "-o", str(exe)], check=True, capture_output=True, text=True)
    proc = subprocess.run([str(exe)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    a, b, c = bytes([1, 2, 3, 4, 5]), bytes([9, 8, 7]), bytes([0xFF, 0])
    crc = [zlib.crc32(a), zlib.crc32(b + c), zlib.crc32(c)]
    runs = {}
    for line in proc.stdout.splitlines():
        head, recs = line.split("|")
        flags, stop, stopped, completed, outs = map(int, head.split())
        vals = recs.split()
        runs[flags] = (stopped, completed, outs, [(int(vals[i]), int(vals[i + 1], 16), int(vals[i + 2]))
                                                  for i in range(0, len(vals), 3)])
    assert runs[p.STEP_TIME] == (0, 3, 0, [(100, 0, 5), (100, 0, 5), (100, 0, 2)])  # 100 ticks per timer read
    assert runs[p.STEP_CRC] == (0, 3, 0, [(0, crc[0], 5), (0, crc[1], 5), (0, crc[2], 2)])
    assert runs[p.STEP_CRC | p.STEP_STOP] == (1, 2, 2, [(0, crc[0], 5), (0, crc[1], 5), (0, 0, 0)])
    assert runs[p.STEP_STOP] == (1, 1, 1, [(0, 0, 5), (0, 0, 0), (0, 0, 0)])
    assert runs[0] == (0, 0, 0, [(0, 0, 0)] * 3)  # a plain run records nothing


def test_step_records_round_trip():
    recs = p.StepRecords(5, 5, p.STEP_TIME, 3, ((7, 1, 2), (8, 3, 4)))
    assert p.StepRecords.parse(recs.pack()) == recs
    assert p.run_request(0, 2) == b"\x00\x02\x00"
    assert p.run_request(1, 0, p.STEP_STOP, 300) == bytes([1, 0, 0, 4, 44, 1])


def _fake_steps(n: int) -> list[steps.Step]:
    return [steps.Step(i, "CONV_2D+LEAKY_RELU" if i % 2 else "ADD", 1000 * (i % 2),
                       (steps.StepOutput(10 + i, f"t{i}", (1, 2, 2, 3), "int8"),)) for i in range(n)]


def _info(timer_kind: str, units: int, clock: int) -> p.Info:
    t = p.TensorDesc((1,), 0, 0)
    return p.Info(1, "b", "aot", "v", "0" * 64, timer_kind, clock, units, 0, 115200, 0, 0, 4096, 100, t, t, t)


def test_profile_build_units_shares_and_refusals(capsys):
    table = _fake_steps(4)
    records = p.StepRecords(4, 4, p.STEP_TIME, 0, tuple((t, 0, 12) for t in (10, 20, 30, 40)))
    result = p.Result(0, 0, 0, 1, 101, 1, 8)
    emu = profile.build("aot", _info("systick-instructions", 40, 25_000_000), table, result, records)
    assert set(emu) == PROFILE_KEYS and all(set(s) == STEP_KEYS for s in emu["steps"])
    assert emu["unit"] == "emulated instructions" and emu["sum_ticks"] == 100 and emu["inference_ticks"] == 101
    assert [s["value"] for s in emu["steps"]] == [400, 800, 1200, 1600] and emu["steps"][0]["ms"] is None
    assert emu["steps"][1]["per_mac"] == pytest.approx(0.8) and emu["steps"][0]["per_mac"] is None
    assert sum(s["share"] for s in emu["steps"]) == pytest.approx(1.0)
    board = profile.build("aot", _info("dwt-cycles", 1, 1_000_000_000), table, result, records)
    assert board["unit"] == "cycles" and board["steps"][3]["ms"] == pytest.approx(40e-6)
    with pytest.raises(NanodetError, match="runs 4 steps.*has 5"):
        profile.build("aot", _info("x", 1, 1), _fake_steps(5), result, records)
    with pytest.raises(NanodetError, match="writes 12 bytes on the device, 6"):
        short = [steps.Step(s.index, s.op, s.macs, (steps.StepOutput(1, "t", (6,), "int8"),)) for s in table]
        profile.build("aot", _info("x", 1, 1), short, result, records)
    rep = Report(profile=emu, bisect={"status": "diverged", "detail": "d", "channels": [0, 1, 2, 7], "rows": [3],
                                      "device_npy": "a.npy", "host_npy": "b.npy"})
    report.print_summary(rep)
    out = capsys.readouterr().out
    assert "top 4 steps by time" in out and "CONV_2D+LEAKY_RELU" in out and "100.00%" not in out
    assert "channels 0-2, 7; rows 3" in out and "a.npy" in out


def test_bisect_logic_on_tensors():
    table = _fake_steps(3)
    tensors = {10 + i: np.full((1, 2, 2, 3), i, np.int8) for i in range(3)}
    want = bisect.expected_crcs(table, tensors)
    assert want == [zlib.crc32(tensors[10 + i].tobytes()) for i in range(3)]
    assert bisect.first_divergence(table, want, want) is None
    assert bisect.first_divergence(table, [want[0], 0, 0], want) == 1
    untwinned = [table[0], steps.Step(1, "X", 0, (steps.StepOutput(-1, "t", (4,), "int8"),)), table[2]]
    assert bisect.expected_crcs(untwinned, tensors)[1] is None
    assert bisect.first_divergence(untwinned, [want[0], 0, want[2]], [want[0], None, want[2]]) is None
    host = np.zeros((1, 4, 5, 6, 2), np.int8)
    dev = host.copy()
    dev[0, 1, 2, 3, 1] = -128
    dev[0, 3, 0, 0, 0] = 5
    cmp = bisect.compare_tensor(dev, host)
    assert cmp == {"differing_bytes": 2, "bytes": 240, "max_abs_delta": 128, "channels": [0, 7], "rows": [1, 3]}


@pytest.mark.slow
def test_aot_step_table_is_the_emitted_one(nxp_model_path, tmp_path):
    """The host's AOT step table (verify/steps.py) and the device's (nd_model.c) come from one lowering."""
    from nanodet_mcu.codegen import aot
    from nanodet_mcu.codegen.aot import lower

    info = model_info.load(nxp_model_path)
    aot.emit_c(info, tmp_path)
    src = (tmp_path / "nd_model.c").read_text()

    def table(name):
        return [int(v.rstrip("u")) for v in re.search(rf"{name}\[\] = \{{([^}}]*)\}}", src).group(1).split(", ")]

    first, sizes = table("nd_model_step_out_first"), table("nd_model_step_out_bytes")
    host = steps.aot_steps(info)
    assert len(first) == len(host) + 1
    assert [sum(sizes[first[i]:first[i + 1]]) for i in range(len(host))] == [s.bytes for s in host]
    # Every step's outputs have host twins; a step without outputs wrote only part of a map (a channel shuffle's
    # half, stored in the shuffled map), which a later step completes and lists.
    prog = aot.program(info)
    stored = [[prog.alias[t][0] if t in prog.views else t for t in st.writes if t < lower.SCRATCH_BASE]
              for st in prog.steps]
    for s in host:
        assert s.has_twin or (not s.outputs and stored[s.index]
                              and all(any(t in {o.tensor for o in h.outputs} for h in host[s.index + 1:])
                                      for t in stored[s.index])), s
    assert [s.op for s in host[:2]] == ["CONV_2D+LEAKY_RELU+MAX_POOL_2D", "CONV_2D+LEAKY_RELU"]
    assert len(steps.tflm_steps(info)) == len(info.ops)


# ---- the emulated board ---------------------------------------------------------------------------------------------

def _verify(elf, model, tmp_path, *extra) -> tuple[int, dict]:
    out = tmp_path / "report.json"
    code = cli.main(["verify", "--emulate", str(elf), "--model", str(model), "--report", str(out),
                     "--run-timeout", "1200", *extra])
    return code, json.loads(out.read_text())


def _bench():
    spec = importlib.util.spec_from_file_location("bench_aot_qemu", ROOT / "benchmarks" / "bench_aot_qemu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_aot_profile_agrees_with_the_benchmark_per_step(nxp_model_path, example_image, tmp_path, capsys):
    require_tool("qemu-system-arm")
    _, elf = firmware_builds.aot_firmware(nxp_model_path, [example_image], profile=True)
    code, data = _verify(elf, nxp_model_path, tmp_path, "--profile", "--bisect", "--bisect-dir", str(tmp_path))
    assert code == 0 and data["passed"]
    prof = data["profile"]
    assert set(prof) == PROFILE_KEYS and prof["engine"] == "aot" and prof["unit"] == "emulated instructions"
    assert abs(prof["sum_ticks"] - prof["inference_ticks"]) <= 0.01 * prof["inference_ticks"]
    assert data["bisect"]["status"] == "identical" and set(data["bisect"]) == {"status", "detail"}
    out = capsys.readouterr().out
    assert "top 10 steps by time" in out and "bisect: identical" in out

    bench = _bench()
    belf, _, _ = bench.build(nxp_model_path, example_image, tmp_path / "bench", True)
    stdout = bench.run(belf)
    ref = [int(m.group(2)) * bench.INSTRUCTIONS_PER_TICK for m in re.finditer(r"STEP (\d+) \S+ \d+ (\d+)", stdout)]
    assert len(ref) == len(prof["steps"])
    for s, want in zip(prof["steps"], ref):  # one timer tick is 40 instructions; the smallest step has ~6,800
        assert abs(s["value"] - want) <= 0.01 * want, (s, want)


@pytest.mark.slow
def test_bisect_names_the_aot_step_with_a_fault_compiled_in(nxp_model_path, example_image, tmp_path):
    require_tool("qemu-system-arm")
    table = steps.aot_steps(model_info.load(nxp_model_path))
    k = len(table) // 2
    _, elf = firmware_builds.aot_firmware(nxp_model_path, [example_image], profile=True,
                                          defines=f"-DND_TEST_FAULT_STEP={k}")
    code, data = _verify(elf, nxp_model_path, tmp_path, "--bisect-on-fail", "--bisect-dir", str(tmp_path / "b"))
    assert code == 1 and not [c for c in data["checks"] if c["name"] == "outputs"][0]["passed"]
    b = data["bisect"]
    assert set(b) == BISECT_KEYS and b["status"] == "diverged"
    assert b["step"] == {"index": k, "op": table[k].op, "tensor": table[k].tensor.name,
                         "shape": list(table[k].tensor.shape)}
    assert (b["differing_bytes"], b["max_abs_delta"], len(b["channels"]), len(b["rows"])) == (1, 128, 1, 1)
    dev, host = np.load(b["device_npy"]), np.load(b["host_npy"])
    assert dev.shape == host.shape == table[k].tensor.shape and np.count_nonzero(dev != host) == 1


@pytest.mark.slow
def test_instrumentation_costs_nothing_when_off(nxp_model_path, example_image, tmp_path):
    """Off, nd_model_run's machine code is that of the same C without any hook line; compiled in but not armed, an
    inference runs a few thousand emulated instructions more; the steps' sum is the inference."""
    cc = require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from tests.conftest import cortex_m7_flags

    off_dir, off_elf = firmware_builds.aot_firmware(nxp_model_path, [example_image])
    stripped = tmp_path / "stripped"
    stripped.mkdir()
    src = (off_dir / "nd_model.c").read_text()
    (stripped / "nd_model.c").write_text(re.sub(r"^\s*ND_PROFILE_OP\(-?\d+\);.*\n", "", src, flags=re.M))
    assert "ND_PROFILE_OP" not in (stripped / "nd_model.c").read_text()
    dis = []
    for d in (off_dir, stripped):
        obj = tmp_path / f"{d.name}.o"
        subprocess.run([cc, *cortex_m7_flags(), "-std=c99", "-ffunction-sections", "-fdata-sections", f"-I{off_dir}",
                        "-c", str(d / "nd_model.c"), "-o", str(obj)], check=True)
        text = subprocess.run(["arm-none-eabi-objdump", "-d", "--section=.text.nd_model_run", str(obj)],
                              capture_output=True, text=True, check=True).stdout
        dis.append(text.split("<nd_model_run>:", 1)[1])
    assert dis[0] == dis[1]

    from nanodet_mcu.device.emulator import Emulator
    from nanodet_mcu.link.client import DeviceClient, DeviceRefused
    from nanodet_mcu.link.transport import SerialTransport

    _, on_elf = firmware_builds.aot_firmware(nxp_model_path, [example_image], profile=True)
    ticks = {}
    for name, elf in (("off", off_elf), ("on", on_elf)):
        with Emulator(elf) as emu, SerialTransport(emu.port) as t:
            client = DeviceClient(t, timeout=5.0)
            client.hello()
            ticks[name] = client.run(p.SOURCE_EMBEDDED, 0).inference_ticks
            if name == "off":
                with pytest.raises(DeviceRefused, match="without step instrumentation"):
                    client.run_steps(p.SOURCE_EMBEDDED, 0, p.STEP_TIME)
            client.shutdown()
    assert 0 <= ticks["on"] - ticks["off"] <= 1e-4 * ticks["off"], ticks


@pytest.mark.slow
def test_step_requests_are_checked_by_the_device(nxp_model_path, example_image):
    require_tool("qemu-system-arm")
    from nanodet_mcu.device.emulator import Emulator
    from nanodet_mcu.link.client import DeviceClient, DeviceRefused
    from nanodet_mcu.link.transport import SerialTransport

    _, elf = firmware_builds.aot_firmware(nxp_model_path, [example_image], profile=True)
    table = steps.aot_steps(model_info.load(nxp_model_path))
    n = len(table)
    k = next(s.index for s in table if s.index >= 3 and s.outputs)  # a step with an output to read back

    def refused(code, call):
        with pytest.raises(DeviceRefused) as exc:
            call()
        assert exc.value.error.code == code, exc.value

    with Emulator(elf) as emu, SerialTransport(emu.port) as t:
        c = DeviceClient(t, timeout=5.0, retries=1)
        c.hello()
        refused(8, lambda: c.read_step_output(0, 1))                            # nothing stopped yet
        refused(3, lambda: c.request(p.RUN, p.run_request(0, 0, 0x08, 0)))      # unknown step flag
        refused(3, lambda: c.request(p.RUN, p.run_request(0, 0) + b"\x01"))      # 4 bytes: neither form
        refused(4, lambda: c.run_steps(p.SOURCE_EMBEDDED, 0, p.STEP_STOP, n))    # stop past the last step
        refused(3, lambda: c.request(p.STEPS, p.steps_request(0, 0)))
        refused(4, lambda: c.request(p.STEPS, p.steps_request(n, 1)))
        result = c.run_steps(p.SOURCE_EMBEDDED, 0, p.STEP_STOP | p.STEP_TIME, k)
        assert result.detections == () and result.postprocess_ticks == 0
        recs = c.step_records()
        assert (recs.total, recs.completed) == (n, k + 1) and all(r[0] > 0 for r in recs.records[:k + 1])
        size = recs.records[k][2]
        assert size == table[k].bytes > 0
        assert len(c.read_step_output(0, size)) == size
        refused(4, lambda: c.request(p.READ, p.read_request(p.REGION_STEP_OUTPUT, 0, size - 1, 2)))
        refused(4, lambda: c.request(p.READ, p.read_request(p.REGION_STEP_OUTPUT, 1, 0, 1)))  # one output only
        refused(8, lambda: c.read_outputs())                                     # a stopped run has no outputs
        c.run(p.SOURCE_EMBEDDED, 0)
        refused(8, lambda: c.read_step_output(0, 1))                             # gone with the next run
        assert c.step_records().completed == 0
        c.shutdown()


@pytest.mark.slow
def test_bisect_finds_the_stock_cmsis_nn_transpose(nxp_model_path, example_image, tmp_path):
    """TFLM + CMSIS-NN with its own TRANSPOSE kernel (generate --tflm-stock-transpose) leaves NanoDet's 5-D
    shuffles unwritten: the outputs differ and --bisect names the model's first TRANSPOSE."""
    require_tool("qemu-system-arm")
    _, elf = firmware_builds.tflm_firmware(nxp_model_path, [example_image], profile=True, stock_transpose=True,
                                           defines=os.environ.get("TFLM_DEFS", ""))
    code, data = _verify(elf, nxp_model_path, tmp_path, "--profile", "--bisect", "--bisect-dir", str(tmp_path))
    assert code == 1
    ops = model_info.operators(model_info.load(nxp_model_path))
    first = next(op for op in ops if op.name == "TRANSPOSE")
    b = data["bisect"]
    assert b["status"] == "diverged" and len(b["step"]["shape"]) == 5
    assert b["step"] == {"index": first.index, "op": "TRANSPOSE", "tensor": first.outputs[0].name,
                         "shape": list(first.outputs[0].shape)}
    assert b["differing_bytes"] > 0
    prof = data["profile"]
    assert prof["engine"] == "tflm" and len(prof["steps"]) == len(ops)
    assert abs(prof["sum_ticks"] - prof["inference_ticks"]) <= 0.01 * prof["inference_ticks"]


@pytest.mark.slow
def test_tflm_with_the_reference_transpose_bisects_identical(nxp_model_path, example_image, tmp_path):
    require_tool("qemu-system-arm")
    _, elf = firmware_builds.tflm_firmware(nxp_model_path, [example_image], profile=True,
                                           defines=os.environ.get("TFLM_DEFS", ""))
    code, data = _verify(elf, nxp_model_path, tmp_path, "--bisect")
    assert code == 0 and data["bisect"]["status"] == "identical", data["bisect"]
