"""`nanodet-mcu convert`: official NanoDet-m-0.5x weights -> full-int8 TFLite (stride-32 head)."""
import os
import time

from nanodet_mcu import cliargs
from nanodet_mcu.model import convert


def add_arguments(p):
    p.add_argument("--weights", required=True,
                   help="official NanoDet-m-0.5x weights: the model zoo's nanodet_m_0.5x.ckpt (read without PyTorch) "
                        "or its ONNX export (README.md, 'Inputs')")
    p.add_argument("--calib-dir", metavar="DIR",
                   help="folder of calibration images, never the ones you evaluate on (default: "
                        f"${convert.CALIB_ENV}; required when it is unset)")
    p.add_argument("--num-calib", type=cliargs.positive_int, default=convert.DEFAULT_NUM_CALIB,
                   help="calibration images drawn from the folder (default %(default)s)")
    p.add_argument("--seed", type=int, default=convert.DEFAULT_SEED, help="seed of the draw (default %(default)s)")
    p.add_argument("-o", "--output", default=convert.DEFAULT_OUTPUT, help="output .tflite (default %(default)s)")


def run(args) -> int:
    from nanodet_mcu.progress import Steps

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    start = time.perf_counter()
    # Progress goes to a duplicate of stderr: the conversion captures fd 2 itself to hide TensorFlow's C++ logs.
    with os.fdopen(os.dup(2), "w", buffering=1) as progress_stream:
        steps = Steps("convert", stream=progress_stream)
        report = convert.convert_report(args.weights, args.calib_dir, args.num_calib, args.seed, args.output, steps)
    print(f"weights: {report.weights_source}")
    print(f"calibration: {len(report.calib_images)} images from {report.calib_images[0].parent} (seed {args.seed})")
    print(f"wrote {report.path}: {report.size} bytes, {report.parameters} parameters, "
          f"{time.perf_counter() - start:.1f} s")
    return 0
