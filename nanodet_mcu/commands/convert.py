"""`nanodet-mcu convert`: official NanoDet-m-0.5x weights -> full-int8 TFLite (stride-32 head)."""
import os
import time

from nanodet_mcu import cliargs
from nanodet_mcu.model import convert


def add_arguments(p):
    p.add_argument("--weights", required=True, help="official weights: .ckpt/.pth checkpoint or .onnx export")
    p.add_argument("--calib-dir", help="folder of calibration images (never the evaluation set); default: "
                                       f"${convert.CALIB_ENV} or ../shared/coco/calib")
    p.add_argument("--num-calib", type=cliargs.positive_int, default=convert.DEFAULT_NUM_CALIB,
                   help="calibration images drawn from the folder (default %(default)s)")
    p.add_argument("--seed", type=int, default=convert.DEFAULT_SEED, help="seed of the draw (default %(default)s)")
    p.add_argument("-o", "--output", default=convert.DEFAULT_OUTPUT, help="output .tflite (default %(default)s)")


def run(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    start = time.perf_counter()
    report = convert.convert_report(args.weights, args.calib_dir, args.num_calib, args.seed, args.output)
    print(f"weights: {report.weights_source}")
    print(f"calibration: {len(report.calib_images)} images from {report.calib_images[0].parent} (seed {args.seed})")
    print(f"wrote {report.path}: {report.size} bytes, {report.parameters} parameters, "
          f"{time.perf_counter() - start:.1f} s")
    return 0
