#!/usr/bin/env bash
# The main job, end to end: set up, convert the official weights, generate firmware, build it, run it on a board,
# verify it from the host.
#
#   tools/end_to_end.sh                      # emulated Cortex-M7 (QEMU mps2-an500): no hardware needed
#   PORT=/dev/ttyACM0 BOARD=rt1170 tools/end_to_end.sh
#                                            # a real RT board: generates + builds its project (needs
#                                            # MCUX_SDK_ROOT: the current MCUXpresso SDK, or SDK=classic for a
#                                            # classic 2.x tree), flashes it (`nanodet-mcu flash`: LinkServer on PATH
#                                            # or pyOCD; PROBE=linkserver|pyocd picks one), then verifies it on PORT
# Shared data (weights, calibration and test images) is read from $SHARED (default ../shared, this project's
# development copy; README.md "Inputs" says where each file comes from).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
OUT=${OUT:-build/end_to_end}
tools/setup.sh
export TF_CPP_MIN_LOG_LEVEL=3
nd() { .venv/bin/nanodet-mcu "$@"; }

mkdir -p "$OUT"
model="$OUT/nanodet_m_0.5x.tflite"
echo "== convert: official ONNX weights -> int8 TFLite (calibrated on $SHARED/coco/calib)"
nd convert --weights "$SHARED/models/nanodet_m_0.5x.onnx" --calib-dir "$SHARED/coco/calib" -o "$model"
nd inspect "$model"
echo "== host reference on the zoo's example image"
nd detect --model "$model" "$SHARED/images/example_input.jpg" --out-dir "$OUT/detections"
val=("$SHARED"/coco/val/*.jpg)  # a glob, not `ls | head`: under pipefail, head closing the pipe would abort
images=("$SHARED/images/example_input.jpg" "${val[@]:0:3}")

if [ -n "${PORT:-}" ]; then
  board=${BOARD:-rt1170}
  echo "== generate + build for $board (TFLM from your MCUXpresso SDK at MCUX_SDK_ROOT)"
  nd generate --board "$board" --model "$model" --embed-images "${images[@]}" --out "$OUT/$board-tflm" --force \
    ${SDK:+--sdk "$SDK"}
  nd build "$OUT/$board-tflm"
  nd flash "$OUT/$board-tflm" --probe "${PROBE:-auto}"
  nd verify --port "$PORT" --model "$model" --embedded --runs 3 --report "$OUT/verify.json" --junit "$OUT/verify.xml"
else
  echo "== no PORT given: the emulated Cortex-M7 board (QEMU mps2-an500) runs the same firmware core"
  nd generate --board mps2-an500 --engine aot --model "$model" --embed-images "${images[@]}" \
    --out "$OUT/mps2-an500-aot" --force
  nd build "$OUT/mps2-an500-aot"
  elf="$OUT/mps2-an500-aot/$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["elf"])' "$OUT/mps2-an500-aot/project.json")"
  nd verify --emulate "$elf" --model "$model" --embedded --runs 3 --report "$OUT/verify.json" --junit "$OUT/verify.xml"
fi
