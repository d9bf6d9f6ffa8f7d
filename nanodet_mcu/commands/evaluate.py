"""`nanodet-mcu evaluate`: COCO bbox metrics for a .tflite or float .onnx model."""
from nanodet_mcu import cliargs, runners
from nanodet_mcu.model import evaluate
from nanodet_mcu.pipeline import DECODERS


def add_arguments(p):
    p.add_argument("--model", required=True, help=".tflite (int8) or .onnx (float, stride-32 head)")
    p.add_argument("--images", required=True, help="folder of COCO images")
    p.add_argument("--annotations", required=True, help="COCO instances JSON")
    p.add_argument("--limit", type=cliargs.positive_int, help="first N annotated images (sorted by name)")
    p.add_argument("--interpreter", choices=runners.runner_names(), default="tflm")
    p.add_argument("--decoder", choices=DECODERS, default="float")
    p.add_argument("--json", action="store_true", help="print metrics as JSON")


def run(args) -> int:
    metrics = evaluate.evaluate_model(args.model, args.images, args.annotations, args.limit,
                                      args.interpreter, args.decoder, progress=not args.json)
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
