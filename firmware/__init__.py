"""Firmware C sources (portable core in common/, one directory per board layer), shipped inside the package as
`nanodet_mcu.firmware`.

The directory stays at the top of the source tree; pyproject.toml maps it into the package, and
`nanodet_mcu.FIRMWARE_DIR` finds it with importlib.resources, installed from a wheel or editable.
"""
