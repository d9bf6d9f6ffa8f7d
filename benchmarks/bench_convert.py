"""Conversion time and quality: our int8 model (plain min/max and MSE-refined ranges) vs NXP's vs the float export.

Converts the official ONNX export with the default calibration draw, then, for each int8 model, measures
  - fidelity: mean |int8 - float| against the ONNX export (onnxruntime) on every 6th validation image, for the top
    class score and the projected distances (in bins) of cells where the float top score is > 0.15 — a far less
    noisy figure than mAP, which on this stride-32-only model moves by ~0.2 points on tiny perturbations;
  - COCO bbox mAP on the validation set (never used for calibration).
Prints figures; asserts nothing.

    /work/venv/bin/python benchmarks/bench_convert.py [--limit N] [--interpreter tflite|tflm] [--skip-minmax]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from nanodet_mcu import decode, model_info, preprocess, runners  # noqa: E402
from nanodet_mcu.model import convert  # noqa: E402
from nanodet_mcu.model.evaluate import evaluate_model, format_metrics  # noqa: E402

SHARED = ROOT.parent / "shared"


def fidelity(models: list[tuple[str, Path]], onnx_path: str, val_dir: str, interpreter: str) -> None:
    from nanodet_mcu.pipeline import OnnxFloatModel

    onnx = OnnxFloatModel(Path(onnx_path))
    rgbs = [preprocess.resize_rgb(preprocess.load_rgb(p)) for p in preprocess.list_images(val_dir)[::6][:100]]
    refs = [onnx.run(r) for r in rgbs]  # (100, 80) scores, (100, 4) distances in bins
    for name, path in models:
        info = model_info.load(path)
        lay = model_info.nanodet_layout(info)
        runner = runners.make_runner(interpreter, info)
        score_err, dist_err = [], []
        for rgb, (cls, dist) in zip(rgbs, refs):
            sq, bq = runner.run(preprocess.quantize(rgb, lay.input.scale, lay.input.zero_point))
            scores = decode.dequantize(sq, lay.scores.scale, lay.scores.zero_point).reshape(-1, 80)
            d = decode.project_bins(decode.dequantize(bq, lay.boxes.scale, lay.boxes.zero_point).reshape(-1, 32))
            cells = cls.max(1) > 0.15
            if cells.any():
                score_err.append(np.abs(scores.max(1) - cls.max(1))[cells].mean())
                dist_err.append(np.abs(d - dist)[cells].mean())
        print(f"{name:28s} fidelity ({interpreter}, {len(rgbs)} images): top score MAE {np.mean(score_err):.4f}, "
              f"distance MAE {np.mean(dist_err):.4f} bins")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=str(SHARED / "models/nanodet_m_0.5x.onnx"))
    ap.add_argument("--calib-dir", default=str(SHARED / "coco/calib"))
    ap.add_argument("--val-dir", default=str(SHARED / "coco/val"))
    ap.add_argument("--annotations", default=str(SHARED / "coco/instances_val_derived600.json"))
    ap.add_argument("--nxp", default=str(SHARED / "models/nxp_nanodet_m_0.5x.tflite"))
    ap.add_argument("--limit", type=int, help="first N validation images")
    ap.add_argument("--interpreter", default="tflite", choices=("tflite", "tflm"))
    ap.add_argument("--skip-minmax", action="store_true", help="do not build the plain min/max variant")
    args = ap.parse_args()

    from nanodet_mcu.model.nanodet_tf import NanodetStride32
    from nanodet_mcu.model.weights import load_weights

    tmp = Path(tempfile.mkdtemp(prefix="bench_convert."))
    models: list[tuple[str, Path]] = []

    start = time.perf_counter()
    report = convert.convert_report(args.weights, args.calib_dir, out_path=tmp / "ours.tflite")
    elapsed = time.perf_counter() - start
    info = model_info.load(report.path)
    print(f"convert (API, default draw of {len(report.calib_images)} images): {elapsed:.1f} s, "
          f"{report.size} bytes, {info.parameters} parameters, {len(info.ops)} ops, {info.macs / 1e6:.1f} M MACs")
    models.append(("ours (MSE-refined ranges)", report.path))

    if not args.skip_minmax:
        inputs = convert.calibration_inputs(report.calib_images)
        graph = NanodetStride32(load_weights(args.weights).weights)
        start = time.perf_counter()
        data = convert.put_scores_first(convert.quantize_graph(graph, inputs, refine_ranges=False))
        print(f"plain min/max quantisation: {time.perf_counter() - start:.1f} s")
        (tmp / "ours_minmax.tflite").write_bytes(data)
        models.append(("ours (plain min/max)", tmp / "ours_minmax.tflite"))

    models.append(("NXP int8", Path(args.nxp)))
    fidelity(models, args.weights, args.val_dir, args.interpreter)
    models.append(("float ONNX", Path(args.weights)))
    for name, path in models:
        start = time.perf_counter()
        interp = args.interpreter if path.suffix == ".tflite" else "tflm"  # ignored for .onnx
        m = evaluate_model(path, args.val_dir, args.annotations, args.limit, interpreter=interp)
        print(f"{name:28s} {format_metrics(m)}   ({m['images']} images, {time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
