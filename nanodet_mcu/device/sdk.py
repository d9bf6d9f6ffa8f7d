"""Which MCUXpresso SDK a tree holds (MCUX_SDK_ROOT), and the tools its build needs.

Two layouts, each recognised by a file only it has:
- the current SDK (west `mcuxsdk` layout, 24.12 and later): the SDK root holds cmake/extension/mcux.cmake; it is the
  `mcuxsdk` folder of a west workspace made from mcuxsdk-manifests, and the workspace folder is accepted too;
- the classic SDK 2.x (`mcux-sdk`): tools/cmake_toolchain_files/armgcc.cmake in the SDK core, which is `core/` of a
  west workspace or the root of an SDK package.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from nanodet_mcu.errors import NanodetError

MCUXSDK_MARKER = "cmake/extension/mcux.cmake"
CLASSIC_MARKER = "tools/cmake_toolchain_files/armgcc.cmake"
NAMES = {"mcuxsdk": "the current MCUXpresso SDK (west mcuxsdk layout)", "classic": "a classic mcux-sdk 2.x tree"}
MCUXSDK_CMAKE = (3, 30)  # the SDK's CMakeLists require it (Debian 12 has 3.25)
MCUXSDK_TOOLS_HINT = "pip install 'cmake>=3.30,<4' ninja west"


@dataclass(frozen=True)
class SdkTree:
    sdk: str  # "mcuxsdk" | "classic"
    root: Path  # what the project's build takes as MCUX_SDK_ROOT


def detect(root: str | Path) -> SdkTree:
    """The layout of the tree at `root`, or NanodetError naming what was looked for."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise NanodetError(f"MCUX_SDK_ROOT={root} is not a directory")
    for base in (root, root / "mcuxsdk"):
        if (base / MCUXSDK_MARKER).is_file():
            return SdkTree("mcuxsdk", base)
    for core in (root / "core", root):
        if (core / CLASSIC_MARKER).is_file():
            return SdkTree("classic", root)
    raise NanodetError(f"MCUX_SDK_ROOT={root} holds no MCUXpresso SDK: looked for {MCUXSDK_MARKER} (the current SDK, "
                       f"west mcuxsdk layout; also under mcuxsdk/) and {CLASSIC_MARKER} (classic mcux-sdk 2.x; also "
                       "under core/)")


def _cmake_version(cmake: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([cmake, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"version (\d+)\.(\d+)", out)
    return tuple(int(v) for v in found.groups()) if found else None


def missing_tools(sdk: str) -> list[str]:
    """What the build of a project for this SDK layout lacks on PATH, each as `tool (why)`."""
    missing = []
    cmake = shutil.which("cmake")
    if sdk == "mcuxsdk":
        version = _cmake_version(cmake) if cmake else None
        if cmake is None:
            missing.append("cmake >= 3.30 (not found)")
        elif version is None or version < MCUXSDK_CMAKE:
            found = ".".join(map(str, version)) if version else "unknown version"
            missing.append(f"cmake >= 3.30 (found {found} at {cmake})")
        if shutil.which("ninja") is None:
            missing.append("ninja (not found)")
        if shutil.which("python3") is None and shutil.which("python") is None:
            missing.append("python3 (not found)")
    else:
        if cmake is None:
            missing.append("cmake (not found)")
        if shutil.which("make") is None:
            missing.append("make (not found)")
    return missing
