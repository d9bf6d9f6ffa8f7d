"""Fixed-point post-processing vs the float reference on real model outputs, host timings, Cortex-M7 code size.

Usage: python benchmarks/bench_postprocess.py [MODEL.tflite ...] [--images N]
  (default model: NXP's; add ours, e.g. the cached conversion under ~/.cache/nanodet-mcu/models/)
For each model, over the val images (TFLM outputs): C == Python integer model, max corner deviation fixed vs float
(px in the 320 frame), kept-set differences and why (IoU ties within 1e-4 of the threshold, sub-resolution boxes),
NMS pair decisions that flipped without changing the outcome; then host ms per image and arm-none-eabi-size.
Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from nanodet_mcu import FIRMWARE_DIR, boards, decode, model_info, postprocess_c, preprocess, runners  # noqa: E402  # noqa: E402
from nanodet_mcu import postprocess_fixed as pf

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
COMMON = FIRMWARE_DIR / "common"
_EMULATED = boards.load("mps2-an500")  # its firmware's Cortex-M7 flags
ARM_FLAGS = [*_EMULATED.arch_flags, *_EMULATED.data["build"]["cflags"], "-std=c99"]
IOU_TIE_EPS = 1e-4


def model_outputs(path: Path, images: list[Path]):
    info = model_info.load(path)
    layout = model_info.nanodet_layout(info)
    runner = runners.make_runner("tflm", info)
    for image in images:
        rgb = preprocess.resize_rgb(preprocess.load_rgb(image))
        yield layout, image, runner.run(preprocess.quantize(rgb, layout.input.scale, layout.input.zero_point))


def compare_model(path: Path, images: list[Path]) -> None:
    stats = Counter()
    worst, worst_image = 0.0, None
    timings = Counter()
    params = None
    postprocess_c.library()  # build/load outside the timings
    for layout, image, (scores, boxes) in model_outputs(path, images):
        params = params or pf.params_for(layout)
        sqp, bqp = (layout.scores.scale, layout.scores.zero_point), (layout.boxes.scale, layout.boxes.zero_point)
        t0 = time.perf_counter()
        fixed_list = pf.run(scores, boxes, params)
        t1 = time.perf_counter()
        c_list = postprocess_c.run_c(scores, boxes, params)
        t2 = time.perf_counter()
        ref = decode.decode_quantized(scores, boxes, sqp, bqp)
        t3 = time.perf_counter()
        timings.update(python=t1 - t0, c=t2 - t1, float=t3 - t2)
        stats["c_python_mismatch"] += c_list != fixed_list
        got = pf.agreement(pf.to_detections(fixed_list, params), ref)
        flips = pf.nms_decision_differences(scores, boxes, params, bqp)
        stats["images"] += 1
        stats["detections"] += len(fixed_list)
        stats["flipped_pair_decisions"] += len(flips)
        stats["unexplained_flips"] += sum(not (abs(f.float_iou - 0.5) < IOU_TIE_EPS or f.sub_resolution)
                                          for f in flips)
        if not got.same_kept:
            reason = "sub-resolution box" if any(f.sub_resolution for f in flips) else (
                "IoU tie" if flips else "UNEXPLAINED")
            stats[f"kept_differs ({reason})"] += 1
            print(f"    {image.name}: only fixed {got.only_fixed}, only float {got.only_float}: {reason} "
                  f"{[(f.cell_a, f.cell_b, round(f.float_iou, 7)) for f in flips]}")
        elif flips:
            print(f"    {image.name}: pair decision flipped, kept set unchanged "
                  f"{[(f.cell_a, f.cell_b, round(f.float_iou, 7)) for f in flips]}")
        if got.max_corner_dev > worst:
            worst, worst_image = got.max_corner_dev, image.name
    n = max(stats["images"], 1)
    print(f"  images {stats['images']}, detections {stats['detections']}, "
          f"C != Python: {stats['c_python_mismatch']}")
    print(f"  max corner deviation fixed vs float: {worst:.6f} px ({worst_image}); "
          f"resolution 1/{1 << params.coord_frac_bits} px")
    differs = {k: v for k, v in stats.items() if k.startswith("kept_differs")}
    print(f"  kept-set differences: {sum(differs.values())} {differs or ''}")
    print(f"  NMS pair decisions flipped (IoU within {IOU_TIE_EPS} of 0.5 or sub-resolution): "
          f"{stats['flipped_pair_decisions']}, unexplained: {stats['unexplained_flips']}")
    print("  host ms/image: " + ", ".join(f"{k} {v / n * 1e3:.3f}" for k, v in timings.items()))


def arm_sizes() -> None:
    cc = shutil.which("arm-none-eabi-gcc")
    if cc is None:
        print("arm-none-eabi-gcc not installed: no code size")
        return
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / "nd_postprocess.o"
        subprocess.run([cc, *ARM_FLAGS, "-fstack-usage", "-c", str(COMMON / "nd_postprocess.c"), "-o", str(obj)],
                       check=True, cwd=tmp)
        params_c = Path(tmp) / "params.c"
        layout = model_info.nanodet_layout(model_info.load(SHARED / "models/nxp_nanodet_m_0.5x.tflite"))
        params_c.write_text('#include "nd_postprocess.h"\nconst nd_post_params_t p = '
                            f"{pf.params_for(layout).c_initializer()};\n")
        pobj = Path(tmp) / "params.o"
        subprocess.run([cc, *ARM_FLAGS, f"-I{COMMON}", "-c", str(params_c), "-o", str(pobj)], check=True)
        size = subprocess.run(["arm-none-eabi-size", "-A", str(obj), str(pobj)], capture_output=True, text=True,
                              check=True).stdout
        stack = (Path(tmp) / "nd_postprocess.su").read_text().strip()
    print("Cortex-M7 (" + " ".join(ARM_FLAGS) + "):")
    for line in size.splitlines():
        if line.startswith((".text", ".rodata", ".data", ".bss")) or "size" in line or ":" in line:
            print("  " + line)
    print("  stack (-fstack-usage): " + stack.replace("\n", "; "))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", type=Path, default=[SHARED / "models/nxp_nanodet_m_0.5x.tflite"])
    ap.add_argument("--images", type=int, default=600, help="first N of ../shared/coco/val")
    args = ap.parse_args()
    images = preprocess.list_images(SHARED / "coco/val")[: args.images]
    for model in args.models:
        print(f"model {model}")
        compare_model(model, images)
    arm_sizes()


if __name__ == "__main__":
    main()
