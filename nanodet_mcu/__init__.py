"""nanodet-mcu: NanoDet-m-0.5x on NXP i.MX RT microcontrollers, checked from the host."""
from pathlib import Path

__version__ = "0.1.0"

# The project ships templates/ and firmware/ beside the package (editable install or source tree).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PROJECT_ROOT / "templates"
FIRMWARE_DIR = PROJECT_ROOT / "firmware"
