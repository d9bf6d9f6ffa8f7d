"""nanodet-mcu: NanoDet-m-0.5x on NXP i.MX RT microcontrollers, checked from the host."""
from importlib.resources import files
from pathlib import Path

__version__ = "0.1.0"


def _package_dir(package: str) -> Path:
    """The directory of a data package shipped with nanodet-mcu (pyproject.toml maps templates/ and firmware/ into
    the package): site-packages/nanodet_mcu/<name> when installed, the source tree's top-level one when editable."""
    root = files(package)
    if not isinstance(root, Path):  # e.g. a zipped install: the compiler and Jinja need real files
        raise ImportError(f"{package} is not installed as a directory ({root!r}); reinstall nanodet-mcu with pip")
    return root


TEMPLATES_DIR = _package_dir("nanodet_mcu.templates")
FIRMWARE_DIR = _package_dir("nanodet_mcu.firmware")
