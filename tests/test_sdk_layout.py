"""`build` knows which MCUXpresso SDK MCUX_SDK_ROOT holds, refuses the wrong one or an unknown tree, and names missing
tools, each on one line before anything runs.  The trees here are stand-ins holding only the files that tell the
layouts apart (the real trees are built against in test_generate_build.py / test_external_builds.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanodet_mcu import cli
from nanodet_mcu.device import build, sdk
from nanodet_mcu.errors import NanodetError


def _tree(root: Path, *files: str) -> Path:
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("")
    return root


@pytest.mark.parametrize("files, layout, root", [
    (["cmake/extension/mcux.cmake"], "mcuxsdk", "."),  # MCUX_SDK_ROOT = the SDK root
    (["mcuxsdk/cmake/extension/mcux.cmake", "manifests/west.yml"], "mcuxsdk", "mcuxsdk"),  # = the west workspace
    (["core/tools/cmake_toolchain_files/armgcc.cmake"], "classic", "."),  # classic west workspace
    (["tools/cmake_toolchain_files/armgcc.cmake"], "classic", "."),  # classic SDK package
])
def test_layouts_are_detected(tmp_path, files, layout, root):
    tree = sdk.detect(_tree(tmp_path, *files))
    assert tree.sdk == layout and tree.root == tmp_path / root


def test_unknown_tree_names_what_was_looked_for(tmp_path):
    with pytest.raises(NanodetError) as err:
        sdk.detect(_tree(tmp_path, "devices/MIMXRT1052/MIMXRT1052.h"))
    message = str(err.value)
    assert "holds no MCUXpresso SDK" in message and "\n" not in message
    assert sdk.MCUXSDK_MARKER in message and sdk.CLASSIC_MARKER in message
    with pytest.raises(NanodetError, match="is not a directory"):
        sdk.detect(tmp_path / "nowhere")


def _project(tmp_path: Path, family: str | None) -> Path:
    project = tmp_path / "p"
    project.mkdir()
    manifest = {"board": "rt1050", "engine": "aot", "elf": "build/nanodet.elf", "generated_by": "nanodet-mcu test"}
    if family:
        manifest["family"] = family
    (project / "project.json").write_text(json.dumps(manifest))
    (project / "build.sh").write_text("exit 0\n")
    return project


@pytest.mark.parametrize("family, tree_files, expected", [
    ("mcuxsdk", ["core/tools/cmake_toolchain_files/armgcc.cmake"],
     ["this project is for the current MCUXpresso SDK (west mcuxsdk layout), but MCUX_SDK_ROOT=",
      "holds a classic mcux-sdk 2.x tree", "or generate the project again with --sdk classic"]),
    ("mcux-armgcc", ["cmake/extension/mcux.cmake"],
     ["this project is for a classic mcux-sdk 2.x tree, but", "holds the current MCUXpresso SDK", "--sdk mcuxsdk"]),
    (None, ["cmake/extension/mcux.cmake"], ["generate the project again with --sdk mcuxsdk"]),  # an older project
    ("mcuxsdk", ["README.txt"], ["holds no MCUXpresso SDK: looked for cmake/extension/mcux.cmake"]),
])
def test_build_refuses_the_other_layout_on_one_line(tmp_path, capsys, monkeypatch, family, tree_files, expected):
    monkeypatch.setenv("MCUX_SDK_ROOT", str(_tree(tmp_path / "sdk", *tree_files)))
    assert cli.main(["build", str(_project(tmp_path, family))]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(part in err for part in expected), err


def test_missing_sdk_root_says_which_sdk(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MCUX_SDK_ROOT", raising=False)
    assert cli.main(["build", str(_project(tmp_path, "mcuxsdk"))]) == 1
    err = capsys.readouterr().err.strip()
    assert "set MCUX_SDK_ROOT to the current MCUXpresso SDK (west mcuxsdk layout)" in err


def test_missing_tools_are_named_on_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MCUX_SDK_ROOT", str(_tree(tmp_path / "sdk", "cmake/extension/mcux.cmake")))
    monkeypatch.setattr(sdk.shutil, "which", lambda name: "/usr/bin/cmake" if name == "cmake" else None)
    monkeypatch.setattr(sdk, "_cmake_version", lambda cmake: (3, 25))
    assert cli.main(["build", str(_project(tmp_path, "mcuxsdk"))]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert ("the mcuxsdk build needs cmake >= 3.30 (found 3.25 at /usr/bin/cmake), ninja (not found), python3 (not "
            "found): pip install 'cmake>=3.30,<4' ninja west") in err


def test_workspace_root_is_passed_on_as_the_sdk_root(tmp_path, monkeypatch):
    workspace = _tree(tmp_path / "ws", "mcuxsdk/cmake/extension/mcux.cmake")
    monkeypatch.setenv("MCUX_SDK_ROOT", str(workspace))
    monkeypatch.setattr(sdk, "missing_tools", lambda layout: [])
    env = build.check_environment({"board": "rt1050", "engine": "aot", "elf": "x", "family": "mcuxsdk"})
    assert env["MCUX_SDK_ROOT"] == str(workspace / "mcuxsdk")


def test_generate_notes_when_the_sdk_at_hand_is_the_other_layout(nxp_model_path, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MCUX_SDK_ROOT", str(_tree(tmp_path / "sdk", "core/tools/cmake_toolchain_files/armgcc.cmake")))
    argv = ["generate", "--board", "rt1050", "--engine", "aot", "--model", str(nxp_model_path), "--out"]
    assert cli.main([*argv, str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()
    assert "SDK: the current MCUXpresso SDK (west mcuxsdk layout) in MCUX_SDK_ROOT (--sdk mcuxsdk" in captured.out
    assert "holds a classic mcux-sdk 2.x tree" in captured.err and "--sdk classic" in captured.err
    assert cli.main([*argv, str(tmp_path / "b"), "--sdk", "classic"]) == 0
    assert "note:" not in capsys.readouterr().err
