"""The whole path as CI runs it, through the CLI: generate (aot, mps2-an500) -> build -> QEMU -> verify, for our
model and NXP's, on the example image plus 3 COCO images embedded, and (NXP model) one image uploaded over the link."""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import pytest

from nanodet_mcu import cli, progress
from tests import firmware_builds
from tests.conftest import require_tool

CHECKS_PER_IMAGE = 4  # preprocess, outputs, detections-fixed, detections-float


def generate_and_build(model, images, out, capsys) -> str:
    assert cli.main(["generate", "--board", "mps2-an500", "--engine", "aot", "--model", str(model), "--out", str(out),
                     *(["--embed-images", *map(str, images)] if images else [])]) == 0
    capsys.readouterr()
    assert cli.main(["build", str(out)]) == 0
    elf = capsys.readouterr().out.strip().splitlines()[-1]
    assert elf.endswith(".elf")
    return elf


def verify(elf, model, tmp_path, *extra) -> dict:
    report, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    code = cli.main(["verify", "--emulate", elf, "--model", str(model), "--report", str(report), "--junit",
                     str(junit), *extra])
    data = json.loads(report.read_text())
    failed = [c for c in data["checks"] if not c["passed"]]
    assert code == 0 and data["passed"], failed
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "0" and int(suite.get("tests")) == len(data["checks"])
    return data


@pytest.fixture(params=["nxp", "ours"])
def model(request, nxp_model_path):
    return nxp_model_path if request.param == "nxp" else request.getfixturevalue("our_model_path")


@pytest.mark.slow
def test_generate_build_emulate_verify(model, example_image, val_images, tmp_path, capsys, monkeypatch):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    images = firmware_builds.ci_images(example_image, val_images)
    elf = generate_and_build(model, images, tmp_path / "project", capsys)

    data = verify(elf, model, tmp_path, "--embedded")
    assert len(data["checks"]) == 1 + CHECKS_PER_IMAGE * len(images)
    assert data["device"]["engine"] == "aot" and data["latency"]["inference"]["n"] == len(images)
    outputs = [c for c in data["checks"] if c["name"] == "outputs"]
    assert all(t["differing_bytes"] == 0 for c in outputs for t in c["tensors"].values())
    summary = capsys.readouterr().out
    assert "verify: PASS" in summary and "M emulated instructions" in summary

    if model.name.startswith("nxp"):  # one image over the link (RGB888 upload: ~25 s on QEMU's UART)
        upload_dir = tmp_path / "upload"
        upload_dir.mkdir()
        shutil.copy(val_images[3], upload_dir)
        capsys.readouterr()
        # A log line once a transfer has run LOG_EVERY_S; shortened so a fast machine's upload (a few s) logs too.
        monkeypatch.setattr(progress, "LOG_EVERY_S", 0.5)
        data = verify(elf, model, tmp_path, "--images", str(upload_dir))
        assert [c["image"] for c in data["checks"][1:]] == [val_images[3].name] * CHECKS_PER_IMAGE
        err = capsys.readouterr().err  # not a TTY: progress as log lines
        assert "upload 320x320 RGB888:" in err and "KB/s, ETA" in err and "% of frames retried" in err, err


@pytest.mark.slow
def test_a_built_project_rebuilds_when_its_flags_change(nxp_model_path, tmp_path, capsys):
    """`ND_PROFILE=1 ./build.sh` on a built project must rebuild (objects depend on the flags they were built with),
    not answer "Nothing to be done" and leave a firmware that refuses --profile."""
    import subprocess

    require_tool("arm-none-eabi-gcc")
    generate_and_build(nxp_model_path, [], tmp_path / "p", capsys)

    def up_to_date(*flags) -> bool:
        return subprocess.run(["make", "-q", *flags], cwd=tmp_path / "p", capture_output=True).returncode == 0

    assert up_to_date()
    assert not up_to_date("ND_PROFILE=1")
    assert not up_to_date("ND_PROFILE=0")  # the stamp now names the instrumented flags: back is a change too
    bad = subprocess.run(["make", "ND_PROFILE=maybe"], cwd=tmp_path / "p", capture_output=True, text=True)
    assert bad.returncode != 0 and "ND_PROFILE is 'maybe'" in bad.stderr


def test_build_explains_what_is_missing(tmp_path, monkeypatch, capsys):
    assert cli.main(["build", str(tmp_path)]) == 1
    assert "not a generated project" in capsys.readouterr().err
    (tmp_path / "project.json").write_text(json.dumps({"board": "rt1170", "engine": "aot", "elf": "build/x.elf"}))
    (tmp_path / "build.sh").write_text("#!/bin/sh\nexit 0\n")
    monkeypatch.delenv("MCUX_SDK_ROOT", raising=False)
    assert cli.main(["build", str(tmp_path)]) == 1
    assert "MCUX_SDK_ROOT" in capsys.readouterr().err
    monkeypatch.setenv("MCUX_SDK_ROOT", str(tmp_path))  # not an SDK tree: refused before build.sh runs
    assert cli.main(["build", str(tmp_path)]) == 1
    assert "holds no MCUXpresso SDK" in capsys.readouterr().err
    sdk = tmp_path / "sdk" / "tools" / "cmake_toolchain_files" / "armgcc.cmake"  # a stand-in classic tree (the
    sdk.parent.mkdir(parents=True)  # project.json has no family: a classic project from before generate --sdk)
    sdk.write_text("")
    monkeypatch.setenv("MCUX_SDK_ROOT", str(tmp_path / "sdk"))
    assert cli.main(["build", str(tmp_path)]) == 1
    assert "build/x.elf is missing" in capsys.readouterr().err
    (tmp_path / "build.sh").write_text("#!/bin/sh\necho 'main.c:1: error: boom'\nexit 2\n")
    assert cli.main(["build", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "build.sh exit 2" in err and "boom" in err
