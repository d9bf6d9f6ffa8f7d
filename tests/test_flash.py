"""`nanodet-mcu flash`: the LinkServer / pyOCD command built from the board file, and every way it refuses.

The projects here are manifests only (project.json is all `flash` reads besides the image); pyOCD is the real one
installed with the `pyocd` extra, and no probe is attached to this machine.
"""
from __future__ import annotations

import importlib.util
import json
import shlex
from pathlib import Path

import pytest

from nanodet_mcu import boards, cli
from nanodet_mcu.device import flash

# The names as LinkServer (`LinkServer devices`) and pyOCD (`pyocd list --targets`) spell them.
EXPECTED = {
    "rt1170": ("MIMXRT1176xxxxx:MIMXRT1170-EVK", "mimxrt1170_cm7"),
    "rt1050": ("MIMXRT1052xxxxB:EVKB-IMXRT1050", "mimxrt1050_hyperflash"),
}


def _project(tmp_path: Path, board: str, built: bool = True, **more) -> Path:
    """A project.json as generate writes it; without `family` it is one from before generate --sdk (classic)."""
    project = tmp_path / board
    project.mkdir()
    manifest = {"board": board, "engine": "tflm", "elf": "build/nanodet.elf", "generated_by": "nanodet-mcu test",
                **more}
    (project / "project.json").write_text(json.dumps(manifest))
    if built:
        (project / "build").mkdir()
        (project / manifest["elf"]).write_bytes(b"\x7fELF not a real image")
    return project


