"""RT projects built against the MCUXpresso SDK tree MCUX_SDK_ROOT names, and the checks every such image passes."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from nanodet_mcu import boards
from nanodet_mcu.codegen import generate


def run(cmd, cwd=None, timeout=900) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def symbols(elf: Path) -> dict[str, tuple[int, str]]:
    """name -> (address, nm type) of the ELF's symbols."""
    out = {}
    for line in run(["arm-none-eabi-nm", elf]).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            out[parts[2]] = (int(parts[0], 16), parts[1])
    return out


def section(elf: Path, name: str) -> tuple[int, int]:
    """(address, size) of an ELF section."""
    for line in run(["arm-none-eabi-readelf", "-SW", elf]).stdout.splitlines():
        fields = line.replace("[", " ").replace("]", " ").split()
        if name in fields:
            i = fields.index(name)
            return int(fields[i + 2], 16), int(fields[i + 4], 16)
    raise AssertionError(f"{elf} has no {name} section")


def build_with_the_sdk(project: generate.Project, tree, prebuilt: str = "ON") -> tuple[Path, str]:
    """Run the project's build.sh against the SDK tree (conftest.require_sdk); (ELF, build output).  No warning may
    name one of our files or come from the linker (the SDK's own sources and its Kconfig files may warn)."""
    env = dict(os.environ, MCUX_SDK_ROOT=str(tree.root), ND_TFLM_PREBUILT=prebuilt)
    proc = subprocess.run(["sh", "build.sh"], cwd=project.out_dir, env=env, capture_output=True, text=True,
                          timeout=3600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    ours = [ln for ln in output.splitlines() if "warning:" in ln
            and (str(project.out_dir) in ln or re.search(r"\bld(\.\w+)?: warning", ln))]
    assert not ours, ours
    manifest = json.loads((project.out_dir / "project.json").read_text())
    return project.out_dir / manifest["elf"], output


def link_map(project: generate.Project) -> str:
    """The build's link map (classic: build/nanodet.map, current SDK: build/output.map)."""
    return next((project.out_dir / "build").glob("*.map")).read_text()


def check_rt_image(project: generate.Project, elf: Path) -> dict[str, tuple[int, str]]:
    """The arena where generate placed it and our SystemInitHook linked (the FlexRAM split); returns the symbols."""
    address, _ = section(elf, ".nd_arena")
    region = project.placement.region
    found = symbols(elf)
    arena = found["__nd_arena_start__"][0]
    assert arena == address and found["__nd_arena_end__"][0] - arena >= project.arena_bytes
    assert region.address <= arena and arena + project.arena_bytes <= region.address + region.size
    if project.engine == "aot":  # the arena symbol itself, whole, inside the region (DTCM: 0x2000xxxx)
        assert found["nd_arena"][0] == arena
        check_aot_placement(project, found)
    # Our SystemInitHook (nd_flexram.c) replaced the SDK's weak empty one, so the split is applied; the map names the
    # object that supplied the linked copy (-z muldefs would hide a second strong definition).
    hook = found["SystemInitHook"]
    assert hook[1] == "T"
    linked = re.search(rf"\.text\.SystemInitHook\s+0x0*{hook[0]:x}\s+0x[0-9a-f]+ (\S+)", link_map(project))
    assert linked and linked.group(1).endswith("nd_flexram.c.obj"), linked
    return found


# The fast kernels' hot functions (C and assembly), which the board's [aot] code_section puts in fast code memory.
HOT_KERNELS = ("nd_conv2d_rows_3x2_s8", "nd_conv3x2_run", "nd_dw_pairs_s1_run", "nd_dw4_run", "nd_add_smmulr_s8",
               "nd_resize_add_smmulr_s8", "nd_maxpool_rows_s8x4")


def check_aot_placement(project: generate.Project, found: dict[str, tuple[int, str]]) -> None:
    """What the board's [aot] table asks for, read back from the linked ELF: the hot kernels inside their code
    section in ITCM, the model's constant arrays (nd_wq_*: conv weights) inside the const section generate chose,
    else outside every RAM region (read from flash)."""
    board = boards.load(project.board)
    aot = json.loads((project.out_dir / "project.json").read_text())["aot"]
    assert board.aot is not None and aot["code_section"] == board.aot["code_section"]
    stem = aot["code_section"][1:]
    code = found[f"__{stem}_start__"][0], found[f"__{stem}_end__"][0]
    itcm = board.flexram.itcm_address, board.flexram.itcm_address + board.flexram.bytes("itcm")
    assert itcm[0] <= code[0] <= code[1] <= itcm[1], code
    for name in HOT_KERNELS:
        assert code[0] <= found[name][0] < code[1], (name, hex(found[name][0]))
    weights = [addr for name, (addr, _) in found.items() if name.startswith("nd_wq_")]
    assert weights
    regions = {r.name: r for r in board.memory}
    if aot["const_region"] == "flash":
        assert aot["const_section"] == "" and "__nd_const_start__" not in found
        assert not any(r.address <= a < r.address + r.size for a in weights for r in regions.values())
    else:
        r, stem = regions[aot["const_region"]], aot["const_section"][1:]
        start, end = found[f"__{stem}_start__"][0], found[f"__{stem}_end__"][0]
        assert r.address <= start <= min(weights) and max(weights) < end <= r.address + r.size
