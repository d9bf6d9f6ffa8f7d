"""Official PyTorch checkpoints (.ckpt / .pth) read without PyTorch.

A torch.save file (>= 1.6) is a zip: `<root>/data.pkl` (a pickle whose tensors refer to storages by persistent
id) and `<root>/data/<key>` (each storage's raw little-endian bytes); older files are a run of pickles followed
by the raw storages (`_load_legacy`).  Pickles are read by a restricted unpickler: tensors and storages are
rebuilt as numpy arrays, a few harmless containers are allowed, and every other global (optimizer classes, config
objects, Lightning callbacks...) becomes an inert placeholder, so no code from the file ever runs.  BatchNorm is
folded into the convs at load (eps 1e-5).
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanodet_mcu.errors import NanodetError
from nanodet_mcu.model.weights import layout

# torch storage class name -> numpy dtype of its elements
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16,  # widened to float32 below
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _Placeholder:
    """Stands for any class the checkpoint names that we do not need: accepts and ignores everything."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __call__(self, *args, **kwargs):
        return _Placeholder()

    # containers pickled with SETITEMS / APPENDS (e.g. Lightning's AttributeDict) land here too
    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


def _placeholder_class(module: str, name: str):
    return type(name, (_Placeholder,), {"__module__": f"placeholder.{module}"})


@dataclass(frozen=True)
class _StorageRef:
    dtype: type
    key: str


class _Pending:
    """A storage whose bytes are not read yet (first pass over a legacy file)."""


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    if isinstance(storage, _Pending):
        return None
    arr = storage
    if not isinstance(arr, np.ndarray):
        raise pickle.UnpicklingError("tensor without a storage")
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if not size:
        return arr[offset:offset + 1].reshape(()).copy()
    needed = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if all(size) else offset
    if needed > arr.size:
        raise pickle.UnpicklingError("tensor extends past its storage")
    view = np.lib.stride_tricks.as_strided(arr[offset:], shape=size,
                                           strides=tuple(s * arr.itemsize for s in stride))
    return np.array(view)  # own the memory, contiguous


def _rebuild_parameter(data, *_ignored):
    return data


class _Unpickler(pickle.Unpickler):
    SAFE = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    }

    def __init__(self, file, load_storage):
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module, name):
        if (module, name) in self.SAFE:
            return self.SAFE[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageRef(STORAGE_DTYPES[name], name)
        if module == "torch" and name == "UntypedStorage":
            return _StorageRef(np.uint8, name)
        return _placeholder_class(module, name)

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata (legacy files only)])
        if not isinstance(pid, tuple) or len(pid) < 3 or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.60}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageRef):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r:.60}")
        storage = self._load_storage(key, storage_type)
        view = pid[5] if len(pid) > 5 else None
        if view is not None and isinstance(storage, np.ndarray):  # (view key, element offset, element count)
            storage = storage[int(view[1]):int(view[1]) + int(view[2])]
        return storage


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of a pre-1.6 (non-zip) torch.save file


def _decode_storage(raw: bytes, ref: _StorageRef, byteorder: str = "little") -> np.ndarray:
    dt = np.dtype(ref.dtype).newbyteorder("<" if byteorder == "little" else ">")
    arr = np.frombuffer(raw, dtype=dt)
    if ref.key == "BFloat16Storage":
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.astype(arr.dtype.newbyteorder("="))


def _load_zip(zf: zipfile.ZipFile, path: Path) -> object:
    names = zf.namelist()
    pkl = next((n for n in names if n.endswith("data.pkl")), None)
    if pkl is None:
        raise NanodetError(f"{path}: zip archive without data.pkl (not a PyTorch checkpoint)")
    root = pkl[: -len("data.pkl")]
    byteorder = "little"
    if f"{root}byteorder" in names:
        byteorder = zf.read(f"{root}byteorder").decode().strip() or "little"
    cache: dict[str, np.ndarray] = {}

    def load_storage(key: str, ref: _StorageRef) -> np.ndarray:
        if key not in cache:
            cache[key] = _decode_storage(zf.read(f"{root}data/{key}"), ref, byteorder)
        return cache[key]

    return _Unpickler(io.BytesIO(zf.read(pkl)), load_storage).load()


