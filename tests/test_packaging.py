"""Packaging: what a user gets from `pip install nanodet-mcu` works outside the source tree.

The slow test does what a new user does, as CI: build the sdist from the tracked files, the wheel from the sdist,
install the wheel into a fresh venv (dependencies seen through the running environment's site-packages, the source
tree nowhere on its path), and from another directory run generate -> build -> verify --emulate (AOT, mps2-an500),
detect --interpreter aot and --decoder c, and flash --dry-run for both RT boards.
"""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

import nanodet_mcu
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
DATA_PACKAGES = {"templates": "nanodet_mcu.templates", "firmware": "nanodet_mcu.firmware"}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _source_files(top: str) -> list[str]:
    """Files of a data directory that the package must ship (relative to it), without Python caches."""
    base = ROOT / top
    return sorted(str(p.relative_to(base)) for p in base.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def test_pyproject_lists_every_package():
    """Mapped directories are not discovered: the explicit list must name every package of the tree."""
    setuptools = _pyproject()["tool"]["setuptools"]
    expected = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "nanodet_mcu").rglob("__init__.py")}
    for top, package in DATA_PACKAGES.items():
        assert setuptools["package-dir"][package] == top
        expected |= {".".join([package, *d.relative_to(ROOT / top).parts]) for d in (ROOT / top).rglob("*")
                     if d.is_dir() and d.name != "__pycache__" and all(part.isidentifier()
                                                                       for part in d.relative_to(ROOT / top).parts)}
        expected.add(package)
    assert sorted(setuptools["packages"]) == sorted(expected)


def test_data_directories_are_found_through_the_package():
    assert Path(importlib.import_module("nanodet_mcu.templates").__file__).parent == nanodet_mcu.TEMPLATES_DIR
    assert nanodet_mcu.FIRMWARE_DIR.joinpath("common", "nd_app.c").is_file()
    assert nanodet_mcu.TEMPLATES_DIR.joinpath("engine-tflm", "engine_tflm.cc.j2").is_file()
    assert not hasattr(nanodet_mcu, "PROJECT_ROOT")


def test_licence_is_an_spdx_expression():
    project = _pyproject()["project"]
    assert project["license"] == "Apache-2.0"
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))


def _tracked_tree(dest: Path) -> Path:
    """The files a clean clone has (git ls-files), or the tree without build outputs when git is unavailable."""
    src = dest / "src"
    try:
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        files = None
    if files is None:
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", "build", ".git", "*.egg-info", "__pycache__"))
        return src
    for rel in files:
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    return src


def _run(cmd, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _build_sdist_and_wheel(tmp_path: Path) -> Path:
    """sdist from the tracked tree, then the wheel from the unpacked sdist (as pip installs an sdist); both with
    this environment's setuptools (>= 77), warnings turned into errors."""
    src = _tracked_tree(tmp_path)
    dist = tmp_path / "dist"
    backend = "from setuptools import build_meta as b; import sys; print(getattr(b, sys.argv[1])(sys.argv[2]))"
    env = dict(os.environ, PYTHONWARNINGS="error")
    sdist = dist / _run([sys.executable, "-c", backend, "build_sdist", dist], src, env).stdout.split()[-1]
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "sdist", filter="data")
    unpacked = next((tmp_path / "sdist").iterdir())
    wheel = dist / _run([sys.executable, "-c", backend, "build_wheel", dist], unpacked, env).stdout.split()[-1]
    return wheel


def _fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    """A venv with the wheel installed and the running environment's site-packages (numpy, TensorFlow...) visible
    through a .pth; the source tree is on no path (a .pth line adds a directory, not the .pth files inside it, so
    this environment's editable install of the tree is not carried over)."""
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path)
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp_path).stdout.strip())
    deps = [p for p in {sysconfig.get_paths()["purelib"], *sys.path} if p.endswith("site-packages")]
    (site / "zz_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel],
         tmp_path)
    return venv


@pytest.mark.slow
def test_wheel_works_outside_the_source_tree(tmp_path, nxp_model_path, example_image):
    require_tool("arm-none-eabi-gcc")
    require_tool(os.environ.get("NANODET_MCU_QEMU", "qemu-system-arm"))
    wheel = _build_sdist_and_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for top in DATA_PACKAGES:
        missing = [f for f in _source_files(top) if f"nanodet_mcu/{top}/{f}" not in names]
        assert not missing, f"the wheel lacks {top}/ files: {missing}"
    assert {"nanodet_mcu/boards/rt1170.toml", "nanodet_mcu/boards/mps2-an500.toml"} <= names

    venv = _fresh_venv(tmp_path, wheel)
    work = tmp_path / "user"  # the user's own directory, nowhere near the source tree
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    where = _run([venv / "bin" / "python", "-c", "import nanodet_mcu as n; print(n.__file__, n.FIRMWARE_DIR)"],
                 work, env).stdout
    assert str(venv) in where and str(ROOT) not in where

    def nd(*argv, timeout=600):
        return _run([venv / "bin" / "nanodet-mcu", *argv], work, env, timeout)

    model, image = str(nxp_model_path), str(example_image)
    nd("generate", "--board", "mps2-an500", "--engine", "aot", "--model", model, "--embed-images", image,
       "--out", "proj")
    assert nd("build", "proj").stdout.strip().endswith("proj/build/nanodet.elf")
    # From inside the project, as its README says (the model travels with it).
    proc = _run([venv / "bin" / "nanodet-mcu", "verify", "--emulate", "build/nanodet.elf", "--model",
                 nxp_model_path.name], work / "proj", env)
    assert "verify: PASS" in proc.stdout
    for option in (["--interpreter", "aot"], ["--decoder", "c"]):
        assert "bus" in nd("detect", "--model", model, image, *option).stdout
    # Both SDK layouts: the LinkServer board and the ELF name follow the SDK's board (EVKB, nanodet_cm7.elf for the
    # current RT1170 one), as the board file pairs them.
    for board, sdk, device, target, elf in (
            ("rt1170", "mcuxsdk", "MIMXRT1176xxxxx:MIMXRT1170-EVKB", "mimxrt1170_cm7", "nanodet_cm7.elf"),
            ("rt1170", "classic", "MIMXRT1176xxxxx:MIMXRT1170-EVK", "mimxrt1170_cm7", "nanodet.elf"),
            ("rt1050", "mcuxsdk", "MIMXRT1052xxxxB:EVKB-IMXRT1050", "mimxrt1050_hyperflash", "nanodet.elf")):
        out = f"{board}-{sdk}"
        nd("generate", "--board", board, "--sdk", sdk, "--model", model, "--out", out)
        assert nd("flash", out, "--probe", "linkserver", "--dry-run").stdout.strip() == \
            f"LinkServer flash {device} load {out}/build/{elf}"
        assert nd("flash", out, "--probe", "pyocd", "--dry-run").stdout.strip().endswith(
            f"flash --no-wait -t {target} {out}/build/{elf}")
