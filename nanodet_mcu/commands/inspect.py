"""`nanodet-mcu inspect`: facts of any .tflite, and whether it is NanoDet-shaped.

The arena has three figures, each printed with what it is (README.md, "Arena figures"): tflite-micro's allocator
measured on this 64-bit host (`tflm_arena_bytes`, an upper bound: the Cortex-M7's 32-bit bookkeeping is smaller),
what a generated TFLM project reserves (`tflm_arena_reserved_bytes`, that plus a margin), and the AOT engine's exact
static plan (`aot_arena_bytes`).  What the Cortex-M7 really uses, the firmware reports to `verify` (INFO, arena).
"""
import json

from nanodet_mcu import model_info
from nanodet_mcu.errors import NanodetError


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", help="any .tflite file")
    p.add_argument("--json", action="store_true", help="print the facts as JSON instead of tables (default: tables)")


def _aot_arena(info: model_info.ModelInfo) -> int | None:
    from nanodet_mcu.codegen.generate import aot_arena_bytes

    try:
        return aot_arena_bytes(info)
    except NanodetError:
        return None  # ops the AOT engine does not lower


def facts(info: model_info.ModelInfo) -> dict:
    from nanodet_mcu.codegen.generate import tflm_arena_reserved

    problem = model_info.nanodet_problem(info)
    host_arena = model_info.tflm_arena_bytes(info.data)
    return {
        "model": info.path, "file_bytes": info.size, "sha256": info.sha256,
        "inputs": [t.as_dict() for t in info.inputs], "outputs": [t.as_dict() for t in info.outputs],
        "operators": len(info.ops), "op_counts": info.op_counts, "parameters": info.parameters, "macs": info.macs,
        "tflm_arena_bytes": host_arena, "tflm_arena_reserved_bytes": tflm_arena_reserved(host_arena),
        "aot_arena_bytes": _aot_arena(info),
        "nanodet": problem is None, "nanodet_problem": problem,
    }


def run(args) -> int:
    f = facts(model_info.load(args.model))
    if args.json:
        print(json.dumps(f, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{f['model']}[/]  {f['file_bytes']:,} bytes  sha256 {f['sha256']}")
    tensors = Table("", "name", "shape", "dtype", "scale", "zero point")
    for kind in ("inputs", "outputs"):
        for t in f[kind]:
            tensors.add_row(kind[:-1], t["name"], "x".join(map(str, t["shape"])), t["dtype"],
                            "-" if t["scale"] is None else f"{t['scale']:.8g}", str(t["zero_point"]))
    console.print(tensors)
    console.print(f"operators {f['operators']}: " + ", ".join(f"{k} x{v}" for k, v in f["op_counts"].items()))
    console.print(f"parameters {f['parameters']:,}   MACs {f['macs']:,}")
    from nanodet_mcu.codegen.generate import TFLM_ARENA_MARGIN

    console.print(f"TFLM arena {f['tflm_arena_bytes']:,} bytes: tflite-micro's allocator on this 64-bit host, an "
                  "upper bound for the Cortex-M7 (which reports its own use to verify); generate --engine tflm "
                  f"reserves {f['tflm_arena_reserved_bytes']:,} bytes (+{TFLM_ARENA_MARGIN // 1024} KiB margin)")
    if f["aot_arena_bytes"] is not None:
        console.print(f"AOT arena {f['aot_arena_bytes']:,} bytes: generate --engine aot's static plan, exact on "
                      "every target")
    console.print("NanoDet stride-32 int8 model: " + ("yes" if f["nanodet"] else f"no ({f['nanodet_problem']})"))
    return 0
