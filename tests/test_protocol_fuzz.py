"""Short libFuzzer runs (ASan + UBSan) of the device's frame parser and of nd_app.c's request loop built for the
host; fuzz/run_fuzz.sh is the long run.  Any crash, sanitizer report or broken property fails the test."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nanodet_mcu import FIRMWARE_DIR
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
COMMON = FIRMWARE_DIR / "common"
FLAGS = ["-g", "-O1", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all", "-Wall", "-Wextra",
         "-Werror"]
TARGETS = {  # includes, sources, seeds (a directory, or None: fuzz/make_seeds.py), extra libFuzzer flags
    "fuzz_protocol": ([f"-I{COMMON}"], ["fuzz/fuzz_protocol.c", COMMON / "nd_protocol.c"], "tests/golden",
                      ["-max_len=9000"]),
    "fuzz_app": ([f"-I{ROOT / 'fuzz/host'}", f"-I{COMMON}"],
                 ["fuzz/fuzz_app.c", COMMON / "nd_protocol.c", COMMON / "nd_postprocess.c", COMMON / "nd_steps.c"],
                 None, ["-max_len=400000", f"-dict={ROOT / 'fuzz/fuzz_app.dict'}"]),
}
SECONDS = 10


@pytest.mark.slow
@pytest.mark.parametrize("target", list(TARGETS))
def test_fuzz_short_run(target, tmp_path):
    clang = require_tool("clang")
    includes, sources, seeds, flags = TARGETS[target]
    exe = tmp_path / target
    build = subprocess.run([clang, *FLAGS, *includes, *(str(ROOT / s) for s in sources), "-o", str(exe)],
                           capture_output=True, text=True)
    if build.returncode != 0 and "fuzzer" in build.stderr and "not found" in build.stderr:
        pytest.skip(f"clang has no libFuzzer runtime: {build.stderr.strip().splitlines()[-1]}")
    assert build.returncode == 0, build.stderr
    corpus = tmp_path / "corpus"
    if seeds is None:
        subprocess.run([sys.executable, str(ROOT / "fuzz/make_seeds.py"), str(corpus)], check=True)
    else:
        shutil.copytree(ROOT / seeds, corpus, ignore=shutil.ignore_patterns("*.txt", "*.py", "*.c", "__pycache__"))
    run = subprocess.run([str(exe), f"-max_total_time={SECONDS}", *flags, "-print_final_stats=1", str(corpus)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=SECONDS + 60)
    log = run.stderr
    assert run.returncode == 0, log[-3000:]
    assert "ERROR:" not in log and "runtime error" not in log, log[-3000:]
    runs = int(log.split("stat::number_of_executed_units:")[1].split()[0])
    assert runs > 1000
