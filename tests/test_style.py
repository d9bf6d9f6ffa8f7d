"""Style gates that CI runs with everything else: ruff on the Python, clang-format (the repo's .clang-format) on the
C of firmware/, fuzz/ and the test harnesses.  Both tools are pinned in pyproject's test extra."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
C_DIRS = ("firmware", "fuzz", "tests/c", "tests/golden")
CLANG_FORMAT_MAJOR = 19  # pyproject pins clang-format==19.x in the test extra


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (pip install -e '.[test]' installs it)")
    return path


def c_sources() -> list[Path]:
    return sorted(p for d in C_DIRS for p in (ROOT / d).rglob("*") if p.suffix in (".c", ".h", ".cc"))


def test_ruff_is_clean():
    proc = subprocess.run([_tool("ruff"), "check", "--no-cache", str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_c_sources_are_clang_formatted():
    files = c_sources()
    assert len(files) > 15, "the C sources moved: update C_DIRS"
    tool = _tool("clang-format")
    version = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
    if f"version {CLANG_FORMAT_MAJOR}." not in version:
        pytest.skip(f"{tool} is not clang-format {CLANG_FORMAT_MAJOR} ({version.strip()}): older versions lack "
                    "InsertBraces; pip install -e '.[test]' installs the pinned one")
    proc = subprocess.run([tool, "--dry-run", "-Werror", *map(str, files)], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, "run clang-format -i on these files:\n" + proc.stderr[-4000:]
