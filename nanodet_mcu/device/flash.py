"""Flash the built image of a generated project with a debug probe: NXP LinkServer or pyOCD.

The names each tool needs come from the board file's table of the project's SDK layout (`[mcuxsdk]` or `[sdk]`:
`linkserver` = "<device>:<board>" per SDK board, `pyocd_target`), so adding a board adds no code here.  A board
with `emulated_by` has nothing to flash.
LinkServer is NXP's installer (not on PyPI) and is used when `LinkServer` is on PATH; pyOCD is the optional extra
`pip install nanodet-mcu[pyocd]`, run with the interpreter it is installed in.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nanodet_mcu import boards
from nanodet_mcu.device.build import project_family, read_manifest
from nanodet_mcu.errors import NanodetError

PROBES = ("auto", "linkserver", "pyocd")
LINKSERVER = "LinkServer"
INSTALL_HINT = ("install NXP LinkServer (nxp.com; put LinkServer on PATH) or pyOCD "
                "(pip install 'nanodet-mcu[pyocd]')")
_CMAKE_BOARD = re.compile(r"^(?:MCUX_SDK_BOARD|board):\w+=(\S+)$", re.MULTILINE)  # classic | mcuxsdk


@dataclass(frozen=True)
class FlashPlan:
    probe: str  # "linkserver" | "pyocd"
    command: list[str]
    image: Path
    notes: list[str] = field(default_factory=list)  # what a dry run should add (image not built, tool missing)

    @property
    def shell(self) -> str:
        """The command as one would type it."""
        import shlex

        return shlex.join(self.command)


def sdk_board(project: Path, sdk: dict) -> str:
    """The SDK board the image was built for (`sdk`: the board file's table of the project's SDK layout): the
    build's CMake cache, else $MCUX_SDK_BOARD, else the default."""
    names = sdk["boards"]
    try:
        found = _CMAKE_BOARD.search((project / "build" / "CMakeCache.txt").read_text(errors="replace"))
    except OSError:
        found = None
    env = os.environ.get("MCUX_SDK_BOARD")
    name = found.group(1) if found else env or names[0]
    if name not in names:
        source = "the image was built for" if found else "MCUX_SDK_BOARD (no build yet) names"
        raise NanodetError(f"{source} SDK board '{name}', which the board file does not list for this SDK "
                           f"({', '.join(names)})")
    return name


def linkserver_command(sdk: dict, image: Path, sdk_board_name: str, tool: str = LINKSERVER) -> list[str]:
    """`LinkServer flash <device>:<board> load <image>` (the board file pairs linkserver with boards)."""
    device = sdk["linkserver"][sdk["boards"].index(sdk_board_name)]
    return [tool, "flash", device, "load", str(image)]


def pyocd_command(sdk: dict, image: Path, tool: list[str] | None = None) -> list[str]:
    """`pyocd flash --no-wait -t <target> <image>`: fails at once when no probe is attached instead of waiting."""
    return [*(tool or ["pyocd"]), "flash", "--no-wait", "-t", sdk["pyocd_target"], str(image)]


def linkserver_tool() -> str | None:
    return shutil.which(LINKSERVER)


def pyocd_tool() -> list[str] | None:
    """pyOCD as installed with this package (the extra), else a pyocd on PATH."""
    if importlib.util.find_spec("pyocd") is not None:
        return [sys.executable, "-m", "pyocd"]
    path = shutil.which("pyocd")
    return [path] if path else None


def _flashable_sdk(manifest: dict, image: Path) -> dict:
    """The board file's table (of the project's SDK layout) that names the flashing tools' device and target."""
    board = boards.load(manifest["board"])
    emulated_by = board.data.get("emulated_by")
    if emulated_by:
        raise NanodetError(f"{board.name} is an emulated board ({emulated_by}), there is no probe to flash: run the "
                           f"image with `nanodet-mcu emulate {image}` or check it with `nanodet-mcu verify --emulate "
                           f"{image} --model MODEL`")
    family = project_family(manifest)
    sdk = board.data.get(family.table, {}) if family is not None else {}
    if not sdk.get("linkserver") or not sdk.get("pyocd_target"):
        where = f"[{family.table}] " if family is not None else ""
        raise NanodetError(f"the board file of {board.name} names no LinkServer device or pyOCD target ({where}"
                           "linkserver, pyocd_target)")
    return sdk


def plan(project_dir: str | Path, probe: str = "auto", dry_run: bool = False) -> FlashPlan:
    """What `flash` runs for this project.  With dry_run the tool need not be installed nor the image built."""
    if probe not in PROBES:
        raise NanodetError(f"--probe must be one of {', '.join(PROBES)}, not '{probe}'")
    project = Path(project_dir)
    manifest = read_manifest(project)
    image = project / manifest["elf"]
    sdk = _flashable_sdk(manifest, image)
    notes: list[str] = []
    if not image.is_file():
        if not dry_run:
            raise NanodetError(f"{image} is not built yet: run `nanodet-mcu build {project}` first")
        notes.append(f"{image} is not built yet (nanodet-mcu build {project})")
    linkserver, pyocd = linkserver_tool(), pyocd_tool()
    if probe == "auto":
        if linkserver is None and pyocd is None:
            if not dry_run:
                raise NanodetError(f"no flashing tool found: {INSTALL_HINT}")
            notes.append(f"neither LinkServer nor pyOCD is installed, so this is the LinkServer command; to run it, "
                         f"{INSTALL_HINT}")
            probe = "linkserver"
        else:
            probe = "linkserver" if linkserver is not None else "pyocd"
    if probe == "linkserver":
        if linkserver is None and not dry_run:
            raise NanodetError(f"{LINKSERVER} not found on PATH: install NXP LinkServer (nxp.com, not on PyPI) or "
                               "use --probe pyocd")
        command = linkserver_command(sdk, image, sdk_board(project, sdk), linkserver or LINKSERVER)
        return FlashPlan(probe, command, image, notes)
    if pyocd is None and not dry_run:
        raise NanodetError("pyOCD is not installed: pip install 'nanodet-mcu[pyocd]' (or use --probe linkserver)")
    return FlashPlan(probe, pyocd_command(sdk, image, pyocd), image, notes)


def _first_error(output: str) -> str:
    """The line that says what went wrong: pyOCD's and LinkServer's error lines, else the last line printed."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for pattern in (r"no connected debug probes|no probes? (found|available)", r"\bE\b |^error|\berror\b"):
        hit = next((ln for ln in lines if re.search(pattern, ln, re.IGNORECASE)), None)
        if hit:
            return hit
    return lines[-1] if lines else "no output"


def flash(flash_plan: FlashPlan, log=None, timeout: float = 600.0) -> None:
    """Run the plan; NanodetError with the tool's own error line when it fails (no probe, wrong target...)."""
    try:
        proc = subprocess.run(flash_plan.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise NanodetError(f"cannot run {flash_plan.command[0]}: {exc.strerror}") from exc
    except subprocess.TimeoutExpired as exc:
        raise NanodetError(f"{flash_plan.probe} did not finish within {timeout:.0f} s") from exc
    if log is not None:
        for line in proc.stdout.splitlines():
            log(line)
    if proc.returncode != 0:
        line = _first_error(proc.stdout)
        hint = (": connect the board's debug USB port (and check its jumpers), then retry"
                if re.search(r"no connected debug probes|no probes?", line, re.IGNORECASE) else "")
        raise NanodetError(f"{flash_plan.probe} failed (exit {proc.returncode}): {line}{hint}")
