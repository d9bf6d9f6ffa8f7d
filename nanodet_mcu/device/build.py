"""Build a generated project: run its build.sh (the one entry point generate writes) and find the ELF.

The project says what it is in project.json; RT boards build with an MCUXpresso SDK (the current west `mcuxsdk`
layout, or the classic 2.x one with generate --sdk classic) found through MCUX_SDK_ROOT, whose layout is checked
against the project's before anything runs; the emulated board builds with a plain Makefile.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from nanodet_mcu import boards
from nanodet_mcu.device import sdk as sdk_tree
from nanodet_mcu.errors import NanodetError

MANIFEST = "project.json"

# Lines that state a failed build's error, whichever tool stopped it.  Command lines never match (a compiler
# invocation with -Werror is not an error), nor ld's warnings or make's "*** [target] Error 1" echo.
_ERROR_LINES = [re.compile(p) for p in (
    r"^\S+:\d+(:\d+)?: (fatal )?error: ",                  # gcc/g++/as: file.c:12:3: error: ...
    r"undefined reference to ",                           # ld: an unresolved symbol (its "in function" line is
    r"(^|[/ ])(arm-none-eabi-)?ld(\.\w+)?: (?!warning)(?!.*: in function)",  # the one before); cannot find, overflow
    r"^\S+: \*\*\* (?!\[)",                                # make: Makefile:40: *** set TFLM_INCLUDE ...  Stop.
    r"^CMake Error",                                      # cmake (the message follows on the next line)
    r"^build\.sh: ",                                      # the generated build.sh's own checks
)]


def first_error_line(output: str) -> str:
    """The first line of a failed build's output that states the error (compiler or linker diagnostic, make or
    CMake error, build.sh's message); else the first line with the word "error"; else the last line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if any(p.search(line) for p in _ERROR_LINES):
            if line.startswith("CMake Error") and i + 1 < len(lines):
                return f"{line} {lines[i + 1]}"
            return line
    generic = [ln for ln in lines if re.search(r"\berror\b", ln, re.IGNORECASE)]
    return (generic or lines[-1:] or ["no output"])[0]


def read_manifest(project: Path) -> dict:
    path = project / MANIFEST
    if not project.exists():
        raise NanodetError(f"{project} does not exist (the directory `nanodet-mcu generate --out` wrote)")
    if not project.is_dir():
        raise NanodetError(f"{project} is not a directory: give the project directory `nanodet-mcu generate --out` "
                           "wrote")
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise NanodetError(f"{project} is not a generated project (no {MANIFEST}; run nanodet-mcu generate)") from None
    except (OSError, ValueError) as exc:
        raise NanodetError(f"cannot read {path}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise NanodetError(f"{path} is not a nanodet-mcu manifest (a JSON {type(manifest).__name__}, not an object); "
                           "regenerate the project")
    missing = [k for k in ("board", "engine", "elf") if not isinstance(manifest.get(k), str)]
    if missing:
        raise NanodetError(f"{path} lacks {', '.join(missing)}")
    return manifest


def project_family(manifest: dict) -> boards.Family | None:
    """The project's family from project.json (projects made before generate --sdk existed are classic ones), or
    None for a board this version does not know."""
    try:
        board = boards.load(manifest["board"])
    except NanodetError:
        return None
    name = manifest.get("family") or ("mcux-armgcc" if "mcux-armgcc" in board.families else board.family)
    return boards.FAMILIES.get(name)


def check_environment(manifest: dict) -> dict[str, str]:
    """One-line NanodetError for what the build lacks (SDK, its layout, tools); else the environment for build.sh."""
    env = dict(os.environ)
    family = project_family(manifest)
    if family is not None and family.sdk:
        wanted = sdk_tree.NAMES[family.sdk]
        root = os.environ.get("MCUX_SDK_ROOT")
        if not root:
            raise NanodetError(f"building for {manifest['board']} needs the MCUXpresso SDK: set MCUX_SDK_ROOT to "
                               f"{wanted} (see the project's README.md)")
        tree = sdk_tree.detect(root)
        if tree.sdk != family.sdk:
            raise NanodetError(f"this project is for {wanted}, but MCUX_SDK_ROOT={root} holds "
                               f"{sdk_tree.NAMES[tree.sdk]}: point MCUX_SDK_ROOT at {wanted}, or generate the "
                               f"project again with --sdk {tree.sdk}")
        missing = sdk_tree.missing_tools(family.sdk)
        if missing:
            hint = f": {sdk_tree.MCUXSDK_TOOLS_HINT}" if family.sdk == "mcuxsdk" else ""
            raise NanodetError(f"the {family.sdk} build needs {', '.join(missing)}{hint}")
        env["MCUX_SDK_ROOT"] = str(tree.root)
    if shutil.which(os.environ.get("CROSS", "arm-none-eabi-") + "gcc") is None and not os.environ.get("ARMGCC_DIR"):
        raise NanodetError("arm-none-eabi-gcc not found: install the GNU Arm toolchain "
                           "(Debian: apt install gcc-arm-none-eabi libnewlib-arm-none-eabi)")
    return env


def build(project_dir: str | Path, log=None) -> Path:
    """Run the project's build.sh; returns the ELF.  Build output goes to `log` (a callable per line) if given."""
    project = Path(project_dir)
    manifest = read_manifest(project)
    script = project / "build.sh"
    if not script.is_file():
        raise NanodetError(f"{script} is missing: regenerate the project")
    env = check_environment(manifest)
    proc = subprocess.run(["sh", str(script.resolve())], cwd=project, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env)
    if log is not None:
        for line in proc.stdout.splitlines():
            log(line)
    if proc.returncode != 0:
        more = "" if log is not None else " (nanodet-mcu build -v shows the whole output)"
        raise NanodetError(f"build of {project} failed (build.sh exit {proc.returncode}): "
                           f"{first_error_line(proc.stdout)}{more}")
    elf = project / manifest["elf"]
    if not elf.is_file():
        raise NanodetError(f"build.sh succeeded but {elf} is missing")
    return elf


def elf_size(elf: Path) -> dict[str, int] | None:
    """text/data/bss of the ELF from arm-none-eabi-size, None when the tool is missing."""
    size = shutil.which(os.environ.get("CROSS", "arm-none-eabi-") + "size")
    if size is None:
        return None
    proc = subprocess.run([size, str(elf)], capture_output=True, text=True)
    lines = proc.stdout.split("\n")
    if proc.returncode != 0 or len(lines) < 2:
        return None
    text, data, bss = (int(v) for v in lines[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}
