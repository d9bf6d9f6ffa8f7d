"""`nanodet-mcu detect`: the host reference on images; JSON, annotated images, raw int8 outputs."""
import io
import json
from pathlib import Path

import numpy as np

from nanodet_mcu import cliargs, outputs, preprocess, runners, spec
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
    p.add_argument("--score-threshold", type=cliargs.fraction, default=spec.SCORE_THRESHOLD)
    p.add_argument("--iou-threshold", type=cliargs.fraction, default=spec.IOU_THRESHOLD)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def run(args) -> int:
    # Outputs are checked before any work and committed together at the end: a bad image among good ones leaves
    # no files (and prints no detections) from the good ones.
    for option, path in (("--out-dir", args.out_dir), ("--save-raw", args.save_raw)):
        if path:
            outputs.check_dir(path, option)
    detector = Detector(args.model, args.interpreter, args.decoder, args.score_threshold, args.iou_threshold)
    if args.save_raw and detector.onnx is not None:
        raise NanodetError("--save-raw needs an int8 .tflite model")
    report, text = [], []
    with outputs.Staged() as staged:
        for image in args.images:
            rgb = preprocess.load_rgb(image)
            res = detector.detect_rgb(rgb)
            dets = [{"class_id": int(c), "label": spec.COCO_LABELS[int(c)], "score": round(float(s), 6),
                     "box": [round(float(v), 2) for v in box]}
                    for box, s, c in zip(res.image_boxes(), res.detections.scores, res.detections.classes)]
            report.append({"image": str(image), "detections": dets})
            stem = Path(image).stem
            if args.save_raw:
                staged.add(Path(args.save_raw) / f"{stem}.scores.npy", _npy(res.raw[0]))
                staged.add(Path(args.save_raw) / f"{stem}.boxes.npy", _npy(res.raw[1]))
            if args.out_dir:
                from nanodet_mcu.drawing import draw_detections

                png = io.BytesIO()
                draw_detections(rgb, dets).save(png, format="PNG")
                staged.add(Path(args.out_dir) / f"{stem}.png", png.getvalue())
            text.append(f"{image}: {len(dets)} detection(s)")
            text += [f"  {d['label']:<14} {d['score']:.3f}  [{', '.join(f'{v:.1f}' for v in d['box'])}]"
                     for d in dets]
        staged.commit()
    print(json.dumps(report, indent=2) if args.json else "\n".join(text))
    return 0
