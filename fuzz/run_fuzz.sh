#!/bin/sh
# Long fuzzing run of the device's protocol code (libFuzzer + ASan + UBSan): the frame parser (fuzz_protocol)
# and the whole request loop of nd_app.c built for the host (fuzz_app), half the time each.  CI runs a short one
# (tests/test_protocol_fuzz.py); run this one before a release:  fuzz/run_fuzz.sh [seconds, default 1800]
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_TO_RUN=${1:-1800}
HALF=$((SECONDS_TO_RUN / 2))
WORK=${FUZZ_WORK:-$ROOT/build/fuzz}
CC=${FUZZ_CC:-clang}
FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Wall -Wextra -Werror"
COMMON="$ROOT/firmware/common"
mkdir -p "$WORK/corpus_protocol" "$WORK/corpus_app"
cp "$ROOT"/tests/golden/*.bin "$WORK/corpus_protocol/"
# fuzz_app's seeds are whole sessions (a 307200-byte upload in 4 KB frames...): -max_len must cover them
python3 "$ROOT/fuzz/make_seeds.py" "$WORK/corpus_app"
APP_MAX_LEN=400000
$CC $FLAGS -I"$COMMON" "$ROOT/fuzz/fuzz_protocol.c" "$COMMON/nd_protocol.c" -o "$WORK/fuzz_protocol"
$CC $FLAGS -I"$ROOT/fuzz/host" -I"$COMMON" "$ROOT/fuzz/fuzz_app.c" "$COMMON/nd_protocol.c" \
    "$COMMON/nd_postprocess.c" "$COMMON/nd_steps.c" -o "$WORK/fuzz_app"
cd "$WORK"
./fuzz_protocol -max_total_time="$HALF" -max_len=9000 -print_final_stats=1 corpus_protocol
./fuzz_app -max_total_time="$HALF" -max_len="$APP_MAX_LEN" -dict="$ROOT/fuzz/fuzz_app.dict" -print_final_stats=1 \
    corpus_app