def _cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(["flash", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("board", sorted(EXPECTED))
def test_dry_run_prints_both_commands_with_the_board_files_names(board, tmp_path, capsys):
    project = _project(tmp_path, board, built=False)
    device, target = EXPECTED[board]
    assert boards.load(board).data["sdk"]["linkserver"][0] == device
    code, out, err = _cli(capsys, project, "--probe", "linkserver", "--dry-run")
    assert code == 0
    assert shlex.split(out) == ["LinkServer", "flash", device, "load", str(project / "build" / "nanodet.elf")]
    assert "not built yet" in err
    code, out, _ = _cli(capsys, project, "--probe", "pyocd", "--dry-run")
    assert code == 0
    assert shlex.split(out)[-5:] == ["flash", "--no-wait", "-t", target, str(project / "build" / "nanodet.elf")]


def test_linkserver_board_variant_follows_the_build(tmp_path, capsys, monkeypatch):
    project = _project(tmp_path, "rt1170")
    monkeypatch.delenv("MCUX_SDK_BOARD", raising=False)
    (project / "build" / "CMakeCache.txt").write_text("FOO:BOOL=ON\nMCUX_SDK_BOARD:UNINITIALIZED=evkbmimxrt1170\n")
    _, out, _ = _cli(capsys, project, "--probe", "linkserver", "--dry-run")
    assert "MIMXRT1176xxxxx:MIMXRT1170-EVKB" in out
    (project / "build" / "CMakeCache.txt").unlink()
    monkeypatch.setenv("MCUX_SDK_BOARD", "evkbmimxrt1170")
    _, out, _ = _cli(capsys, project, "--probe", "linkserver", "--dry-run")
    assert "MIMXRT1176xxxxx:MIMXRT1170-EVKB" in out
    monkeypatch.setenv("MCUX_SDK_BOARD", "evkfoo")
    code, _, err = _cli(capsys, project, "--probe", "linkserver", "--dry-run")
    assert code == 1 and "evkfoo" in err and len(err.strip().splitlines()) == 1


def test_current_sdk_project_uses_its_table_and_elf(tmp_path, capsys):
    """A project for the current SDK: the ELF the SDK names after the core, the [mcuxsdk] names (EVKB only), the
    board as its CMake cache spells it."""
    project = _project(tmp_path, "rt1170", elf="build/nanodet_cm7.elf", family="mcuxsdk", sdk="mcuxsdk")
    (project / "build" / "CMakeCache.txt").write_text("board:STRING=evkbmimxrt1170\ncore_id:UNINITIALIZED=cm7\n")
    image = str(project / "build" / "nanodet_cm7.elf")
    code, out, _ = _cli(capsys, project, "--probe", "linkserver", "--dry-run")
    assert code == 0 and shlex.split(out) == ["LinkServer", "flash", "MIMXRT1176xxxxx:MIMXRT1170-EVKB", "load", image]
    code, out, _ = _cli(capsys, project, "--probe", "pyocd", "--dry-run")
    assert code == 0 and shlex.split(out)[-5:] == ["flash", "--no-wait", "-t", "mimxrt1170_cm7", image]
    (project / "build" / "CMakeCache.txt").write_text("board:STRING=evkmimxrt1170\n")  # not a board of that SDK
    code, _, err = _cli(capsys, project, "--probe", "linkserver", "--dry-run")
    assert code == 1 and "evkmimxrt1170" in err and "evkbmimxrt1170" in err


def test_emulated_board_points_to_the_emulator(tmp_path, capsys):
    code, out, err = _cli(capsys, _project(tmp_path, "mps2-an500"))
    assert code == 1 and out == ""
    assert "emulated" in err and "nanodet-mcu emulate" in err and "verify --emulate" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("probe", ["auto", "linkserver", "pyocd"])
def test_unbuilt_project_is_refused(probe, tmp_path, capsys):
    code, _, err = _cli(capsys, _project(tmp_path, "rt1050", built=False), "--probe", probe)
    assert code == 1 and "not built yet" in err and "nanodet-mcu build" in err
    assert len(err.strip().splitlines()) == 1


def test_not_a_project(tmp_path, capsys):
    code, _, err = _cli(capsys, tmp_path)
    assert code == 1 and "not a generated project" in err


def test_no_flashing_tool(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(flash, "linkserver_tool", lambda: None)
    monkeypatch.setattr(flash, "pyocd_tool", lambda: None)
    project = _project(tmp_path, "rt1170")
    code, _, err = _cli(capsys, project)
    assert code == 1 and "no flashing tool found" in err and "nanodet-mcu[pyocd]" in err
    code, _, err = _cli(capsys, project, "--probe", "pyocd")
    assert code == 1 and "pip install 'nanodet-mcu[pyocd]'" in err
    code, _, err = _cli(capsys, project, "--probe", "linkserver")
    assert code == 1 and "LinkServer not found" in err
    code, out, err = _cli(capsys, project, "--dry-run")  # a dry run still shows what would run, and says so
    assert code == 0 and out.startswith("LinkServer flash ")
    assert "neither LinkServer nor pyOCD is installed" in err and "nanodet-mcu[pyocd]" in err


def test_a_path_that_is_not_a_project_directory(tmp_path, capsys):
    code, _, err = _cli(capsys, tmp_path / "missing")
    assert code == 1 and "does not exist" in err
    (tmp_path / "README.md").write_text("not a project")
    code, _, err = _cli(capsys, tmp_path / "README.md")
    assert code == 1 and "is not a directory" in err and len(err.strip().splitlines()) == 1


def test_linkserver_on_path_is_preferred(tmp_path, monkeypatch):
    monkeypatch.setattr(flash, "linkserver_tool", lambda: "/opt/nxp/LinkServer")
    plan = flash.plan(_project(tmp_path, "rt1050"))
    assert plan.probe == "linkserver" and plan.command[0] == "/opt/nxp/LinkServer"


def test_pyocd_without_a_probe_fails_on_one_line(tmp_path, capsys, monkeypatch):
    if importlib.util.find_spec("pyocd") is None:
        pytest.skip("pyOCD not installed (pip install 'nanodet-mcu[pyocd]'; .ci/run installs it)")
    monkeypatch.setattr(flash, "linkserver_tool", lambda: None)
    code, out, err = _cli(capsys, _project(tmp_path, "rt1170"))
    assert code == 1
    assert out.split()[-5:-1] == ["flash", "--no-wait", "-t", "mimxrt1170_cm7"]
    error = [ln for ln in err.splitlines() if "error" in ln]
    assert len(error) == 1 and "No connected debug probes" in error[0] and "connect the board" in error[0]
