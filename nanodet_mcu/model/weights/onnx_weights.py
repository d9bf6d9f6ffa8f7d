"""Weights from the official ONNX export (BatchNorm already folded into the convs).

The export renamed most folded tensors to numbers, so layers are matched by position: the exporter traces the
PyTorch forward pass, whose Conv nodes come in the canonical order of `layout.all_layers()`.  Each match is
checked on kernel shape, groups and stride, and on the names the export kept (fpn lateral convs, gfl_cls).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nanodet_mcu.errors import NanodetError
from nanodet_mcu.model.weights import layout


def _load_model(path: Path):
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError, onnx raises assorted errors
        raise NanodetError(f"{path} is not a readable ONNX model ({type(exc).__name__})") from exc


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _array(path: Path, node, inits: dict, name: str, what: str) -> np.ndarray:
    """An initializer as an array; a tensor that is computed in the graph, or whose stored data does not fill its
    shape (a truncated or edited file), is refused on one line."""
    from onnx import numpy_helper

    if name not in inits:
        raise NanodetError(f"{path}: conv '{node.name}' has no constant {what} tensor '{name}' (it is computed in "
                           "the graph, not stored: not an export of the official model)")
    try:
        return numpy_helper.to_array(inits[name])
    except Exception as exc:  # ValueError (short raw data), TypeError, KeyError (unknown data type)...
        raise NanodetError(f"{path}: {what} tensor '{name}' of conv '{node.name}' is unreadable "
                           f"({' '.join(str(exc).split())})") from None


def read_onnx(path: str | Path) -> layout.Weights:
    """Folded weights of the kept layers, keyed by canonical layer name."""
    path = Path(path)
    model = _load_model(path)
    inits = {t.name: t for t in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    expected = layout.all_layers()
    kept = {layer.name for layer in layout.kept_layers()}
    weights: layout.Weights = {}
    for i, layer in enumerate(expected):
        if i >= len(convs):
            raise NanodetError(f"{path}: has {len(convs)} convolutions, NanoDet-m-0.5x has {len(expected)} "
                               f"(first missing: '{layer.name}')")
        node = convs[i]
        if len(node.input) < 2:
            raise NanodetError(f"{path}: conv '{node.name}' has no weight input")
        w_name = node.input[1]
        w = _array(path, node, inits, w_name, "weight")
        if tuple(w.shape) != layer.weight_shape:
            raise NanodetError(f"{path}: tensor '{w_name}' ({layer.name}.weight) has shape {list(w.shape)}, "
                               f"NanoDet-m-0.5x needs {list(layer.weight_shape)} (weights of another variant?)")
        a = _attrs(node)
        if int(a.get("group", 1)) != (layer.in_ch if layer.depthwise else 1) or \
                list(a.get("strides", [1, 1])) != [layer.stride] * 2:
            raise NanodetError(f"{path}: conv '{node.name}' ({layer.name}) has group {a.get('group', 1)} and "
                               f"strides {list(a.get('strides', [1, 1]))}, not the NanoDet-m-0.5x structure")
        if w_name.startswith(("fpn.", "head.")) and not w_name.startswith(layer.name + "."):
            raise NanodetError(f"{path}: conv '{w_name}' is where NanoDet-m-0.5x has '{layer.name}'")
        if len(node.input) > 2 and node.input[2]:
            b = _array(path, node, inits, node.input[2], "bias")
            if b.shape != (layer.out_ch,):
                raise NanodetError(f"{path}: bias '{node.input[2]}' of conv '{node.name}' has shape {list(b.shape)}, "
                                   f"{layer.name} needs [{layer.out_ch}]")
        else:
            b = np.zeros(layer.out_ch, np.float32)
        if layer.name in kept:
            weights[layer.name] = (w.astype(np.float32), b.astype(np.float32))
    return layout.check_weights(weights, str(path))
