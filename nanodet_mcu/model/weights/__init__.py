"""Official NanoDet-m-0.5x weights (PyTorch checkpoint or ONNX export) -> BN-folded arrays by canonical layer name."""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from nanodet_mcu.errors import NanodetError
from nanodet_mcu.model.weights import layout


@dataclass
class LoadedWeights:
    weights: layout.Weights  # layer name -> (weight OIHW float32, bias float32), kept layers only
    source: str  # human-readable: which file and which weights in it

    @property
    def parameters(self) -> int:
        return layout.count_parameters(self.weights)


def load_weights(path: str | Path) -> LoadedWeights:
    """Read .onnx or .ckpt/.pth/.pt; NanodetError (one line) for a missing, corrupt or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise NanodetError(f"weights file not found: {path}")
    if path.suffix.lower() == ".onnx" or (path.suffix.lower() not in (".ckpt", ".pth", ".pt")
                                          and not zipfile.is_zipfile(path)):
        from nanodet_mcu.model.weights.onnx_weights import read_onnx

        return LoadedWeights(read_onnx(path), f"{path.name} (ONNX export, BatchNorm pre-folded)")
    from nanodet_mcu.model.weights.checkpoint import read_checkpoint

    weights, note = read_checkpoint(path)
    return LoadedWeights(weights, f"{path.name} ({note}, BatchNorm folded)")
