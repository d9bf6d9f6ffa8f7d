"""Checkpoint reader on small checkpoints written here in torch.save's zip format (torch is never installed)."""
from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nanodet_mcu.errors import NanodetError
from nanodet_mcu.model.weights import layout, load_weights
from nanodet_mcu.model.weights.checkpoint import read_checkpoint


# -- a minimal torch.save writer: pickle protocol 2 opcodes, tensors as persistent storage references ------------
class _Global:
    def __init__(self, module: str, name: str, args=()):
        self.module, self.name, self.args = module, name, args


class _TorchZipWriter:
    def __init__(self):
        self.storages: list[bytes] = []

    def _global(self, module, name) -> bytes:
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    def dump(self, obj) -> bytes:
        if obj is None:
            return b"N"
        if obj is True or obj is False:
            return b"\x88" if obj else b"\x89"
        if isinstance(obj, int) and -2**31 <= obj < 2**31:
            return b"J" + struct.pack("<i", obj)
        if isinstance(obj, int):
            raw = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
            return b"\x8a" + bytes([len(raw)]) + raw
        if isinstance(obj, float):
            return b"G" + struct.pack(">d", obj)
        if isinstance(obj, str):
            raw = obj.encode()
            return b"X" + struct.pack("<I", len(raw)) + raw
        if isinstance(obj, tuple):
            return b"(" + b"".join(self.dump(o) for o in obj) + b"t"
        if isinstance(obj, list):
            return b"]" + (b"(" + b"".join(self.dump(o) for o in obj) + b"e" if obj else b"")
        if isinstance(obj, dict):
            items = b"".join(self.dump(k) + self.dump(v) for k, v in obj.items())
            return b"}" + (b"(" + items + b"u" if obj else b"")
        if isinstance(obj, _Global):
            return self._global(obj.module, obj.name) + self.dump(tuple(obj.args)) + b"R"
        if isinstance(obj, np.ndarray):
            return self._tensor(obj)
        raise TypeError(type(obj))

    def _tensor(self, arr: np.ndarray) -> bytes:
        arr = np.ascontiguousarray(arr, np.float32)
        key = str(len(self.storages))
        self.storages.append(arr.tobytes())
        pid = (b"(" + self.dump("storage") + self._global("torch", "FloatStorage") + self.dump(key)
               + self.dump("cpu") + self.dump(int(arr.size)) + b"t" + b"Q")
        stride = tuple(int(s // arr.itemsize) for s in arr.strides)
        hooks = self._global("collections", "OrderedDict") + b")R"
        return (self._global("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + self.dump(0)
                + self.dump(tuple(arr.shape)) + self.dump(stride) + self.dump(False) + hooks + b"tR")

    def write(self, obj, path: Path, root: str = "archive") -> Path:
        body = b"\x80\x02" + self.dump(obj) + b"."
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(f"{root}/data.pkl", body)
            zf.writestr(f"{root}/byteorder", "little")
            for i, raw in enumerate(self.storages):
                zf.writestr(f"{root}/data/{i}", raw)
            zf.writestr(f"{root}/version", "3\n")
        return path

    def write_legacy(self, obj, path: Path) -> Path:
        """torch.save(..., _use_new_zipfile_serialization=False): pickles, then each storage's count and bytes."""
        def pkl(o):
            return b"\x80\x02" + self.dump(o) + b"."

        body = pkl(obj)  # first: collects the storages
        sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
        keys = [str(i) for i in range(len(self.storages))]
        parts = [pkl(0x1950A86A20F9469CFC6C), pkl(1001), pkl(sys_info), body, pkl(keys)]
        parts += [struct.pack("<q", len(raw) // 4) + raw for raw in self.storages]
        path.write_bytes(b"".join(parts))
        return path


def fake_state_dict(seed: int = 0, shapes_from=None) -> dict[str, np.ndarray]:
    """Random official-style state_dict (conv weights + BatchNorm statistics) of every layer."""
    rng = np.random.default_rng(seed)
    sd = {}
    for layer in layout.all_layers():
        sd[f"{layer.name}.weight"] = rng.normal(0, 0.3, layer.weight_shape).astype(np.float32)
        if layer.norm is None:
            sd[f"{layer.name}.bias"] = rng.normal(0, 0.1, layer.out_ch).astype(np.float32)
            continue
        n = layer.out_ch
        sd[f"{layer.norm}.weight"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
        sd[f"{layer.norm}.bias"] = rng.normal(0, 0.1, n).astype(np.float32)
        sd[f"{layer.norm}.running_mean"] = rng.normal(0, 0.1, n).astype(np.float32)
        sd[f"{layer.norm}.running_var"] = rng.uniform(0.5, 2.0, n).astype(np.float32)
    return sd


def _expected_fold(sd, layer):
    w = sd[f"{layer.name}.weight"].astype(np.float64)
    if layer.norm is None:
        return w, sd[f"{layer.name}.bias"]
    g, b, m, v = (sd[f"{layer.norm}.{p}"].astype(np.float64) for p in ("weight", "bias", "running_mean", "running_var"))
    s = g / np.sqrt(v + 1e-5)
    return w * s[:, None, None, None], b - m * s


def test_plain_state_dict_is_read_and_folded(tmp_path):
    sd = fake_state_dict()
    path = _TorchZipWriter().write(sd, tmp_path / "plain.pth")
    weights, note = read_checkpoint(path)
    assert "plain" in note
    assert set(weights) == {layer.name for layer in layout.kept_layers()}
    for layer in layout.kept_layers():
        w, b = _expected_fold(sd, layer)
        np.testing.assert_allclose(weights[layer.name][0], w, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(weights[layer.name][1], b, rtol=1e-6, atol=1e-7)
    assert layout.count_parameters(weights) == 204136


def test_lightning_checkpoint_prefers_ema_and_ignores_other_objects(tmp_path):
    model, ema = fake_state_dict(1), fake_state_dict(2)
    sd = {**{f"model.{k}": v for k, v in model.items()}, **{f"avg_model.{k}": v for k, v in ema.items()}}
    sd["model.head.gfl_reg.2.weight"] = np.zeros((32, 96, 1, 1), np.float32)  # unused by the shared head
    ckpt = {"epoch": 279, "global_step": 1000, "pytorch-lightning_version": "1.9.0", "state_dict": sd,
            "hyper_parameters": _Global("lightning.fabric.utilities.data", "AttributeDict", ()),
            "optimizer_states": [{"lr": 0.14, "momentum": 0.9}], "loops": None}
    path = _TorchZipWriter().write(ckpt, tmp_path / "nanodet.ckpt", root="nanodet")
    loaded = load_weights(path)
    assert "EMA" in loaded.source and "avg_model." in loaded.source
    layer = layout.kept_layers()[5]
    np.testing.assert_allclose(loaded.weights[layer.name][0], _expected_fold(ema, layer)[0], rtol=1e-6, atol=1e-7)


def test_legacy_format_checkpoint(tmp_path):
    sd = fake_state_dict(4)
    weights, note = read_checkpoint(_TorchZipWriter().write_legacy({"state_dict": sd}, tmp_path / "old.pth"))
    layer = layout.kept_layers()[-1]
    np.testing.assert_allclose(weights[layer.name][0], _expected_fold(sd, layer)[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(weights[layer.name][1], _expected_fold(sd, layer)[1], rtol=1e-6, atol=1e-7)


def test_lightning_checkpoint_without_ema_uses_model_weights(tmp_path):
    sd = {f"model.{k}": v for k, v in fake_state_dict(3).items()}
    path = _TorchZipWriter().write({"state_dict": sd}, tmp_path / "model.ckpt")
    assert "(model.)" in load_weights(path).source


def test_checkpoint_matches_onnx_when_bn_is_identity(tmp_path, onnx_path):
    """A checkpoint holding the ONNX export's folded weights (identity BatchNorm) reads back to the same arrays."""
    onnx_w = load_weights(onnx_path).weights
    sd = {}
    for layer in layout.all_layers():
        w, b = onnx_w.get(layer.name, (np.zeros(layer.weight_shape, np.float32), np.zeros(layer.out_ch, np.float32)))
        sd[f"{layer.name}.weight"] = w
        if layer.norm is None:
            sd[f"{layer.name}.bias"] = b
            continue
        n = layer.out_ch
        sd.update({f"{layer.norm}.weight": np.ones(n, np.float32), f"{layer.norm}.bias": b,
                   f"{layer.norm}.running_mean": np.zeros(n, np.float32),
                   f"{layer.norm}.running_var": np.full(n, 1 - 1e-5, np.float32)})
    ckpt_w = load_weights(_TorchZipWriter().write({"state_dict": sd}, tmp_path / "same.pth")).weights
    for name, (w, b) in onnx_w.items():
        np.testing.assert_allclose(ckpt_w[name][0], w, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(ckpt_w[name][1], b, rtol=1e-6, atol=1e-7)


def test_other_variant_names_first_mismatching_tensor(tmp_path):
    sd = fake_state_dict()
    sd["backbone.stage2.0.branch1.2.weight"] = np.zeros((58, 24, 1, 1), np.float32)  # 1.0x: 116 // 2
    path = _TorchZipWriter().write(sd, tmp_path / "m1.0x.pth")
    with pytest.raises(NanodetError, match=r"'backbone\.stage2\.0\.branch1\.2\.weight' has shape \[58, 24, 1, 1\]"):
        load_weights(path)


def test_missing_tensor_is_named(tmp_path):
    sd = fake_state_dict()
    del sd["fpn.lateral_convs.1.conv.bias"]
    with pytest.raises(NanodetError, match=r"'fpn\.lateral_convs\.1\.conv\.bias' missing"):
        load_weights(_TorchZipWriter().write(sd, tmp_path / "partial.pth"))


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04broken zip"])
def test_corrupt_files_raise_one_line_errors(tmp_path, content):
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(NanodetError) as exc:
        load_weights(path)
    assert "\n" not in str(exc.value)


def test_truncated_pickle_is_corrupt(tmp_path):
    path = _TorchZipWriter().write(fake_state_dict(), tmp_path / "ok.pth")
    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    entries["archive/data.pkl"] = entries["archive/data.pkl"][:100]
    with zipfile.ZipFile(path, "w") as zf:
        for n, raw in entries.items():
            zf.writestr(n, raw)
    with pytest.raises(NanodetError, match="corrupt"):
        load_weights(path)


def test_missing_file(tmp_path):
    with pytest.raises(NanodetError, match="not found"):
        load_weights(tmp_path / "nope.ckpt")


def test_unpickler_never_runs_code_from_the_file(tmp_path):
    marker = tmp_path / "pwned"
    sd = fake_state_dict()
    sd["evil"] = _Global("os", "system", (f"touch {marker}",))
    sd["evil2"] = _Global("builtins", "exec", (f"open({str(marker)!r}, 'w')",))
    load_weights(_TorchZipWriter().write(sd, tmp_path / "evil.pth"))
    assert not marker.exists()
