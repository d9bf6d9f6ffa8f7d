"""`nanodet-mcu detect`: the host reference on images; JSON, annotated images, raw int8 outputs."""
import json
import sys
from pathlib import Path

import numpy as np

from nanodet_mcu import preprocess, runners, spec
from nanodet_mcu.errors import NanodetError
from nanodet_mcu.pipeline import DECODERS, Detector


def add_arguments(p):
    from nanodet_mcu.drawing import FORMATS

    p.add_argument("--model", required=True, help="the model: an int8 .tflite (from convert, or NXP's) or the float "
                                                  ".onnx export")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, BMP), any size")
    p.add_argument("--out-dir", metavar="DIR", help="write each image with its boxes and labels here as <stem>.jpg "
                                                    "or <stem>.png (default: none written)")
    p.add_argument("--format", choices=["auto", *FORMATS], default="auto",
                   help="file format of --out-dir images; auto keeps JPEG inputs JPEG (quality 90) and writes PNG "
                        "for the rest (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print detections as JSON instead of text (default: text)")
    p.add_argument("--save-raw", metavar="DIR", help="write raw int8 outputs as <stem>.scores.npy / <stem>.boxes.npy "
                                                     "(default: none written)")
    p.add_argument("--interpreter", choices=runners.runner_names(), default="tflm",
                   help="what runs the int8 model: tflm = tflite-micro's Python interpreter (what the device's TFLM "
                        "computes), tflite = TensorFlow Lite, aot = the AOT engine's C built for this host "
                        "(default %(default)s)")
    p.add_argument("--decoder", choices=DECODERS, default="float",
                   help="box decoding + NMS: float = the reference decoder, fixed = the device's integer decoder "
                        "in Python, c = firmware/common/nd_postprocess.c built for this host (default %(default)s)")
    p.add_argument("--score-threshold", type=float, default=spec.SCORE_THRESHOLD,
                   help="keep detections scoring above this (default %(default)s)")
    p.add_argument("--iou-threshold", type=float, default=spec.IOU_THRESHOLD,
                   help="NMS drops a box whose IoU with a better one exceeds this (default %(default)s)")


def run(args) -> int:
    detector = Detector(args.model, args.interpreter, args.decoder, args.score_threshold, args.iou_threshold)
    if args.save_raw and detector.onnx is not None:
        raise NanodetError("--save-raw needs an int8 .tflite model")
    report = []
    for image in args.images:
        rgb = preprocess.load_rgb(image)
        res = detector.detect_rgb(rgb)
        dets = [{"class_id": int(c), "label": spec.COCO_LABELS[int(c)], "score": round(float(s), 6),
                 "box": [round(float(v), 2) for v in box]}
                for box, s, c in zip(res.image_boxes(), res.detections.scores, res.detections.classes)]
        report.append({"image": str(image), "detections": dets})
        if args.save_raw:
            out = Path(args.save_raw)
            out.mkdir(parents=True, exist_ok=True)
            np.save(out / f"{Path(image).stem}.scores.npy", res.raw[0])
            np.save(out / f"{Path(image).stem}.boxes.npy", res.raw[1])
        if args.out_dir:
            from nanodet_mcu import drawing

            Path(args.out_dir).mkdir(parents=True, exist_ok=True)
            drawing.save(drawing.draw_detections(rgb, dets), args.out_dir, Path(image).stem,
                         drawing.output_format(image, args.format))
        if not args.json:
            print(f"{image}: {len(dets)} detection(s)")
            for d in dets:
                print(f"  {d['label']:<14} {d['score']:.3f}  [{', '.join(f'{v:.1f}' for v in d['box'])}]")
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    return 0
