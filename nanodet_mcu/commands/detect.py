"""`nanodet-mcu detect`: the host reference on images; JSON, annotated images, raw int8 outputs."""
import json
import sys
from pathlib import Path

import numpy as np

from nanodet_mcu import preprocess, runners, spec
from nanodet_mcu.errors import NanodetError
from nanodet_mcu.pipeline import DECODERS, Detector


def add_arguments(p):
    p.add_argument("--model", required=True, help=".tflite (int8) or .onnx (float)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out-dir", help="write each image with its boxes and labels here")
    p.add_argument("--json", action="store_true", help="print detections as JSON")
    p.add_argument("--save-raw", metavar="DIR", help="write raw int8 outputs as <stem>.scores.npy / <stem>.boxes.npy")
    p.add_argument("--interpreter", choices=runners.runner_names(), default="tflm")
    p.add_argument("--decoder", choices=DECODERS, default="float")
    p.add_argument("--score-threshold", type=float, default=spec.SCORE_THRESHOLD)
    p.add_argument("--iou-threshold", type=float, default=spec.IOU_THRESHOLD)


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
            from nanodet_mcu.drawing import draw_detections

            Path(args.out_dir).mkdir(parents=True, exist_ok=True)
            draw_detections(rgb, dets).save(Path(args.out_dir) / f"{Path(image).stem}.png")
        if not args.json:
            print(f"{image}: {len(dets)} detection(s)")
            for d in dets:
                print(f"  {d['label']:<14} {d['score']:.3f}  [{', '.join(f'{v:.1f}' for v in d['box'])}]")
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    return 0
