"""Graph IR -> a program of kernel calls (steps) with every constant precomputed on the host.

Rewrites done here, all exact: RESHAPE becomes an alias of its input's storage; a PAD whose consumers are all convs
(or max pools) is folded into their padding instead of materialising the padded map; an edge-repeating pad
(SLICE + CONCATENATION) in front of a max pool becomes the pool's excluded padding; an element-wise int8 op
(LEAKY_RELU, LOGISTIC, QUANTIZE) that is the only consumer of a conv's output becomes a table applied in the conv's
store, together with a narrower activation range; a conv whose only reader is a max pool becomes one row-streamed
step (nd_conv_pool_s8); a channel shuffle (CONCATENATION of two maps, RESHAPE/TRANSPOSE/RESHAPE interleaving their
channels) disappears: the convs that produce its inputs write straight into the interleaved map (output channel
stride 2), an input that is not such a conv's output is spread in by one copy, and a SPLIT into channel halves yields
views (a pixel stride wider than the channels) for the convs that read them.

Each op is lowered by its entry in LOWERINGS (whose keys are the engine's supported op set).  Kernel params are typed
(kernels.py); where a fast kernel applies, this module proves its preconditions, computes its constants and records
both variants, so that one emitted model serves the normal and the ND_KERNELS_REFERENCE_ONLY build.  Addresses stay
symbolic (Ref: a tensor or scratch buffer plus an offset) until the memory planner has placed the buffers.
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nanodet_mcu.codegen.aot import kernels, quant
from nanodet_mcu.codegen.aot.graph import Graph, Op
from nanodet_mcu.codegen.aot.kernels import CName, Const, CStruct, FMap
from nanodet_mcu.errors import NanodetError

ELEMENTWISE = ("LEAKY_RELU", "LOGISTIC", "QUANTIZE")
SCRATCH_BASE = 1_000_000  # ids of per-step scratch buffers (placed by the planner like tensors)
NULL = CName("NULL")


@dataclass(frozen=True)
class Ref:
    """The address of a planned buffer (a tensor, through its alias root, or a step's scratch) plus a byte offset."""
    buf: int
    offset: int = 0


@dataclass(frozen=True)
class Variants:
    """Params whose fast kernel takes other constants than the reference: the emitted model holds both, the fast ones
    compiled normally and the reference ones under ND_KERNELS_REFERENCE_ONLY."""
    ref: CStruct
    fast: CStruct


@dataclass(frozen=True)
class Call:
    """One kernel call: fn(&params, *args) (fn(*args) without params)."""
    fn: str
    params: CStruct | Variants | None
    args: tuple  # Ref | Const | CName | int


@dataclass(frozen=True)
class Scratch:
    """A step's working memory in the arena: what its kernel needs in each build (the plan reserves the larger)."""
    buf: int
    ref_bytes: int
    fast_bytes: int


@dataclass
class Shuffle:
    """A channel shuffle of two maps a, b of C channels each: y[..., 2i + g] = (a, b)[g][..., i]."""
    concat: Op
    y: int
    channels: int
    direct: list[int]  # inputs whose CONV_2D writes them straight into y
    spread: list[int]  # inputs copied into y by a step


@dataclass
class Step:
    ops: list[str]        # op kinds fused into this step, in model order
    calls: list[Call]
    reads: list[int]      # tensors read
    writes: list[int]     # tensors (and the scratch buffer) written
    tensor: int           # the tensor the step produces
    shape: tuple[int, ...] = ()
    macs: int = 0
    scratch: Scratch | None = None
    inplace_ok: list[tuple[int, int]] = field(default_factory=list)  # (input, output) that may share storage

    @property
    def label(self) -> str:
        return "+".join(self.ops)


@dataclass
class Program:
    steps: list[Step]
    consts: list[Const]
    alias: dict[int, tuple[int, int]]           # tensor -> (root tensor, byte offset)
    sizes: dict[int, int]                       # root tensor (or scratch id) -> bytes
    inputs: list[int]
    outputs: list[int]
    views: dict[int, tuple[int, int]] = field(default_factory=dict)  # tensor stored in another's layout -> (pixel
    # stride, channel stride) there; its alias gives that tensor and the offset


def _dense_strides(shape) -> list[int]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return strides[::-1]


def _same_pad(in_size: int, k: int, stride: int, dil: int, out_size: int) -> int:
    eff = (k - 1) * dil + 1
    total = (out_size - 1) * stride + eff - in_size
    return max(total, 0) // 2


def _wrap32(x: np.ndarray) -> np.ndarray:
    """int64 values wrapped to int32, as the C accumulation wraps."""
    return ((x + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)


WEIGHTS_FORMATS = ("int16", "int8")  # the fast conv kernel's weights: pre-extended (fastest) or as in the model


class Lowering:
    def __init__(self, graph: Graph, weights_format: str = "int16"):
        if weights_format not in WEIGHTS_FORMATS:
            raise NanodetError(f"weights format must be one of {', '.join(WEIGHTS_FORMATS)}, not '{weights_format}'")
        self.weights_format = weights_format
        self.g = graph
        self.t = graph.tensors
        self.steps: list[Step] = []
        self.consts: list[Const] = []
        self._const_names: dict[str, Const] = {}
        self.alias: dict[int, tuple[int, int]] = {}
        self.consumers: dict[int, list[Op]] = {}
        for op in graph.ops:
            for i in op.inputs:
                if i >= 0:
                    self.consumers.setdefault(i, []).append(op)
        self.folded_pad: dict[int, tuple[int, int, int, int, int]] = {}  # padded tensor -> (src, t, b, l, r)
        self.producer: dict[int, Op] = {t: op for op in graph.ops for t in op.outputs}
        self.replicate_pad: dict[int, tuple[int, int, int]] = {}  # pool input -> (src, pad top, pad left)
        self.fused_into: dict[int, Op] = {}  # element-wise op index -> absorbed
        self.scratch: dict[int, int] = {}
        self.views: dict[int, tuple[int, int]] = {}  # tensor stored as a view -> (pixel stride, channel stride)
        self.shuffles: dict[int, Shuffle] = {}  # CONCATENATION op index -> its shuffle
        self.spread_before: dict[int, list[Shuffle]] = {}  # op index -> shuffles whose spread steps go first
        self.spread_done: set[int] = set()

    # --- constants ---------------------------------------------------------------------------------------------
    def const(self, ctype: str, data: np.ndarray, hint: str) -> Const:
        data = np.ascontiguousarray(data)
        key = hashlib.sha256(ctype.encode() + str(data.shape[1:]).encode() + data.tobytes()).hexdigest()
        if key not in self._const_names:
            c = Const(ctype, f"nd_{hint}_{len(self.consts)}", data)
            self._const_names[key] = c
            self.consts.append(c)
        return self._const_names[key]

    # --- helpers -----------------------------------------------------------------------------------------------
    def _is_output(self, ti: int) -> bool:
        return ti in self.g.outputs

    def _elementwise_lut(self, op: Op) -> np.ndarray:
        x, y = self.t[op.inputs[0]], self.t[op.outputs[0]]
        if op.kind == "LEAKY_RELU":
            return quant.leaky_relu_lut(op.opts["Alpha"], x.scale, x.zp, y.scale, y.zp)
        if op.kind == "LOGISTIC":
            if y.zp != -128 or abs(y.scale - 1 / 256) > 1e-9:
                raise NanodetError(f"LOGISTIC (operator {op.index}) needs output scale 1/256 and zero point -128")
            return quant.logistic_lut(x.scale, x.zp)
        return quant.requantize_lut(x.scale, x.zp, y.scale, y.zp)

    def _pad_amounts(self, op: Op) -> list[tuple[int, int]]:
        pads = self.t[op.inputs[1]].data
        if pads is None:
            raise NanodetError(f"{op.kind} (operator {op.index}) has non-constant paddings")
        return [(int(a), int(b)) for a, b in pads.reshape(-1, 2)]

    def _pad_value(self, op: Op) -> int:
        if op.kind == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            v = self.t[op.inputs[2]].data
            if v is None:
                raise NanodetError(f"PADV2 (operator {op.index}) has a non-constant pad value")
            return int(v.reshape(-1)[0])
        return self.t[op.outputs[0]].zp

    def _pad_foldable(self, op: Op) -> bool:
        out = op.outputs[0]
        if self._is_output(out) or len(self.t[op.inputs[0]].shape) != 4:
            return False
        pads = self._pad_amounts(op)
        if pads[0] != (0, 0) or pads[3] != (0, 0) or min(min(p) for p in pads) < 0:
            return False
        value = self._pad_value(op)
        x, y = self.t[op.inputs[0]], self.t[out]
        if x.zp != y.zp or x.scale != y.scale:
            return False
        for c in self.consumers.get(out, []):
            if c.kind in ("CONV_2D", "DEPTHWISE_CONV_2D") and c.inputs[0] == out:
                if value != y.zp:  # a folded pad must contribute (value - zp) * w = 0, as conv padding does
                    return False
            elif c.kind == "MAX_POOL_2D":
                if c.opts["Padding"] == 0 and self._pool_same_pad(c) != (0, 0):
                    return False  # SAME padding excludes, folded PAD includes: do not mix them
            else:
                return False
        return True

    def _pool_same_pad(self, op: Op) -> tuple[int, int]:
        x, y = self.t[op.inputs[0]], self.t[op.outputs[0]]
        return (_same_pad(x.shape[1], op.opts["FilterHeight"], op.opts["StrideH"], 1, y.shape[1]),
                _same_pad(x.shape[2], op.opts["FilterWidth"], op.opts["StrideW"], 1, y.shape[2]))

    def _edge_replicate(self, ti: int) -> tuple[int, int] | None:
        """(source, axis) when ti = CONCATENATION([SLICE(source, first row/column), source]) on axis 1 or 2,
        i.e. the source padded at the top/left by repeating its edge, with nothing else reading the pieces."""
        op = self.producer.get(ti)
        if op is None or op.kind != "CONCATENATION" or len(op.inputs) != 2 or self._is_output(ti):
            return None
        axis = op.opts["Axis"] % 4
        piece, src = op.inputs
        sl = self.producer.get(piece)
        if axis not in (1, 2) or sl is None or sl.kind not in ("SLICE", "STRIDED_SLICE") or sl.inputs[0] != src:
            return None
        shape = self.t[src].shape
        if sl.kind == "SLICE":
            begin = [int(v) for v in self.t[sl.inputs[1]].data.reshape(-1)]
            size = [int(v) for v in self.t[sl.inputs[2]].data.reshape(-1)]
            size = [shape[i] if v < 0 else v for i, v in enumerate(size)]
        else:
            begin, size, steps = self._strided_window(sl)
            if any(st != 1 for st, n in zip(steps, size) if n > 1):
                return None
        want = [1 if i == axis else shape[i] for i in range(4)]
        if begin != [0, 0, 0, 0] or size != want or self.t[piece].shape != tuple(want):
            return None
        if [c.index for c in self.consumers.get(piece, [])] != [op.index] or self._is_output(piece):
            return None
        return src, axis

    def _find_replicate_pads(self):
        """A max pool whose input is its source with edges repeated at the top/left equals a pool that excludes
        padding there, provided its window spans at least two rows/columns (the repeated value is then always
        in the window too).  The SLICE/CONCATENATION pieces disappear."""
        for op in self.g.ops:
            if op.kind != "MAX_POOL_2D" or op.opts["Padding"] != 1:
                continue
            ti, pads, pieces = op.inputs[0], [0, 0, 0], []
            while (r := self._edge_replicate(ti)) is not None:
                src, axis = r
                if pads[axis] or len(self.consumers.get(ti, [])) != (1 if not pieces else 2):
                    break
                cat = self.producer[ti]
                pieces += [cat, self.producer[cat.inputs[0]]]
                pads[axis] = 1
                ti = src
            if not pieces or (pads[1] and op.opts["FilterHeight"] < 2) or (pads[2] and op.opts["FilterWidth"] < 2):
                continue
            if any(self.t[p.outputs[0]].scale != self.t[ti].scale or self.t[p.outputs[0]].zp != self.t[ti].zp
                   for p in pieces):
                continue
            self.replicate_pad[op.inputs[0]] = (ti, pads[1], pads[2])
            for p in pieces:
                self.fused_into[p.index] = p
            self.consumers[ti] = [c for c in self.consumers.get(ti, []) if c not in pieces] + [op]

    def _source(self, ti: int) -> tuple[int, int, int, int]:
        """(tensor that holds the data, extra pad top, extra pad left, pad value) for a conv/pool input."""
        if ti in self.replicate_pad:
            src, pt, pl = self.replicate_pad[ti]
            return src, pt, pl, -128
        if ti in self.folded_pad:
            src, pt, _, pl, _, value = self.folded_pad[ti]
            return src, pt, pl, value
        return ti, 0, 0, self.t[ti].zp

    # --- channel views: shuffles and splits without copies -----------------------------------------------------
    def _fmap(self, ti: int, shape: tuple[int, ...] | None = None) -> FMap:
        """The FMap of tensor ti as stored (a view's strides), with `shape` (default: ti's own)."""
        return FMap.of(shape or self.t[ti].shape, *self.views.get(ti, (None, 1)))

    def _conv_writing(self, ti: int) -> Op | None:
        """The CONV_2D whose step produces ti (through the element-wise ops fused into its store)."""
        while (op := self.producer.get(ti)) is not None:
            if op.kind == "CONV_2D":
                return op
            src = op.inputs[0] if op.inputs else -1
            if op.kind not in ELEMENTWISE or self._is_output(src) or len(self.consumers.get(src, [])) != 1:
                return None
            ti = src
        return None

    def _view_ok(self, ti: int) -> bool:
        """Every reader of ti can read it as a view: convs, pools and pads folded into them, shuffle spreads."""
        if self._is_output(ti) or ti in self.g.inputs:
            return False
        for c in self.consumers.get(ti, []):
            if c.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D") and c.inputs[0] == ti:
                continue
            if c.kind in ("PAD", "PADV2") and c.outputs[0] in self.folded_pad and self._view_ok(c.outputs[0]):
                continue
            if c.index in self.shuffles and ti in self.shuffles[c.index].spread:
                continue
            return False
        return True

    def _shuffle_output(self, op: Op) -> int | None:
        """y when CONCATENATION `op` and the RESHAPE/TRANSPOSE ops that alone follow it interleave its two inputs'
        channels (checked on the index arrays of the model's own shapes), else None."""
        a, b = op.inputs if len(op.inputs) == 2 else (-1, -1)
        cat = self.t[op.outputs[0]]
        if a < 0 or len(cat.shape) != 4 or op.opts["Axis"] % 4 != 3 or self.t[a].shape != self.t[b].shape:
            return None
        if any(self.t[x].data is not None for x in (a, b)) or op.opts["FusedActivationFunction"] != 0:
            return None
        v, t = np.arange(cat.size).reshape(cat.shape), op.outputs[0]
        for _ in range(4):
            cons = self.consumers.get(t, [])
            if self._is_output(t) or len(cons) != 1 or cons[0].kind not in ("RESHAPE", "TRANSPOSE") \
                    or cons[0].inputs[0] != t:
                return None
            c = cons[0]
            if c.kind == "RESHAPE":
                v = v.reshape(self.t[c.outputs[0]].shape)
            else:
                v = v.transpose([int(p) for p in self.t[c.inputs[1]].data.reshape(-1)])
            t = c.outputs[0]
            if v.shape == cat.shape:
                break
        if v.shape != cat.shape:
            return None
        n, idx = self.t[a].shape[3], np.arange(cat.size).reshape(cat.shape)
        want = np.empty_like(idx)
        want[..., 0::2], want[..., 1::2] = idx[..., :n], idx[..., n:]
        return t if np.array_equal(v, want) else None

    def _find_channel_shuffles(self):
        for op in self.g.ops:
            if op.kind != "CONCATENATION" or (y := self._shuffle_output(op)) is None:
                continue
            quant = {(self.t[x].scale, self.t[x].zp) for x in [*op.inputs, y]}
            if len(quant) != 1:
                continue
            n = self.t[op.inputs[0]].shape[3]
            direct = [x for x in op.inputs if (c := self._conv_writing(x)) is not None and c.index < op.index
                      and self.consumers.get(x) == [op] and not self._is_output(x)]
            sh = Shuffle(op, y, n, direct, [x for x in op.inputs if x not in direct])
            self.shuffles[op.index] = sh
            t = op.outputs[0]  # the chain up to y: one buffer
            while t != y:
                c = self.consumers[t][0]
                self.fused_into[c.index] = c
                self.alias[c.outputs[0]] = (y, 0)
                t = c.outputs[0]
            self.alias[op.outputs[0]] = (y, 0)
            for g, x in enumerate(op.inputs):
                if x in direct:
                    self.alias[x] = (y, g)
                    self.views[x] = (2 * n, 2)
            if direct and sh.spread:  # spreads first: a word-wide spread may write the slots a direct conv fills
                first = min(self._conv_writing(x).index for x in direct)
                if all(self.producer.get(x) is None or self.producer[x].index < first for x in sh.spread):
                    self.spread_before.setdefault(first, []).append(sh)

    def _spread(self, sh: Shuffle, early: bool):
        """Copy the shuffle's non-direct inputs into their channel slots of y (a step)."""
        self.spread_done.add(sh.concat.index)
        n, calls = sh.channels, []
        for g, x in enumerate(sh.concat.inputs):
            if x not in sh.spread:
                continue
            src_ps = self.views.get(x, (n, 1))[0]
            pixels = self.t[x].size // n
            # the fast spread writes whole words (the odd slots too): only before a direct conv fills those; it moves
            # aligned word pairs (LDRD/STRD), so the source's channels start on a word
            fast = early and g == 0 and n % 4 == 0 and (self.views.get(x, (n, 1))[1] == 1) \
                and src_ps % 4 == 0 and self.alias.get(x, (x, 0))[1] % 4 == 0
            calls.append(Call("nd_copy_s8", kernels.Copy(2, (pixels, n), (src_ps, 1), (2 * n, 2),
                                                         kernels.COPY_SPREAD2 if fast else kernels.REF),
                              (Ref(x), Ref(sh.y, g))))
        self.steps.append(Step(["CONCATENATION", "TRANSPOSE"], calls, list(sh.spread), [sh.y], sh.y,
                               tuple(self.t[sh.y].shape)))

    # --- the pass ----------------------------------------------------------------------------------------------
    def run(self) -> Program:
        refuse_unsupported(self.g)
        self._find_replicate_pads()
        for op in self.g.ops:
            if op.kind in ("PAD", "PADV2") and self._pad_foldable(op):
                pads = self._pad_amounts(op)
                self.folded_pad[op.outputs[0]] = (op.inputs[0], pads[1][0], pads[1][1], pads[2][0], pads[2][1],
                                                  self._pad_value(op))
        self._find_channel_shuffles()
        for op in self.g.ops:
            for sh in self.spread_before.pop(op.index, []):
                self._spread(sh, early=True)
            if op.index in self.fused_into:
                continue
            LOWERINGS[op.kind](self, op)
        sizes: dict[int, int] = dict(self.scratch)
        for s in self.steps:
            for ti in s.reads + s.writes:
                root = self.alias.get(ti, (ti, 0))[0]
                if root not in self.scratch:
                    sizes[root] = max(sizes.get(root, 0), self.t[root].size)
        for ti in self.g.inputs + self.g.outputs:
            root = self.alias.get(ti, (ti, 0))[0]
            sizes.setdefault(root, self.t[root].size)
        return Program(self.steps, self.consts, self.alias, sizes, list(self.g.inputs), list(self.g.outputs),
                       dict(self.views))

    def _new_scratch(self, ref_bytes: int, fast_bytes: int) -> Scratch | None:
        size = max(ref_bytes, fast_bytes)
        if size == 0:
            return None
        sid = SCRATCH_BASE + len(self.scratch)
        self.scratch[sid] = size
        return Scratch(sid, ref_bytes, fast_bytes)

    def _fuse_activation(self, out: int) -> tuple[int, np.ndarray | None, list[str]]:
        """Absorb a chain of element-wise ops that are the sole consumers of `out`."""
        lut, labels = None, []
        while not self._is_output(out):
            cons = self.consumers.get(out, [])
            if len(cons) != 1 or cons[0].kind not in ELEMENTWISE or cons[0].inputs[0] != out:
                break
            c = cons[0]
            table = self._elementwise_lut(c)
            lut = table if lut is None else table[lut.astype(np.int32) + 128]
            self.fused_into[c.index] = c
            labels.append(c.kind)
            out = c.outputs[0]
        return out, lut, labels


    # --- CONV_2D, DEPTHWISE_CONV_2D (+ fused MAX_POOL_2D) --------------------------------------------------------
    def _conv(self, op: Op, depthwise: bool):
        src, extra_t, extra_l, _ = self._source(op.inputs[0])
        x_orig, w, y = self.t[op.inputs[0]], self.t[op.inputs[1]], self.t[op.outputs[0]]
        x = self.t[src]
        if w.data is None:
            raise NanodetError(f"{op.kind} (operator {op.index}) has non-constant weights")
        if w.zero_points is not None and np.any(w.zero_points != 0):
            raise NanodetError(f"{op.kind} (operator {op.index}) has non-zero weight zero points")
        o = op.opts
        kh, kw = w.shape[1], w.shape[2]
        pad_t = pad_l = 0
        if o["Padding"] == 0:  # SAME, against the (possibly PAD-ed) input
            pad_t = _same_pad(x_orig.shape[1], kh, o["StrideH"], o["DilationHFactor"], y.shape[1])
            pad_l = _same_pad(x_orig.shape[2], kw, o["StrideW"], o["DilationWFactor"], y.shape[2])
        pad_t += extra_t
        pad_l += extra_l
        out_c = y.shape[3]
        fscales = np.broadcast_to(w.scales, (out_c,)) if len(w.scales) == 1 else w.scales
        mult = np.zeros(out_c, np.int32)
        shift = np.zeros(out_c, np.int8)
        for c in range(out_c):
            m, s = quant.quantize_multiplier(float(np.float32(x.scale)) * float(np.float32(fscales[c])) /
                                             float(np.float32(y.scale)))
            mult[c], shift[c] = m, s
        act_min, act_max = quant.activation_range(o["FusedActivationFunction"], y.scale, y.zp)
        final, lut, labels = self._fuse_activation(op.outputs[0])
        if (act_min, act_max) != (-128, 127):  # the fast kernels only saturate to int8: the table applies the range
            clamp = np.clip(np.arange(-128, 128), act_min, act_max)
            lut = clamp.astype(np.int8) if lut is None else lut[clamp + 128]
        bias, bias_data = None, np.zeros(out_c, np.int64)
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b = self.t[op.inputs[2]]
            if b.data is None or b.data.dtype != np.int32:
                raise NanodetError(f"{op.kind} (operator {op.index}) needs a constant int32 bias")
            bias = self.const("int32_t", b.data.reshape(-1), "b")
            bias_data = b.data.reshape(-1).astype(np.int64)
        ref = kernels.Conv(
            in_=self._fmap(src), out=self._fmap(final, y.shape), kh=kh, kw=kw, sh=o["StrideH"], sw=o["StrideW"],
            dh=o["DilationHFactor"], dw=o["DilationWFactor"], pad_t=pad_t, pad_l=pad_l,
            depth_multiplier=out_c // x.shape[3] if depthwise else 1, in_offset=-x.zp, out_offset=y.zp,
            act_min=act_min, act_max=act_max, lut=self.const("int8_t", lut, "lut") if lut is not None else None,
            weights=self.const("int8_t", w.data.reshape(-1), "w"), bias=bias,
            mult=self.const("int32_t", mult, "m"), shift=self.const("int8_t", shift, "s"))
        fast = (self._fast_dwconv if depthwise else self._fast_conv)(ref, w.data, bias_data, mult, shift)
        macs = int(np.prod(y.shape)) * kh * kw * (1 if depthwise else x.shape[3])
        pool = None if depthwise else self._pool_consumer(final)
        if pool is not None:
            self._conv_pool_step(op, pool, ref, fast, src, final, macs, labels)
            return
        scratch = self._new_scratch(kernels.conv_scratch(ref), kernels.conv_scratch(fast) if fast else 0)
        fn = "nd_dwconv_s8" if depthwise else "nd_conv2d_s8"
        call = Call(fn, Variants(ref, fast) if fast else ref,
                    (Ref(src), Ref(final), Ref(scratch.buf) if scratch else NULL))
        inplace = [(src, final)] if depthwise and self._dw_overwrite_safe(ref) else []
        self.steps.append(Step([op.kind] + labels, [call], [src], [final] + ([scratch.buf] if scratch else []),
                               final, tuple(y.shape), macs, scratch, inplace_ok=inplace))

    @staticmethod
    def _dw_overwrite_safe(p: kernels.Conv) -> bool:
        """True when a depthwise conv may write its output over its input (same start): dense maps of the same
        channels, and every output pixel q (raster order) reads no input pixel before q, whose bytes the outputs
        before it have overwritten.  (Both kernels read a pixel's taps of a channel before storing that channel.)"""
        if p.depth_multiplier != 1 or p.in_ != FMap.of((1, p.in_.h, p.in_.w, p.in_.c)) or \
                p.out != FMap.of((1, p.out.h, p.out.w, p.out.c)):
            return False
        oy, ox = np.meshgrid(np.arange(p.out.h), np.arange(p.out.w), indexing="ij")
        first = np.maximum(oy * p.sh - p.pad_t, 0) * p.in_.w + np.maximum(ox * p.sw - p.pad_l, 0)
        return bool(np.all(first >= oy * p.out.w + ox))

    def _fast_conv(self, ref: kernels.Conv, w: np.ndarray, bias, mult, shift) -> kernels.Conv | None:
        """ND_KERNEL_CONV_3X2: an even number of output channels and the doubled-accumulator requantisation proven
        exact; the packed stream of nd_conv3x2_run (nd_kernels_fast.h): per block of 2 channels the bias (once per
        pixel), the doubled weights zero-padded to k4 taps as SMLAD halfword pairs, the requantisation constants."""
        out_c = ref.out.c
        if out_c % 2:
            return None
        wk = w.reshape(out_c, -1).astype(np.int64)  # OHWI: (out_c, K)
        if not kernels.conv_direct(ref, -(-wk.shape[1] // 4) * 4):
            wk = wk[:, kernels.patch_order(ref.kh, ref.kw * ref.in_.c)]  # the taps in nd_patch's order
        k = wk.shape[1]
        k4 = -(-k // 4) * 4
        table = 128 if ref.lut is not None else 0  # the requantised value indexes the table directly
        doubled = self._doubled_requant(wk, bias, ref.in_offset, ref.out_offset + table, mult, shift)
        if doubled is None:
            return None
        bias2, rq = doubled
        w8 = self.weights_format == "int8"
        wp = np.zeros((out_c, k4), np.int64)
        wp[:, :k] = wk if w8 else 2 * wk  # int8 weights: the doubling goes to the inputs
        taps = wp.reshape(out_c, k4 // 4, 4)  # (channel, group, tap in group)
        if w8:  # per group of 4 taps: a word per channel, the taps as its bytes
            words = (taps & 0xFF) @ np.array([1, 1 << 8, 1 << 16, 1 << 24], np.int64)  # (channel, group)
            words = words.reshape(out_c // 2, 2, k4 // 4).transpose(0, 2, 1).reshape(out_c // 2, k4 // 2)
        else:  # per group of 4 taps: halfword pairs (t, t+2), then (t+1, t+3), each for both channels
            lo, hi = taps[:, :, [0, 1]], taps[:, :, [2, 3]]
            words = ((lo & 0xFFFF) | ((hi & 0xFFFF) << 16)).reshape(out_c // 2, 2, k4 // 4, 2)  # (.., half)
            words = words.transpose(0, 2, 3, 1).reshape(out_c // 2, k4)  # per block: group, half, channel
        words = _wrap32(words)
        rq = rq.reshape(-1, 6).astype(np.int64)
        rq[:-1, 5] |= 1 << 31  # "another block follows" (the microkernel's loop test; shifts read the low byte)
        blocks = np.concatenate([np.tile(bias2.reshape(-1, 2), 3), words, _wrap32(rq)], axis=1)
        return dataclasses.replace(ref, kernel=kernels.CONV_3X2, weights=None, bias=None, mult=None, shift=None,
                                   wq=self.const("int32_t", blocks.reshape(-1).astype(np.int32), "wq"), k4=k4,
                                   w8=int(w8))

    def _fast_dwconv(self, ref: kernels.Conv, w: np.ndarray, bias, mult, shift) -> kernels.Conv | None:
        """ND_KERNEL_DWCONV3X3_PAIRS (stride 1) or ND_KERNEL_DWCONV3X3_SMLA: 3x3, depth multiplier 1, no
        dilation and the doubled requantisation proven exact; see their packed constants in nd_kernels_fast.h."""
        out_c = ref.out.c
        if (ref.kh, ref.kw, ref.dh, ref.dw, ref.depth_multiplier) != (3, 3, 1, 1, 1):
            return None
        if out_c % 4:
            return None
        w9 = w.reshape(9, out_c).astype(np.int64)  # 1HWC: (tap, channel)
        table = 128 if ref.lut is not None else 0  # the requantised value indexes the table directly
        doubled = self._doubled_requant(w9.T, bias, ref.in_offset, ref.out_offset + table, mult, shift)
        if doubled is None:
            return None
        bias2, rq = doubled
        if ref.sh == ref.sw and ref.sh in kernels.DW_PAIRS_STRIDES:
            t = 2 * w9.T.reshape(out_c, 3, 3)  # (channel, row, column), doubled
            w01 = (t[:, :, 0] & 0xFFFF) | ((t[:, :, 1] & 0xFFFF) << 16)
            w12 = (t[:, :, 1] & 0xFFFF) | ((t[:, :, 2] & 0xFFFF) << 16)
            words = np.stack([w01, w12], axis=2).reshape(out_c, 6)
            words = _wrap32(words)
            block = np.concatenate([words, bias2.reshape(-1, 1), rq], axis=1).astype(np.int32)
            return dataclasses.replace(ref, kernel=kernels.DWCONV3X3_PAIRS, weights=None, bias=None, mult=None,
                                       shift=None, wq=self.const("int32_t", block.reshape(-1), "wq"))
        # per block of 4 channels: bias2; per kernel row the taps 1, 2, 0, each (2w0, 2w2), (2w1, 2w3) (the SXTB16
        # lane order); the requantisation constants
        taps = (2 * w9).reshape(3, 3, out_c // 4, 4)[:, [1, 2, 0]][..., [0, 2, 1, 3]]  # (row, tap, block, lane)
        pairs = (taps[..., 0::2] & 0xFFFF) | ((taps[..., 1::2] & 0xFFFF) << 16)  # (row, tap, block, 2)
        weights = pairs.transpose(2, 0, 1, 3).reshape(out_c // 4, 18)
        weights = _wrap32(weights)
        block = np.concatenate([bias2.reshape(-1, 4), weights, rq.reshape(-1, 12)], axis=1).astype(np.int32)
        return dataclasses.replace(ref, kernel=kernels.DWCONV3X3_SMLA, weights=None, bias=None, mult=None, shift=None,
                                   wq=self.const("int32_t", block.reshape(-1), "wq"))

    @staticmethod
    def _doubled_requant(wk, bias, in_offset, out_offset, mult, shift):
        """(bias2, rqo rows) of the doubled-accumulator requantisation (see nd_rq_t) for weights wk (out_c, K), or
        None when its bounds do not hold: |2 acc| < 2^31 and |h| + round + |out_offset << rsh| < 2^31, with
        |acc| <= |bias| + 255 * sum|w| since (x + in_offset) is within [-255, 255]."""
        if np.any(shift >= 0):
            return None
        wk = wk.astype(np.int64)
        bound = np.abs(bias) + 255 * np.abs(wk).sum(axis=1)
        rsh = (-shift).astype(np.int64)
        h_bound = bound * mult.astype(np.int64) // (1 << 31) + 2
        # a channel whose every reachable h rounds to 0 (|h| < 2^(rsh-1)) outputs the offset: mult 0 and rsh 1 say
        # the same without the huge (out_offset << rsh) of a tiny-scale channel
        const = h_bound < (np.int64(1) << (rsh - 1))
        mult = np.where(const, 0, mult)
        rsh = np.where(const, 1, rsh)
        h_bound = np.where(const, 0, h_bound)
        rnd = (np.int64(1) << (rsh - 1)) + (np.int64(out_offset) << rsh)
        if np.any(2 * bound >= (1 << 31)) or np.any(h_bound + np.abs(rnd) + 1 >= (1 << 31)):
            return None
        bias2 = _wrap32(2 * (bias + in_offset * wk.sum(axis=1)))
        return bias2, np.stack([mult.astype(np.int64), rnd, rsh], axis=1).astype(np.int32)

    def _conv_pool_step(self, op, pool, ref, fast, src, conv_out, macs, labels):
        pool_params, _, pool_pad_t = self._pool_params(pool)
        self.fused_into[pool.index] = pool
        y, z, x = self.t[conv_out], self.t[pool.outputs[0]], self.t[src]
        ref_cp = kernels.ConvPool(ref, pool_params)
        fast_cp = kernels.ConvPool(fast, pool_params) if fast else None
        scratch = self._new_scratch(kernels.conv_pool_scratch(ref_cp),
                                    kernels.conv_pool_scratch(fast_cp) if fast_cp else 0)
        inplace = []
        if self._stream_overlap_safe(y.shape[1], ref.sh, ref.pad_t, x.shape[2] * x.shape[3], z.shape[1],
                                     pool_params.sh, pool_pad_t, pool_params.kh, z.shape[2] * z.shape[3]):
            inplace = [(src, z.index)]
        call = Call("nd_conv_pool_s8", Variants(ref_cp, fast_cp) if fast_cp else ref_cp,
                    (Ref(src), Ref(z.index), Ref(scratch.buf)))
        self.steps.append(Step([op.kind] + labels + ["MAX_POOL_2D"], [call], [src], [z.index, scratch.buf], z.index,
                               tuple(z.shape), macs, scratch, inplace_ok=inplace))

    @staticmethod
    def _stream_overlap_safe(conv_h, conv_sh, conv_pad_t, in_row_bytes, pool_h, pool_sh, pool_pad_t, pool_kh,
                             out_row_bytes) -> bool:
        """True when nd_conv_pool_s8 may write its output over its input (same start): every pooled row lands
        on input rows that no conv row still to be computed will read."""
        nxt = 0
        for py in range(pool_h):
            nxt = max(nxt, min(py * pool_sh - pool_pad_t + pool_kh, conv_h))
            if nxt >= conv_h:
                return True
            if (py + 1) * out_row_bytes > max(nxt * conv_sh - conv_pad_t, 0) * in_row_bytes:
                return False
        return True

    def _pool_consumer(self, t: int) -> Op | None:
        """The MAX_POOL_2D that is the only reader of conv output t (directly or through a folded PAD)."""
        if self._is_output(t):
            return None
        cons = self.consumers.get(t, [])
        if len(cons) != 1:
            return None
        c = cons[0]
        if c.kind == "MAX_POOL_2D":
            return c
        if c.kind in ("PAD", "PADV2") and c.outputs[0] in self.folded_pad and not self._is_output(c.outputs[0]):
            nxt = self.consumers.get(c.outputs[0], [])
            c = nxt[0] if len(nxt) == 1 else None
        if c is None or c.kind != "MAX_POOL_2D":
            return None
        return c

    def conv_2d(self, op):
        self._conv(op, False)

    def depthwise_conv_2d(self, op):
        self._conv(op, True)

    # --- MAX_POOL_2D ---------------------------------------------------------------------------------------------
    def _pool_params(self, op) -> tuple[kernels.Pool, int, int]:
        """(params, source tensor, top padding) of a MAX_POOL_2D."""
        src, extra_t, extra_l, value = self._source(op.inputs[0])
        x, y = self.t[src], self.t[op.outputs[0]]
        o = op.opts
        pt, pl = self._pool_same_pad(op) if o["Padding"] == 0 else (0, 0)
        act_min, act_max = quant.activation_range(o["FusedActivationFunction"], y.scale, y.zp)
        if x.zp != y.zp or x.scale != y.scale:
            raise NanodetError(f"MAX_POOL_2D (operator {op.index}) with different input and output quantisation")
        params = kernels.Pool(
            in_=self._fmap(src), out=FMap.of(y.shape), kh=o["FilterHeight"], kw=o["FilterWidth"], sh=o["StrideH"],
            sw=o["StrideW"], pad_t=pt + extra_t, pad_l=pl + extra_l,
            pad_mode=1 if op.inputs[0] in self.folded_pad else 0, pad_value=value, act_min=act_min,
            act_max=act_max, kernel=kernels.MAXPOOL_S8X4 if y.shape[3] % 4 == 0 else kernels.REF)
        return params, src, pt + extra_t

    def max_pool_2d(self, op):
        params, src, _ = self._pool_params(op)
        y = op.outputs[0]
        self.steps.append(Step([op.kind], [Call("nd_maxpool_s8", params, (Ref(src), Ref(y)))], [src], [y], y,
                               tuple(self.t[y].shape)))

    # --- data movement: PAD, RESHAPE, CONCATENATION, SPLIT, SLICE, STRIDED_SLICE, TRANSPOSE -------------------------
    def pad(self, op):
        if op.outputs[0] in self.folded_pad:
            return
        x, y = self.t[op.inputs[0]], self.t[op.outputs[0]]
        if x.zp != y.zp or x.scale != y.scale:
            raise NanodetError(f"{op.kind} (operator {op.index}) with different input and output quantisation")
        pads = self._pad_amounts(op)
        if min(min(p) for p in pads) < 0:
            raise NanodetError(f"{op.kind} (operator {op.index}) has negative paddings")
        ds = _dense_strides(y.shape)
        offset = sum(p[0] * s for p, s in zip(pads, ds))
        calls = [Call("nd_fill_s8", None, (Ref(y.index), self._pad_value(op), y.size)),
                 self._copy(op, Ref(x.index), x.shape, _dense_strides(x.shape), Ref(y.index, offset), ds)]
        self.steps.append(Step([op.kind], calls, [x.index], [y.index], y.index, tuple(y.shape)))

    def _copy(self, op: Op, src: Ref | Const, dims, src_strides, dst: Ref, dst_strides) -> Call:
        dims, src_strides, dst_strides = list(dims), list(src_strides), list(dst_strides)
        # merge axes that are contiguous in both source and destination: fewer, longer inner copies
        k = len(dims) - 1
        while k > 0:
            if src_strides[k - 1] == src_strides[k] * dims[k] and dst_strides[k - 1] == dst_strides[k] * dims[k]:
                dims[k - 1] *= dims[k]
                src_strides[k - 1], dst_strides[k - 1] = src_strides[k], dst_strides[k]
                del dims[k], src_strides[k], dst_strides[k]
            k -= 1
        if not dims:
            dims, src_strides, dst_strides = [1], [1], [1]
        if len(dims) > kernels.COPY_MAX_DIMS:
            raise NanodetError(f"{op.kind} (operator {op.index}) moves data over {len(dims)} axes; the AOT engine "
                               f"supports at most {kernels.COPY_MAX_DIMS}")
        # ND_KERNEL_COPY_INTERLEAVE2, the channel shuffle's transpose: two channel runs interleaved pixel by pixel
        interleave2 = (len(dims) >= 2 and dims[-1] == 2 and dst_strides[-2:] == [2, 1] and src_strides[-2] == 1
                       and dims[-2] % 4 == 0)
        params = kernels.Copy(len(dims), tuple(dims), tuple(src_strides), tuple(dst_strides),
                              kernels.COPY_INTERLEAVE2 if interleave2 else kernels.REF)
        return Call("nd_copy_s8", params, (src, dst))

    def reshape(self, op):
        x, y = op.inputs[0], op.outputs[0]
        root, off = self.alias.get(x, (x, 0))
        self.alias[y] = (root, off)

    def _requant_same(self, op: Op, ins: list[int], outs: list[int]):
        for ti in ins + outs:
            if self.t[ti].zp != self.t[outs[0]].zp or self.t[ti].scale != self.t[outs[0]].scale:
                raise NanodetError(f"{op.kind} (operator {op.index}) mixes quantisations; the AOT engine (like "
                                   f"TFLM) requires identical input and output scales")

    def concatenation(self, op):
        if op.index in self.shuffles:  # its inputs are (being) written into the interleaved map
            sh = self.shuffles[op.index]
            if sh.spread and op.index not in self.spread_done:
                self._spread(sh, early=False)
            return
        y = self.t[op.outputs[0]]
        axis = op.opts["Axis"] % len(y.shape)
        self._requant_same(op, op.inputs, op.outputs)
        if op.opts["FusedActivationFunction"] != 0:
            raise NanodetError(f"CONCATENATION (operator {op.index}) with a fused activation is not supported")
        ds = _dense_strides(y.shape)
        calls, at, reads = [], 0, []
        for ti in op.inputs:
            x = self.t[ti]
            src = self.const("int8_t", x.data.reshape(-1), "c") if x.data is not None else Ref(ti)
            calls.append(self._copy(op, src, x.shape, _dense_strides(x.shape), Ref(y.index, at * ds[axis]), ds))
            if x.data is None:
                reads.append(ti)
            at += x.shape[axis]
        self.steps.append(Step([op.kind], calls, reads, [y.index], y.index, tuple(y.shape)))

    def split(self, op):
        x = self.t[op.inputs[1]]
        axis = int(self.t[op.inputs[0]].data.reshape(-1)[0]) % len(x.shape)
        self._requant_same(op, [x.index], op.outputs)
        if len(x.shape) == 4 and axis == 3 and x.index not in self.views and all(map(self._view_ok, op.outputs)):
            root, off = self.alias.get(x.index, (x.index, 0))  # channel slices of x's pixels: views, no step
            at = 0
            for ti in op.outputs:
                self.alias[ti] = (root, off + at)
                self.views[ti] = (x.shape[3], 1)
                at += self.t[ti].shape[3]
            return
        xs = _dense_strides(x.shape)
        calls, at = [], 0
        for ti in op.outputs:
            y = self.t[ti]
            calls.append(self._copy(op, Ref(x.index, at * xs[axis]), y.shape, xs, Ref(ti), _dense_strides(y.shape)))
            at += y.shape[axis]
        self.steps.append(Step([op.kind], calls, [x.index], list(op.outputs), op.outputs[-1], tuple(x.shape)))

    def _slice(self, op, begin: list[int], dims: list[int], steps: list[int]):
        x, y = self.t[op.inputs[0]], self.t[op.outputs[0]]
        self._requant_same(op, [x.index], [y.index])
        xs = _dense_strides(x.shape)
        offset = sum(b * s for b, s in zip(begin, xs))
        call = self._copy(op, Ref(x.index, offset), dims, [s * st for s, st in zip(xs, steps)], Ref(y.index),
                          _dense_strides(dims))
        self.steps.append(Step([op.kind], [call], [x.index], [y.index], y.index, tuple(y.shape)))

    def slice(self, op):
        x = self.t[op.inputs[0]]
        begin = [int(v) for v in self.t[op.inputs[1]].data.reshape(-1)]
        size = [int(v) for v in self.t[op.inputs[2]].data.reshape(-1)]
        dims = [x.shape[i] - begin[i] if size[i] < 0 else size[i] for i in range(len(x.shape))]
        self._slice(op, begin, dims, [1] * len(x.shape))

    def _strided_window(self, op) -> tuple[list[int], list[int], list[int]]:
        """STRIDED_SLICE's (start, count, step) per axis, with TFLite's mask semantics."""
        x = self.t[op.inputs[0]]
        o = op.opts
        if o["EllipsisMask"] or o["NewAxisMask"]:
            raise NanodetError(f"STRIDED_SLICE (operator {op.index}) with ellipsis/new-axis masks is not supported")
        begin = [int(v) for v in self.t[op.inputs[1]].data.reshape(-1)]
        end = [int(v) for v in self.t[op.inputs[2]].data.reshape(-1)]
        strides = [int(v) for v in self.t[op.inputs[3]].data.reshape(-1)]
        starts, dims = [], []
        for i, n in enumerate(x.shape):
            st = strides[i]
            b, e = begin[i], end[i]
            if o["Offset"]:
                e = b + e
            if o["BeginMask"] >> i & 1:
                b = 0 if st > 0 else n - 1
            else:
                b = b + n if b < 0 else b
                b = min(max(b, 0), n) if st > 0 else min(max(b, -1), n - 1)
            if o["ShrinkAxisMask"] >> i & 1:
                e, st = b + 1, 1
            elif o["EndMask"] >> i & 1:
                e = n if st > 0 else -1
            else:
                e = e + n if e < 0 else e
                e = min(max(e, 0), n) if st > 0 else min(max(e, -1), n - 1)
            count = max(0, -(-(e - b) // st)) if st > 0 else max(0, -(-(b - e) // -st))
            starts.append(b)
            dims.append(count)
            strides[i] = st
        return starts, dims, strides

    def strided_slice(self, op):
        starts, dims, strides = self._strided_window(op)
        self._slice(op, starts, dims, strides)

    def transpose(self, op):
        x, y = self.t[op.inputs[0]], self.t[op.outputs[0]]
        self._requant_same(op, [x.index], [y.index])
        perm = [int(v) for v in self.t[op.inputs[1]].data.reshape(-1)]
        xs = _dense_strides(x.shape)
        call = self._copy(op, Ref(x.index), y.shape, [xs[p] for p in perm], Ref(y.index), _dense_strides(y.shape))
        self.steps.append(Step([op.kind], [call], [x.index], [y.index], y.index, tuple(y.shape)))

    # --- ADD, RESIZE_BILINEAR, element-wise tables ---------------------------------------------------------------
    def add(self, op):
        a, b, y = self.t[op.inputs[0]], self.t[op.inputs[1]], self.t[op.outputs[0]]
        if a.shape != b.shape or a.shape != y.shape:
            raise NanodetError(f"ADD (operator {op.index}) with broadcasting ({list(a.shape)} + {list(b.shape)}) "
                               f"is not supported")
        if a.data is not None or b.data is not None:
            raise NanodetError(f"ADD (operator {op.index}) with a constant operand is not supported")
        resize = self.fused_into.get(self.producer[a.index].index) if a.index in self.producer else None
        if resize is not None and resize.kind == "RESIZE_BILINEAR":
            a, b = b, a  # the resized operand goes second: the sum of the two table terms is symmetric
        t1, t2, m, s = quant.add_tables(a.scale, a.zp, b.scale, b.zp, y.scale)
        act_min, act_max = quant.activation_range(op.opts["FusedActivationFunction"], y.scale, y.zp)
        ref = kernels.Add(FMap.of(a.shape), FMap.of(b.shape), FMap.of(y.shape), self.const("int32_t", t1, "add"),
                          self.const("int32_t", t2, "add"), m, s, y.zp, act_min, act_max)
        # ND_KERNEL_ADD_SMMULR: dense maps (always, here), a right shift in [1, 22], which keeps the folded rounding
        # term far from overflow, and doubled table terms whose sum stays within int32
        fast = None
        if -22 <= s <= -1 and int(np.abs(t1).max()) + int(np.abs(t2).max()) < (1 << 30):
            fast = dataclasses.replace(ref, kernel=kernels.ADD_SMMULR, t1=self.const("int32_t", 2 * t1, "add2"),
                                       t2=self.const("int32_t", 2 * t2, "add2"))
        resize = self.fused_into.get(self.producer[b.index].index) if b.index in self.producer else None
        if resize is not None and resize.kind == "RESIZE_BILINEAR":
            x, rp = resize.inputs[0], self._resize_params(resize)
            params = kernels.ResizeAdd(ref, rp)
            fast_params = None
            if fast and kernels.resize_half(rp):  # ADD's term by the 2x2 block's sum (kernels.resize_half_sample)
                half_t2 = np.array([2 * int(t2[kernels.resize_half_sample(s) + 128]) for s in range(-512, 509)])
                fast_params = kernels.ResizeAdd(fast, dataclasses.replace(rp, kernel=kernels.RESIZE_HALF),
                                                self.const("int32_t", half_t2.astype(np.int32), "half"))
            elif fast:  # inside the fast ADD, ND_KERNEL_RESIZE_QUARTER where every weight is a multiple of 1/4
                q = dataclasses.replace(rp, kernel=kernels.RESIZE_QUARTER) if kernels.resize_quarter(rp) else rp
                fast_params = kernels.ResizeAdd(fast, q)
            scratch = self._new_scratch(0, kernels.resize_add_scratch(fast_params) if fast else 0)
            call = Call("nd_resize_add_s8", Variants(params, fast_params) if fast else params,
                        (Ref(a.index), Ref(x), Ref(y.index), Ref(scratch.buf) if scratch else NULL))
            self.steps.append(Step([resize.kind, op.kind], [call], [a.index, x],
                                   [y.index] + ([scratch.buf] if scratch else []), y.index, tuple(y.shape),
                                   scratch=scratch, inplace_ok=[(a.index, y.index)]))
            return
        call = Call("nd_add_s8", Variants(ref, fast) if fast else ref, (Ref(a.index), Ref(b.index), Ref(y.index)))
        self.steps.append(Step([op.kind], [call], [a.index, b.index], [y.index], y.index, tuple(y.shape),
                               inplace_ok=[(a.index, y.index), (b.index, y.index)]))

    def _resize_params(self, op) -> kernels.Resize:
        x, y = self.t[op.inputs[0]], self.t[op.outputs[0]]
        self._requant_same(op, [x.index], [y.index])
        if len(x.shape) != 4:
            raise NanodetError(f"RESIZE_BILINEAR (operator {op.index}) needs a 4-D input")
        return kernels.Resize(FMap.of(x.shape), FMap.of(y.shape), int(op.opts["AlignCorners"]),
                              int(op.opts["HalfPixelCenters"]))

    def resize_bilinear(self, op):
        y = op.outputs[0]
        cons = self.consumers.get(y, [])
        if not self._is_output(y) and len(cons) == 1 and cons[0].kind == "ADD" and cons[0].inputs.count(y) == 1:
            self._resize_params(op)  # checked now; nd_resize_add_s8 computes it inside the ADD
            self.fused_into[op.index] = op
            return
        params = self._resize_params(op)
        self.steps.append(Step([op.kind], [Call("nd_resize_bilinear_s8", params, (Ref(op.inputs[0]), Ref(y)))],
                               [op.inputs[0]], [y], y, tuple(self.t[y].shape)))

    def elementwise(self, op):
        x = self.t[op.inputs[0]]
        lut = self._elementwise_lut(op)
        final, more, more_labels = self._fuse_activation(op.outputs[0])
        if more is not None:
            lut = more[lut.astype(np.int32) + 128]
        params = kernels.Lut(FMap.of(x.shape), FMap.of(x.shape), self.const("int8_t", lut, "lut"))
        self.steps.append(Step([op.kind] + more_labels, [Call("nd_lut_s8", params, (Ref(x.index), Ref(final)))],
                               [x.index], [final], final, tuple(x.shape), inplace_ok=[(x.index, final)]))


# op kind -> its lowering: the AOT engine's supported op set (front-end validation and error messages read it here)
LOWERINGS: dict[str, Callable[[Lowering, Op], None]] = {
    "CONV_2D": Lowering.conv_2d,
    "DEPTHWISE_CONV_2D": Lowering.depthwise_conv_2d,
    "MAX_POOL_2D": Lowering.max_pool_2d,
    "PAD": Lowering.pad,
    "PADV2": Lowering.pad,
    "RESHAPE": Lowering.reshape,
    "CONCATENATION": Lowering.concatenation,
    "SPLIT": Lowering.split,
    "SLICE": Lowering.slice,
    "STRIDED_SLICE": Lowering.strided_slice,
    "TRANSPOSE": Lowering.transpose,
    "ADD": Lowering.add,
    "RESIZE_BILINEAR": Lowering.resize_bilinear,
    "LEAKY_RELU": Lowering.elementwise,
    "LOGISTIC": Lowering.elementwise,
    "QUANTIZE": Lowering.elementwise,
}
SUPPORTED_OPS = tuple(LOWERINGS)


def refuse_unsupported(graph: Graph) -> None:
    """NanodetError naming the first op that LOWERINGS (the supported op set) has no entry for."""
    first = next((op for op in graph.ops if op.kind not in LOWERINGS), None)
    if first is not None:
        raise NanodetError(f"the AOT engine does not support op {first.kind} (operator {first.index}); "
                           f"supported: {', '.join(SUPPORTED_OPS)}")


def lower(graph: Graph, weights_format: str = "int16") -> Program:
    return Lowering(graph, weights_format).run()
