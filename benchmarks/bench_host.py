"""Host reference timings: detect per image with each interpreter, and evaluate throughput.

Usage: python benchmarks/bench_host.py [--model M] [--images N]
Prints figures; asserts nothing (performance is shown, not tested).
"""
import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from nanodet_mcu import preprocess  # noqa: E402
from nanodet_mcu.pipeline import Detector  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


def time_detector(model: Path, interpreter: str, images: list[Path]) -> float:
    det = Detector(model, interpreter=interpreter)
    rgbs = [preprocess.load_rgb(p) for p in images]
    det.detect_rgb(rgbs[0])  # warm-up (lazy init, caches)
    t0 = time.perf_counter()
    for rgb in rgbs:
        det.detect_rgb(rgb)
    return (time.perf_counter() - t0) / len(rgbs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(SHARED / "models/nxp_nanodet_m_0.5x.tflite"))
    ap.add_argument("--images", type=int, default=20)
    args = ap.parse_args()
    images = sorted((SHARED / "coco/val").glob("*.jpg"))[: args.images]
    print(f"model {args.model}, {len(images)} images")
    for interp in ("tflm", "tflite", "aot"):
        try:
            print(f"  detect per image, {interp:6s}: {time_detector(Path(args.model), interp, images) * 1e3:7.1f} ms")
        except Exception as exc:  # an engine that is not available here is reported, not fatal
            print(f"  detect per image, {interp:6s}: unavailable ({exc})")
    onnx = SHARED / "models/nanodet_m_0.5x.onnx"
    print(f"  float onnx (onnxruntime):   {time_detector(onnx, 'tflm', images) * 1e3:7.1f} ms")
    from nanodet_mcu.model.evaluate import evaluate_model

    t0 = time.perf_counter()
    evaluate_model(args.model, SHARED / "coco/val", SHARED / "coco/instances_val_derived600.json", limit=args.images)
    print(f"  evaluate throughput:        {args.images / (time.perf_counter() - t0):7.1f} images/s")


if __name__ == "__main__":
    main()
