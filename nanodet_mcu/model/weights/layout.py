"""Canonical layer list of NanoDet-m-0.5x, shared by both weight readers and the TensorFlow graph.

A layer is named after its PyTorch module in the official code (e.g. `backbone.stage2.0.branch2.3`), so the
checkpoint reader finds its tensors directly and the ONNX reader (whose folded tensors have numeric names) can
be checked against the few names the export kept.  Every layer is stored BN-folded: weight OIHW (depthwise:
C x 1 x kh x kw) float32 and bias (out,) float32.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nanodet_mcu import spec

STAGE_CHANNELS = (24, 48, 96, 192)  # conv1, stage2, stage3, stage4 outputs (ShuffleNetV2 0.5x)
STAGE_REPEATS = (4, 8, 4)
FPN_CHANNELS = 96
HEAD_CONVS = 2  # stacked depthwise-separable modules per head
NUM_LEVELS = 3  # strides 8, 16, 32 in the checkpoint; only the last is converted
KEPT_LEVEL = 2  # stride 32
BN_EPS = 1e-5


@dataclass(frozen=True)
class Layer:
    name: str
    in_ch: int
    out_ch: int
    kernel: int
    stride: int
    depthwise: bool
    norm: str | None  # BatchNorm module name in the checkpoint, None when the conv has its own bias

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_ch, 1 if self.depthwise else self.in_ch, self.kernel, self.kernel)


def _conv(name, cin, cout, k=1, stride=1, dw=False, norm_suffix=None, norm=True):
    """Conv in an nn.Sequential: its BatchNorm is the next index (or an explicit module name)."""
    if not norm:
        bn = None
    elif norm_suffix is not None:
        bn = norm_suffix
    else:
        prefix, idx = name.rsplit(".", 1)
        bn = f"{prefix}.{int(idx) + 1}"
    return Layer(name, cin, cout, k, stride, dw, bn)


def _backbone() -> list[Layer]:
    layers = [_conv("backbone.conv1.0", 3, STAGE_CHANNELS[0], 3, 2)]
    cin = STAGE_CHANNELS[0]
    for s, (repeats, cout) in enumerate(zip(STAGE_REPEATS, STAGE_CHANNELS[1:]), start=2):
        half = cout // 2
        for b in range(repeats):
            p = f"backbone.stage{s}.{b}"
            if b == 0:  # stride-2 unit: both branches see the whole input
                layers += [_conv(f"{p}.branch1.0", cin, cin, 3, 2, dw=True),
                           _conv(f"{p}.branch1.2", cin, half)]
                first_in = cin
            else:
                first_in = half
            layers += [_conv(f"{p}.branch2.0", first_in, half),
                       _conv(f"{p}.branch2.3", half, half, 3, 2 if b == 0 else 1, dw=True),
                       _conv(f"{p}.branch2.5", half, half)]
        cin = cout
    return layers


def _head(level: int) -> list[Layer]:
    layers = []
    for j in range(HEAD_CONVS):
        p = f"head.cls_convs.{level}.{j}"
        layers += [_conv(f"{p}.depthwise", FPN_CHANNELS, FPN_CHANNELS, 3, 1, dw=True, norm_suffix=f"{p}.dwnorm"),
                   _conv(f"{p}.pointwise", FPN_CHANNELS, FPN_CHANNELS, norm_suffix=f"{p}.pwnorm")]
    layers.append(_conv(f"head.gfl_cls.{level}", FPN_CHANNELS, spec.NUM_CLASSES + spec.BOX_CHANNELS, norm=False))
    return layers


def all_layers() -> list[Layer]:
    """Every conv of the official model (all three head levels), in PyTorch forward order."""
    laterals = [_conv(f"fpn.lateral_convs.{i}.conv", c, FPN_CHANNELS, norm=False)
                for i, c in enumerate(STAGE_CHANNELS[1:])]
    heads = [layer for level in range(NUM_LEVELS) for layer in _head(level)]
    return _backbone() + laterals + heads


def kept_layers() -> list[Layer]:
    """The convs the stride-32 model uses (the stride-8/16 heads are dropped)."""
    drop = tuple(f"head.{kind}.{lv}." for lv in range(NUM_LEVELS) if lv != KEPT_LEVEL
                 for kind in ("cls_convs", "gfl_cls"))
    return [layer for layer in all_layers() if not (layer.name + ".").startswith(drop)]


Weights = dict  # layer name -> (weight float32 OIHW, bias float32)


def fold_batchnorm(weight: np.ndarray, bias: np.ndarray | None, gamma: np.ndarray, beta: np.ndarray,
                   mean: np.ndarray, var: np.ndarray, eps: float = BN_EPS) -> tuple[np.ndarray, np.ndarray]:
    """conv then BatchNorm (inference) -> one conv: scale each output channel, shift the bias."""
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    b = np.zeros(len(scale)) if bias is None else bias.astype(np.float64)
    w = weight.astype(np.float64) * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    return w.astype(np.float32), ((b - mean) * scale + beta).astype(np.float32)


def count_parameters(weights: Weights, layers: list[Layer] | None = None) -> int:
    names = [layer.name for layer in (layers or kept_layers())]
    return int(sum(weights[n][0].size + weights[n][1].size for n in names))


def check_weights(weights: Weights, source: str, layers: list[Layer] | None = None) -> Weights:
    """The kept layers' tensors, or NanodetError naming the first tensor missing or of another shape."""
    from nanodet_mcu.errors import NanodetError

    out = {}
    for layer in layers or kept_layers():
        if layer.name not in weights:
            raise NanodetError(f"{source}: no weights for '{layer.name}' (not a NanoDet-m-0.5x model)")
        w, b = weights[layer.name]
        for what, arr, want in (("weight", w, layer.weight_shape), ("bias", b, (layer.out_ch,))):
            if tuple(arr.shape) != want:
                raise NanodetError(f"{source}: '{layer.name}.{what}' has shape {list(arr.shape)}, NanoDet-m-0.5x "
                                   f"needs {list(want)} (weights of another variant?)")
        out[layer.name] = (np.ascontiguousarray(w, np.float32), np.ascontiguousarray(b, np.float32))
    return out