def _load_legacy(f) -> object:
    """Pre-1.6 layout: magic, protocol, sys_info, the object, its storage keys, then each storage as
    (int64 element count, raw bytes) in key order.  Storages come after the object, so it is read twice."""
    for _ in range(3):  # magic number, protocol version, sys_info: plain data
        _Unpickler(f, None).load()
    obj_start = f.tell()
    refs: dict[str, _StorageRef] = {}
    _Unpickler(f, lambda key, ref: refs.setdefault(key, ref) and _Pending()).load()
    keys = [str(k) for k in _Unpickler(f, None).load()]
    storages = {}
    for key in keys:
        ref = refs.get(key, _StorageRef(np.uint8, "ByteStorage"))
        count = struct.unpack("<q", f.read(8))[0]
        nbytes = count * np.dtype(ref.dtype).itemsize
        raw = f.read(nbytes)
        if count < 0 or len(raw) != nbytes:
            raise EOFError(f"storage {key} is truncated")
        storages[key] = _decode_storage(raw, ref)
    f.seek(obj_start)
    return _Unpickler(f, lambda key, ref: storages[key]).load()


def load_checkpoint(path: str | Path) -> object:
    """The unpickled checkpoint object (torch.save zip or legacy format), tensors as numpy arrays."""
    path = Path(path)
    if not path.is_file():
        raise NanodetError(f"weights file not found: {path}")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                return _load_zip(zf, path)
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            if head[:1] != b"\x80" or _Unpickler(f, None).load() != LEGACY_MAGIC:
                raise NanodetError(f"{path} is neither a PyTorch checkpoint (torch.save) nor an ONNX model")
            f.seek(0)
            return _load_legacy(f)
    except NanodetError:
        raise
    except (zipfile.BadZipFile, KeyError, pickle.UnpicklingError, EOFError, ValueError, TypeError,
            AttributeError, IndexError, OSError, struct.error) as exc:
        raise NanodetError(f"{path}: corrupt PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc


def state_dict_of(obj: object, source: str) -> tuple[dict[str, np.ndarray], str, str]:
    """(name -> array of the model without prefix (EMA weights when present), the prefix, a note on which)."""
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict):
        raise NanodetError(f"{source}: no state_dict in the checkpoint")
    arrays = {str(k): v for k, v in sd.items() if isinstance(v, np.ndarray)}
    for prefix, note in (("avg_model.", "EMA weights (avg_model.)"), ("model.", "model weights (model.)"),
                         ("module.", "model weights (module.)")):
        picked = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        if picked:
            return picked, prefix, note
    return arrays, "", "model weights (plain state_dict)"


def fold_state_dict(sd: dict[str, np.ndarray], source: str, prefix: str = "") -> layout.Weights:
    """Kept layers' folded weights; NanodetError names the first tensor that is missing or has another shape."""
    def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in sd:
            raise NanodetError(f"{source}: tensor '{prefix}{name}' missing (not a NanoDet-m-0.5x checkpoint)")
        arr = sd[name]
        if tuple(arr.shape) != shape:
            raise NanodetError(f"{source}: tensor '{prefix}{name}' has shape {list(arr.shape)}, NanoDet-m-0.5x needs "
                               f"{list(shape)} (weights of another variant?)")
        return arr.astype(np.float32)

    weights: layout.Weights = {}
    for layer in layout.kept_layers():
        w = get(f"{layer.name}.weight", layer.weight_shape)
        n = (layer.out_ch,)
        if layer.norm is None:
            weights[layer.name] = (w, get(f"{layer.name}.bias", n))
            continue
        bias = get(f"{layer.name}.bias", n) if f"{layer.name}.bias" in sd else None
        bn = [get(f"{layer.norm}.{p}", n) for p in ("weight", "bias", "running_mean", "running_var")]
        weights[layer.name] = layout.fold_batchnorm(w, bias, *bn)
    return layout.check_weights(weights, source)


def read_checkpoint(path: str | Path) -> tuple[layout.Weights, str]:
    """(folded weights of the kept layers, note on which weights were used)."""
    sd, prefix, note = state_dict_of(load_checkpoint(path), str(path))
    return fold_state_dict(sd, str(path), prefix), note
