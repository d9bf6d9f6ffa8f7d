"""`nanodet-mcu evaluate`: COCO bbox metrics for a .tflite or float .onnx model."""
from nanodet_mcu import cliargs, runners
from nanodet_mcu.model import evaluate
from nanodet_mcu.pipeline import DECODERS


def add_arguments(p):
    p.add_argument("--model", required=True, help="the model: an int8 .tflite or the float .onnx export (its "
                                                  "stride-32 head is evaluated)")
    p.add_argument("--images", required=True, metavar="DIR",
                   help="folder of COCO images, e.g. val2017/ unpacked from val2017.zip (README.md, 'Inputs')")
    p.add_argument("--annotations", required=True, metavar="JSON",
                   help="COCO instances JSON, e.g. annotations/instances_val2017.json; images of DIR it does not "
                        "list are skipped")
    p.add_argument("--limit", type=cliargs.positive_int, metavar="N",
                   help="evaluate the first N annotated images, sorted by file name (default: all)")
    p.add_argument("--interpreter", choices=runners.runner_names(), default="tflm",
                   help="what runs an int8 model: tflm (tflite-micro), tflite (TensorFlow Lite) or aot (the AOT "
                        "engine's C on this host) (default %(default)s)")
    p.add_argument("--decoder", choices=DECODERS, default="float",
                   help="box decoding + NMS: float (reference), fixed (the device's integer decoder in Python) or c "
                        "(nd_postprocess.c on this host) (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table (default: "
                                                       "table; progress goes to stderr either way)")


def run(args) -> int:
    from nanodet_mcu.progress import Steps

    metrics = evaluate.evaluate_model(args.model, args.images, args.annotations, args.limit,
                                      args.interpreter, args.decoder, steps=Steps("evaluate"))
    if args.json:
        print(evaluate.to_json(metrics))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.model}: COCO bbox on {metrics['images']} images ({metrics['detections']} detections)")
    for name in evaluate.METRIC_NAMES:
        table.add_column(name, justify="right")
    table.add_row(*(f"{metrics[n]:.2f}" for n in evaluate.METRIC_NAMES))
    Console().print(table)
    return 0
