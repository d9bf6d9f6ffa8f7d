"""`nanodet-mcu detect`: the host reference on images; JSON, annotated images, raw int8 outputs."""
import io
import json
from pathlib import Path

import numpy as np

from nanodet_mcu import cliargs, outputs, preprocess, runners, spec
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
    p.add_argument("--score-threshold", type=cliargs.fraction, default=spec.SCORE_THRESHOLD,
                   help="keep detections scoring above this (default %(default)s)")
    p.add_argument("--iou-threshold", type=cliargs.fraction, default=spec.IOU_THRESHOLD,
                   help="NMS drops a box whose IoU with a better one exceeds this (default %(default)s)")


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
                from nanodet_mcu import drawing

                suffix, data = drawing.encode(drawing.draw_detections(rgb, dets),
                                              drawing.output_format(image, args.format))
                staged.add(Path(args.out_dir) / f"{stem}{suffix}", data)
            text.append(f"{image}: {len(dets)} detection(s)")
            text += [f"  {d['label']:<14} {d['score']:.3f}  [{', '.join(f'{v:.1f}' for v in d['box'])}]"
                     for d in dets]
        staged.commit()
    print(json.dumps(report, indent=2) if args.json else "\n".join(text))
    return 0
