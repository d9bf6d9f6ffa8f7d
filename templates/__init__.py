"""Jinja templates of the generated projects, shipped inside the package as `nanodet_mcu.templates`.

The directory stays at the top of the source tree; pyproject.toml maps it into the package, and
`nanodet_mcu.TEMPLATES_DIR` finds it with importlib.resources, installed from a wheel or editable.
"""
