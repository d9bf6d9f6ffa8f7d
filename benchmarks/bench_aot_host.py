"""Host run time per image of the AOT engine's C (ctypes) against the tflite-micro interpreter, plus a byte check.

    /work/venv/bin/python benchmarks/bench_aot_host.py [--model PATH] [--images N]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nanodet_mcu import model_info, preprocess, runners  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT.parent / "shared/models/nxp_nanodet_m_0.5x.tflite"))
    ap.add_argument("--images", type=int, default=20, help="images of ../shared/coco/val to run")
    args = ap.parse_args()
    info = model_info.load(args.model)
    lay = model_info.nanodet_layout(info)
    tflm, aot = runners.make_runner("tflm", info), runners.make_runner("aot", info)
    paths = preprocess.list_images(ROOT.parent / "shared/coco/val")[:args.images]
    totals = {"tflm": 0.0, "aot": 0.0}
    differing = 0
    for p in paths:
        x = preprocess.quantize(preprocess.resize_rgb(preprocess.load_rgb(p)), lay.input.scale, lay.input.zero_point)
        outs = {}
        for name, r in (("tflm", tflm), ("aot", aot)):
            t0 = time.perf_counter()
            outs[name] = r.run(x)
            totals[name] += time.perf_counter() - t0
        differing += sum(int((a != b).sum()) for a, b in zip(outs["tflm"], outs["aot"]))
    n = len(paths)
    print(f"{Path(args.model).name}: {n} images")
    for name, t in totals.items():
        print(f"  {name:5s} {t / n * 1000:8.1f} ms/image")
    print(f"  differing output bytes: {differing}")
    return 0 if differing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
