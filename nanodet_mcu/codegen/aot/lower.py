"""Graph IR -> a list of kernel calls (steps) with every constant precomputed on the host.

Rewrites done here, all exact: RESHAPE becomes an alias of its input's storage; a PAD whose consumers are all convs
(or max pools) is folded into their padding instead of materialising the padded map; an edge-repeating pad
(SLICE + CONCATENATION) in front of a max pool becomes the pool's excluded padding; an element-wise int8 op
(LEAKY_RELU, LOGISTIC, QUANTIZE) that is the only consumer of a conv's output becomes a table applied in the conv's
store, together with a narrower activation range; a conv whose only reader is a max pool becomes one row-streamed
step (nd_conv_pool_s8).  Constants of the kernels' fast paths (bias with the input offset folded in, SMLAD-ordered
weights, short-form requantisation where provably exact) are computed here too.  Addresses are left symbolic
({t<index>}) for the memory planner.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from nanodet_mcu.codegen.aot import quant
from nanodet_mcu.codegen.aot.graph import Graph, Op
from nanodet_mcu.errors import NanodetError

ELEMENTWISE = ("LEAKY_RELU", "LOGISTIC", "QUANTIZE")
SCRATCH_BASE = 1_000_000  # ids of per-step scratch buffers (placed by the planner like tensors)


@dataclass
class Step:
    label: str            # op kind(s) for profiling tables
    call: str             # C statement(s); {tN} is the address of tensor N, {p} the params object
    ptype: str | None     # params struct type
    params: str | None    # C initializer of the params struct
    reads: list[int]
    writes: list[int]
    shape: tuple[int, ...] = ()
    macs: int = 0
    inplace_ok: list[tuple[int, int]] = field(default_factory=list)  # (input, output) that may share storage


@dataclass
class Program:
    steps: list[Step]
    consts: list[tuple[str, str, np.ndarray]]   # (C type, name, data)
    alias: dict[int, tuple[int, int]]           # tensor -> (root tensor, byte offset)
    sizes: dict[int, int]                       # root tensor (or scratch id) -> bytes
    inputs: list[int]
    outputs: list[int]


def _fmap(shape: tuple[int, ...], pstride: int | None = None) -> str:
    if len(shape) == 4:
        h, w, c = shape[1], shape[2], shape[3]
    else:  # any other rank: one row of pixels over the last axis
        c = shape[-1] if shape else 1
        h, w = 1, int(np.prod(shape)) // max(c, 1)
    return f"{{{h}, {w}, {c}, {pstride or c}}}"


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


class Lowering:
    def __init__(self, graph: Graph):
        self.g = graph
        self.t = graph.tensors
        self.steps: list[Step] = []
        self.consts: list[tuple[str, str, np.ndarray]] = []
        self._const_names: dict[str, str] = {}
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

    # --- constants ---------------------------------------------------------------------------------------------
    def const(self, ctype: str, data: np.ndarray, hint: str) -> str:
        data = np.ascontiguousarray(data)
        key = hashlib.sha256(ctype.encode() + data.tobytes()).hexdigest()
        if key not in self._const_names:
            name = f"nd_{hint}{len(self.consts)}"
            self._const_names[key] = name
            self.consts.append((ctype, name, data))
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

    # --- the pass ----------------------------------------------------------------------------------------------
    def run(self) -> Program:
        self._find_replicate_pads()
        for op in self.g.ops:
            if op.kind in ("PAD", "PADV2") and self._pad_foldable(op):
                pads = self._pad_amounts(op)
                self.folded_pad[op.outputs[0]] = (op.inputs[0], pads[1][0], pads[1][1], pads[2][0], pads[2][1],
                                                  self._pad_value(op))
        for op in self.g.ops:
            if op.index in self.fused_into:
                continue
            getattr(self, "_op_" + op.kind.lower())(op)
        sizes: dict[int, int] = dict(self.scratch)
        for s in self.steps:
            for ti in s.reads + s.writes:
                root = self.alias.get(ti, (ti, 0))[0]
                if root not in self.scratch:
                    sizes[root] = max(sizes.get(root, 0), self.t[root].size)
        for ti in self.g.inputs + self.g.outputs:
            root = self.alias.get(ti, (ti, 0))[0]
            sizes.setdefault(root, self.t[root].size)
        return Program(self.steps, self.consts, self.alias, sizes, list(self.g.inputs), list(self.g.outputs))

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
        if (act_min, act_max) != (-128, 127):  # the fast paths only saturate to int8: the table applies the range
            clamp = np.clip(np.arange(-128, 128), act_min, act_max)
            lut = clamp.astype(np.int8) if lut is None else lut[clamp + 128]
        bias, bias_data = "NULL", np.zeros(out_c, np.int64)
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b = self.t[op.inputs[2]]
            if b.data is None or b.data.dtype != np.int32:
                raise NanodetError(f"{op.kind} (operator {op.index}) needs a constant int32 bias")
            bias = self.const("int32_t", b.data.reshape(-1), "b")
            bias_data = b.data.reshape(-1).astype(np.int64)
        dw3x3 = depthwise and (kh, kw) == (3, 3) and out_c == x.shape[3] and \
            o["DilationHFactor"] == o["DilationWFactor"] == 1  # exactly nd_dwconv_fast_ok's conditions
        fast = self._dw_simd_fields(w.data, bias_data, -x.zp, y.zp, out_c, mult, shift) if dw3x3 else None
        if fast is None:
            fast = self._fast_conv_fields(w.data, bias_data, -x.zp, y.zp, depthwise, out_c, dw3x3, (mult, shift))
        # the fast paths read only their own weight layout: the OHWI copy would be dead flash
        fast_only = ".wx = " in fast or ".wdw = " in fast or ".wdw4 = " in fast
        weights = "NULL" if fast_only else self.const("int8_t", w.data.reshape(-1), "w")
        dm = o.get("DepthMultiplier", 1) or 1
        if depthwise:
            dm = out_c // x.shape[3]
        params = (f"{{.in = {_fmap(x.shape)}, .out = {_fmap(y.shape)}, .kh = {kh}, .kw = {kw}, "
                  f".sh = {o['StrideH']}, .sw = {o['StrideW']}, .dh = {o['DilationHFactor']}, "
                  f".dw = {o['DilationWFactor']}, .pad_t = {pad_t}, .pad_l = {pad_l}, .depth_multiplier = {dm}, "
                  f".in_offset = {-x.zp}, .out_offset = {y.zp}, .act_min = {act_min}, .act_max = {act_max}, "
                  f".weights = {weights}, .bias = {bias}, "
                  f".mult = {self.const('int32_t', mult, 'm')}, .shift = {self.const('int8_t', shift, 's')}, "
                  f".lut = {self.const('int8_t', lut, 'lut') if lut is not None else 'NULL'}}}")
        params = params[:-1] + fast + "}"
        fn = "nd_dwconv_s8" if depthwise else "nd_conv2d_s8"
        macs = int(np.prod(y.shape)) * kh * kw * (1 if depthwise else x.shape[3])
        pool = None if depthwise else self._pool_consumer(final)
        if pool is not None:
            self._conv_pool_step(op, pool, params, src, final, macs, labels, o["StrideH"], pad_t)
            return
        self.steps.append(Step("+".join([op.kind] + labels), f"{fn}(&{{p}}, {{t{src}}}, {{t{final}}});",
                               "nd_conv_params_t", params, [src], [final], tuple(y.shape), macs))

    def _conv_pool_step(self, op, pool, conv_params, src, conv_out, macs, labels, conv_sh, conv_pad_t):
        pool_params, _, pool_pad_t = self._pool_params(pool)
        self.fused_into[pool.index] = pool
        y, z, x = self.t[conv_out], self.t[pool.outputs[0]], self.t[src]
        o = pool.opts
        kh = o["FilterHeight"]
        ring = self._new_scratch(kh * y.shape[2] * y.shape[3])
        inplace = []
        if self._stream_overlap_safe(y.shape[1], conv_sh, conv_pad_t, x.shape[2] * x.shape[3],
                                     z.shape[1], o["StrideH"], pool_pad_t, kh, z.shape[2] * z.shape[3]):
            inplace = [(src, z.index)]
        self.steps.append(Step("+".join([op.kind] + labels + ["MAX_POOL_2D"]),
                               f"nd_conv_pool_s8(&{{p}}, {{t{src}}}, {{t{z.index}}}, {{t{ring}}});",
                               "nd_conv_pool_params_t", f"{{.conv = {conv_params}, .pool = {pool_params}}}",
                               [src], [z.index, ring], tuple(z.shape), macs, inplace_ok=inplace))

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

    def _fast_conv_fields(self, w: np.ndarray, bias: np.ndarray, in_offset: int, out_offset: int, depthwise: bool,
                          out_c: int, dw3x3: bool, requant: tuple[np.ndarray, np.ndarray]) -> str:
        """Constants of the fast paths: the bias with the input offset folded in and, for CONV_2D, the weights
        sign-extended into SMLAD operand order (see nd_conv_params_t.wx)."""
        k = int(np.prod(w.shape[1:]))
        k4 = -(-k // 4) * 4
        doubled = None
        if not depthwise and out_c % 4 == 0 and k4 <= 1152:
            doubled = self._doubled_requant(w.reshape(out_c, k), bias, in_offset, out_offset, *requant)
        if doubled is not None:  # weights doubled with the bias: the accumulator is 2 acc
            return self._doubled_fields(doubled) + self._wx_fields(2 * w.reshape(out_c, k).astype(np.int16), k4)
        if depthwise:
            wsum = w.reshape(-1, out_c).astype(np.int64).sum(axis=0)
        else:
            wsum = w.reshape(out_c, -1).astype(np.int64).sum(axis=1)
        eff = bias + in_offset * wsum
        eff = ((eff + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)  # int32 wrap, as the C accumulation
        fields = f", .bias_eff = {self.const('int32_t', eff, 'be')}"
        rq = self._rq_table(w, bias, depthwise, out_c, *requant)
        if rq is not None:
            fields += f", .rq = (const nd_rq_t *)(const void *){self.const('int32_t', rq, 'rq')}"
        if depthwise:
            if dw3x3:
                fields += f", .wdw = {self.const('int8_t', w.reshape(9, out_c).T.reshape(-1), 'wdw')}"
            return fields
        if out_c % 4:
            return fields
        if k4 > 1152:
            return ""
        return fields + self._wx_fields(w.reshape(out_c, k).astype(np.int16), k4)

    def _wx_fields(self, wk: np.ndarray, k4: int) -> str:
        """nd_conv_params_t.wx from (out_c, K) weights: per 4 taps (w0,w1,w2,w3) -> halfword pairs (w0,w2),(w1,w3);
        blocks of 4 output channels interleaved."""
        out_c, k = wk.shape
        wp = np.zeros((out_c, k4), np.int16)
        wp[:, :k] = wk
        g = wp.reshape(out_c // 4, 4, k4 // 4, 4)[..., [0, 2, 1, 3]]  # (block, oc in block, group, 4)
        wx = g.transpose(0, 2, 1, 3).reshape(-1)
        return f", .wx = {self.const('int16_t', wx, 'wx')}, .k4 = {k4}"

    @staticmethod
    def _doubled_requant(wk, bias, in_offset, out_offset, mult, shift):
        """(bias2, rqo) of the doubled-accumulator requantisation (see nd_conv_params_t.rqo) for weights wk
        (out_c, K), or None when its bounds do not hold: |2 acc| < 2^31 and |h| + round + |out_offset << rsh| <
        2^31, with |acc| <= |bias| + 255 * sum|w| since (x + in_offset) is within [-255, 255]."""
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
        eff = 2 * (bias + in_offset * wk.sum(axis=1))
        eff = ((eff + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)  # int32 wrap, as the C accumulation
        return eff, np.stack([mult.astype(np.int64), rnd, rsh], axis=1).astype(np.int32).reshape(-1)

    def _doubled_fields(self, doubled) -> str:
        bias2, rq = doubled
        return (f", .bias2 = {self.const('int32_t', bias2, 'b2')}, "
                f".rqo = (const nd_rq_t *)(const void *){self.const('int32_t', rq, 'rqo')}")

    def _dw_simd_fields(self, w, bias, in_offset, out_offset, out_c, mult, shift) -> str | None:
        """Constants of nd_dwconv3x3_simd_s8 (see nd_conv_params_t.wdw4), or None when its preconditions or
        its overflow bounds do not hold."""
        if out_c % 4 or out_c > 256:
            return None
        w9 = w.reshape(9, out_c).astype(np.int64)
        doubled = self._doubled_requant(w9.T, bias, in_offset, out_offset, mult, shift)
        if doubled is None:
            return None
        # per block of 4 channels and per tap: (2w0, 2w2, 2w1, 2w3), the SXTB16 lane order
        w4 = (2 * w9).reshape(9, out_c // 4, 4)[:, :, [0, 2, 1, 3]].transpose(1, 0, 2).reshape(-1)
        return f", .wdw4 = {self.const('int16_t', w4, 'w4')}" + self._doubled_fields(doubled)

    def _rq_table(self, w, bias, depthwise, out_c, mult, shift):
        """{mult, round, rsh} per channel when the short rounding form is exact for every reachable accumulator
        (see nd_rq_t), else None.  |acc| <= |bias| + 255 * sum|w| since (x + in_offset) is within [-255, 255]."""
        if np.any(shift >= 0):
            return None
        absw = np.abs(w.astype(np.int64))
        wsum = absw.reshape(-1, out_c).sum(axis=0) if depthwise else absw.reshape(out_c, -1).sum(axis=1)
        bound = np.abs(bias) + 255 * wsum
        h_bound = bound * mult.astype(np.int64) // (1 << 31) + 2
        rsh = (-shift).astype(np.int64)
        if np.any(bound >= (1 << 31)) or np.any(h_bound + (1 << (rsh - 1)) >= (1 << 31)):
            return None
        return np.stack([mult.astype(np.int64), 1 << (rsh - 1), rsh], axis=1).astype(np.int32).reshape(-1)

    def _op_conv_2d(self, op):
        self._conv(op, False)

    def _op_depthwise_conv_2d(self, op):
        self._conv(op, True)

    def _pool_params(self, op) -> tuple[str, int, int]:
        """(C initializer, source tensor, top padding) of a MAX_POOL_2D."""
        src, extra_t, extra_l, value = self._source(op.inputs[0])
        x, y = self.t[src], self.t[op.outputs[0]]
        o = op.opts
        pad_mode = 1 if op.inputs[0] in self.folded_pad else 0
        pt, pl = self._pool_same_pad(op) if o["Padding"] == 0 else (0, 0)
        act_min, act_max = quant.activation_range(o["FusedActivationFunction"], y.scale, y.zp)
        if x.zp != y.zp or x.scale != y.scale:
            raise NanodetError(f"MAX_POOL_2D (operator {op.index}) with different input and output quantisation")
        params = (f"{{.in = {_fmap(x.shape)}, .out = {_fmap(y.shape)}, .kh = {o['FilterHeight']}, "
                  f".kw = {o['FilterWidth']}, .sh = {o['StrideH']}, .sw = {o['StrideW']}, .pad_t = {pt + extra_t}, "
                  f".pad_l = {pl + extra_l}, .pad_mode = {pad_mode}, .pad_value = {value}, .act_min = {act_min}, "
                  f".act_max = {act_max}}}")
        return params, src, pt + extra_t

    def _op_max_pool_2d(self, op):
        params, src, _ = self._pool_params(op)
        y = self.t[op.outputs[0]]
        self.steps.append(Step(op.kind, f"nd_maxpool_s8(&{{p}}, {{t{src}}}, {{t{y.index}}});",
                               "nd_pool_params_t", params, [src], [y.index], tuple(y.shape)))

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

    def _new_scratch(self, size: int) -> int:
        sid = SCRATCH_BASE + len(self.scratch)
        self.scratch[sid] = size
        return sid

    def _op_pad(self, op):
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
        call = (f"nd_fill_s8({{t{y.index}}}, {self._pad_value(op)}, {y.size});\n    "
                + self._copy_call(x.index, list(x.shape), _dense_strides(x.shape), y.index, offset, ds))
        self.steps.append(Step(op.kind, call, None, None, [x.index], [y.index], tuple(y.shape)))

    _op_padv2 = _op_pad

    def _copy_call(self, src: int, dims, src_strides, dst: int, dst_offset: int, dst_strides, src_offset: int = 0):
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
        d = self.const("int32_t", np.array(dims, np.int32), "dims")
        ss = self.const("int32_t", np.array(src_strides, np.int32), "str")
        dd = self.const("int32_t", np.array(dst_strides, np.int32), "str")
        return (f"nd_copy_nd_s8({len(dims)}, {d}, {{t{src}}} + {src_offset}, {ss}, {{t{dst}}} + {dst_offset}, "
                f"{dd});")

    def _op_reshape(self, op):
        x, y = op.inputs[0], op.outputs[0]
        if self._is_output(y) and (x in self.g.inputs):
            raise NanodetError("a RESHAPE from the model input straight to an output is not supported")
        root, off = self.alias.get(x, (x, 0))
        self.alias[y] = (root, off)

    def _requant_same(self, op: Op, ins: list[int], outs: list[int]):
        for ti in ins + outs:
            if self.t[ti].zp != self.t[outs[0]].zp or self.t[ti].scale != self.t[outs[0]].scale:
                raise NanodetError(f"{op.kind} (operator {op.index}) mixes quantisations; the AOT engine (like "
                                   f"TFLM) requires identical input and output scales")

    def _op_concatenation(self, op):
        y = self.t[op.outputs[0]]
        axis = op.opts["Axis"] % len(y.shape)
        self._requant_same(op, op.inputs, op.outputs)
        if op.opts["FusedActivationFunction"] != 0:
            raise NanodetError(f"CONCATENATION (operator {op.index}) with a fused activation is not supported")
        ds = _dense_strides(y.shape)
        calls, at, reads = [], 0, []
        for ti in op.inputs:
            x = self.t[ti]
            if x.data is not None:
                name = self.const("int8_t", x.data.reshape(-1), "c")
                calls.append(self._copy_call(ti, x.shape, _dense_strides(x.shape), y.index, at * ds[axis], ds)
                             .replace(f"{{t{ti}}}", f"(const int8_t *){name}"))
            else:
                calls.append(self._copy_call(ti, x.shape, _dense_strides(x.shape), y.index, at * ds[axis], ds))
                reads.append(ti)
            at += x.shape[axis]
        self.steps.append(Step(op.kind, "\n    ".join(calls), None, None, reads, [y.index], tuple(y.shape)))

    def _op_split(self, op):
        x = self.t[op.inputs[1]]
        axis = int(self.t[op.inputs[0]].data.reshape(-1)[0]) % len(x.shape)
        self._requant_same(op, [x.index], op.outputs)
        xs = _dense_strides(x.shape)
        calls, at = [], 0
        for ti in op.outputs:
            y = self.t[ti]
            calls.append(self._copy_call(x.index, y.shape, xs, ti, 0, _dense_strides(y.shape), at * xs[axis]))
            at += y.shape[axis]
        self.steps.append(Step(op.kind, "\n    ".join(calls), None, None, [x.index], list(op.outputs),
                               tuple(x.shape)))

    def _slice(self, op, begin: list[int], dims: list[int], steps: list[int]):
        x, y = self.t[op.inputs[0]], self.t[op.outputs[0]]
        self._requant_same(op, [x.index], [y.index])
        xs = _dense_strides(x.shape)
        offset = sum(b * s for b, s in zip(begin, xs))
        call = self._copy_call(x.index, dims, [s * st for s, st in zip(xs, steps)], y.index, 0,
                               _dense_strides(dims), offset)
        self.steps.append(Step(op.kind, call, None, None, [x.index], [y.index], tuple(y.shape)))

    def _op_slice(self, op):
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

    def _op_strided_slice(self, op):
        starts, dims, strides = self._strided_window(op)
        self._slice(op, starts, dims, strides)

    def _op_transpose(self, op):
        x, y = self.t[op.inputs[0]], self.t[op.outputs[0]]
        self._requant_same(op, [x.index], [y.index])
        perm = [int(v) for v in self.t[op.inputs[1]].data.reshape(-1)]
        xs = _dense_strides(x.shape)
        call = self._copy_call(x.index, y.shape, [xs[p] for p in perm], y.index, 0, _dense_strides(y.shape))
        self.steps.append(Step(op.kind, call, None, None, [x.index], [y.index], tuple(y.shape)))

    def _op_add(self, op):
        a, b, y = self.t[op.inputs[0]], self.t[op.inputs[1]], self.t[op.outputs[0]]
        if a.shape != b.shape or a.shape != y.shape:
            raise NanodetError(f"ADD (operator {op.index}) with broadcasting ({list(a.shape)} + {list(b.shape)}) "
                               f"is not supported")
        if a.data is not None or b.data is not None:
            raise NanodetError(f"ADD (operator {op.index}) with a constant operand is not supported")
        t1, t2, m, s = quant.add_tables(a.scale, a.zp, b.scale, b.zp, y.scale)
        act_min, act_max = quant.activation_range(op.opts["FusedActivationFunction"], y.scale, y.zp)
        params = (f"{{.a = {_fmap(a.shape)}, .b = {_fmap(b.shape)}, .out = {_fmap(y.shape)}, "
                  f".t1 = {self.const('int32_t', t1, 'add')}, .t2 = {self.const('int32_t', t2, 'add')}, "
                  f".mult = {m}, .shift = {s}, .out_offset = {y.zp}, .act_min = {act_min}, .act_max = {act_max}}}")
        self.steps.append(Step(op.kind, f"nd_add_s8(&{{p}}, {{t{a.index}}}, {{t{b.index}}}, {{t{y.index}}});",
                               "nd_add_params_t", params, [a.index, b.index], [y.index], tuple(y.shape),
                               inplace_ok=[(a.index, y.index), (b.index, y.index)]))

    def _op_resize_bilinear(self, op):
        x, y = self.t[op.inputs[0]], self.t[op.outputs[0]]
        self._requant_same(op, [x.index], [y.index])
        if len(x.shape) != 4:
            raise NanodetError(f"RESIZE_BILINEAR (operator {op.index}) needs a 4-D input")
        params = (f"{{.in = {_fmap(x.shape)}, .out = {_fmap(y.shape)}, "
                  f".align_corners = {int(op.opts['AlignCorners'])}, "
                  f".half_pixel_centers = {int(op.opts['HalfPixelCenters'])}}}")
        self.steps.append(Step(op.kind, f"nd_resize_bilinear_s8(&{{p}}, {{t{x.index}}}, {{t{y.index}}});",
                               "nd_resize_params_t", params, [x.index], [y.index], tuple(y.shape)))

    def _elementwise(self, op):
        x = self.t[op.inputs[0]]
        lut = self._elementwise_lut(op)
        final, more, more_labels = self._fuse_activation(op.outputs[0])
        if more is not None:
            lut = more[lut.astype(np.int32) + 128]
        name = self.const("int8_t", lut, "lut")
        call = (f"{{ static const nd_fmap_t f = {_fmap(x.shape)}; "
                f"nd_lut_s8(&f, &f, {name}, {{t{x.index}}}, {{t{final}}}); }}")
        self.steps.append(Step("+".join([op.kind] + more_labels), call, None, None, [x.index], [final],
                               tuple(x.shape), inplace_ok=[(x.index, final)]))

    _op_leaky_relu = _elementwise
    _op_logistic = _elementwise
    _op_quantize = _elementwise


def lower(graph: Graph) -> Program:
    return Lowering(graph).run()
