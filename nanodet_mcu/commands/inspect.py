"""`nanodet-mcu inspect`: facts of any .tflite, and whether it is NanoDet-shaped."""
import json

from nanodet_mcu import model_info


def add_arguments(p):
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--json", action="store_true")


def facts(info: model_info.ModelInfo) -> dict:
    problem = model_info.nanodet_problem(info)
    return {
        "model": info.path, "file_bytes": info.size, "sha256": info.sha256,
        "inputs": [t.as_dict() for t in info.inputs], "outputs": [t.as_dict() for t in info.outputs],
        "operators": len(info.ops), "op_counts": info.op_counts, "parameters": info.parameters, "macs": info.macs,
        "tflm_arena_bytes": model_info.tflm_arena_bytes(info.data),
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
    console.print(f"parameters {f['parameters']:,}   MACs {f['macs']:,}   "
                  f"TFLM arena {f['tflm_arena_bytes']:,} bytes (tflite-micro allocator, host build)")
    console.print("NanoDet stride-32 int8 model: " + ("yes" if f["nanodet"] else f"no ({f['nanodet_problem']})"))
    return 0
