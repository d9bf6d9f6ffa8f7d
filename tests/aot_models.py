"""Tiny single-op int8 TFLite models built with TensorFlow, for the AOT kernel tests.

Each case is (name, builder) where builder() -> (tf function, input shapes, input value ranges).  Value ranges
steer the quantiser's zero points (all-positive data gives zero point -128, all-negative +127).  Converted models
are cached on disk by a hash of this file and the TensorFlow version, so CI converts them once.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from nanodet_mcu import hostcc

RNG = np.random.default_rng(1234)


def _w(*shape, scale=0.5):
    return RNG.normal(0, scale, shape).astype(np.float32)


def _conv(in_shape, k, stride, padding, out_c=5, dilation=1, act=None, rng=(-1.0, 1.0), pad=None):
    import tensorflow as tf

    w = _w(k, k, in_shape[-1], out_c)
    # per-output-channel magnitudes spread over 100x so per-channel scales really differ
    w *= np.geomspace(0.05, 5, out_c).astype(np.float32)
    b = _w(out_c, scale=0.3)

    def f(x):
        if pad is not None:
            x = tf.pad(x, pad)
        y = tf.nn.conv2d(x, w, stride, padding, dilations=dilation) + b
        return act(y) if act else y
    return f, [in_shape], [rng]


def _dw(in_shape, k, stride, padding, mult=1, act=None, rng=(-1.0, 1.0), pad=None):
    import tensorflow as tf

    w = _w(k, k, in_shape[-1], mult)
    w *= np.geomspace(0.05, 5, in_shape[-1]).astype(np.float32)[None, None, :, None]
    b = _w(in_shape[-1] * mult, scale=0.3)

    def f(x):
        if pad is not None:
            x = tf.pad(x, pad)
        y = tf.nn.depthwise_conv2d(x, w, [1, stride, stride, 1], padding) + b
        return act(y) if act else y
    return f, [in_shape], [rng]


def _stem(padding: str):
    """NanoDet's stem: conv 3x3/2 + leaky ReLU + max pool 3x3/2 padded by 1 at the top/left, either with a PAD (as
    NXP's model) or by repeating the edge (SLICE + CONCATENATION, as ours); the AOT engine streams it by rows."""
    import tensorflow as tf

    f, shapes, ranges = _conv((1, 18, 22, 3), 3, 2, "VALID", out_c=8, pad=[[0, 0], [1, 1], [1, 1], [0, 0]],
                              act=lambda y: tf.nn.leaky_relu(y, 0.1))

    def g(x):
        y = f(x)
        if padding == "pad":
            y = tf.pad(y, [[0, 0], [1, 1], [1, 1], [0, 0]])
        else:
            y = tf.concat([y[:, :1], y], 1)
            y = tf.concat([y[:, :, :1], y], 2)
        return tf.nn.max_pool2d(y, 3, 2, "VALID")
    return g, shapes, ranges


def _shuffle(x, groups_c: int):
    """ShuffleNet's channel shuffle of two groups of groups_c channels, spelled as the converters export it."""
    import tensorflow as tf

    n, h, w, _ = x.shape
    return tf.reshape(tf.transpose(tf.reshape(x, [n, h, w, 2, groups_c]), [0, 1, 2, 4, 3]), [n, h, w, 2 * groups_c])


def _shuffle_case(kind: str):
    """A ShuffleNetV2 unit around channel shuffles: "block" (split, the second half through a conv, concat, shuffle,
    split again into two convs), "convs" (two convs' outputs shuffled: both written in place), "pool" (a pool's and a
    conv's outputs shuffled: the pool's spread in first)."""
    import tensorflow as tf

    c = 8
    w1, w2, w3 = _w(1, 1, c, c), _w(1, 1, c, c), _w(3, 3, 2 * c, c, scale=0.2)
    b1, b2 = _w(c, scale=0.3), _w(c, scale=0.3)

    def f(x):
        if kind == "block":
            a, b = tf.split(x, 2, axis=3)
            b = tf.nn.leaky_relu(tf.nn.conv2d(b, w1, 1, "VALID") + b1, 0.1)
            y = _shuffle(tf.concat([a, b], 3), c)
            a2, b2_ = tf.split(y, 2, axis=3)
            return tf.concat([tf.nn.conv2d(a2, w2, 1, "VALID") + b2, tf.nn.conv2d(b2_, w1, 1, "VALID")], 3)
        if kind == "convs":
            y = _shuffle(tf.concat([tf.nn.conv2d(x, w3, 1, "SAME"), tf.nn.relu(tf.nn.conv2d(x, w3 * 0.5, 1, "SAME"))],
                                   3), c)
            return tf.nn.conv2d(y, _w(1, 1, 2 * c, 4), 1, "VALID")
        y = _shuffle(tf.concat([tf.nn.max_pool2d(x[..., :c], 3, 1, "SAME"), tf.nn.conv2d(x, w3, 1, "SAME") + b1], 3), c)
        return tf.nn.conv2d(y, _w(1, 1, 2 * c, 6), 1, "VALID")
    return f, [(1, 6, 5, 2 * c)], [(-2.0, 2.0)]


def _nanodet_shaped():
    """Not NanoDet, but its int8 I/O shapes (one 32x32/32 conv per output, a LOGISTIC on the scores): generate
    takes it for a NanoDet model, so its AOT C must build (a 3072-tap conv has no fast path, issue 16)."""
    import tensorflow as tf

    w_scores, w_boxes = _w(32, 32, 3, 80, scale=0.05), _w(32, 32, 3, 32, scale=0.05)

    def f(x):
        return (tf.math.sigmoid(tf.nn.conv2d(x, w_scores, 32, "VALID")), tf.nn.conv2d(x, w_boxes, 32, "VALID"))
    return f, [(1, 320, 320, 3)], [(-2.0, 2.0)]


def _unary(in_shape, fn, rng=(-1.0, 1.0)):
    return fn, [in_shape], [rng]


def _cases():
    import tensorflow as tf

    leaky = lambda a: (lambda x: tf.nn.leaky_relu(x, a))  # noqa: E731
    return {
        "conv3x3_s1_same": lambda: _conv((1, 7, 9, 3), 3, 1, "SAME"),
        "conv3x3_s2_same_odd": lambda: _conv((1, 9, 11, 4), 3, 2, "SAME"),
        "conv3x3_s2_valid": lambda: _conv((1, 10, 8, 3), 3, 2, "VALID", out_c=7),
        "conv1x1_relu": lambda: _conv((1, 6, 5, 24), 1, 1, "VALID", out_c=16, act=tf.nn.relu),
        "conv5x5_dil2_relu6": lambda: _conv((1, 12, 11, 3), 5, 1, "SAME", dilation=2, act=tf.nn.relu6),
        "conv_pos_input": lambda: _conv((1, 8, 8, 3), 3, 2, "SAME", rng=(0.0, 6.0)),
        "conv_neg_input": lambda: _conv((1, 8, 8, 3), 3, 1, "SAME", rng=(-6.0, -0.5)),
        "pad_conv_s2": lambda: _conv((1, 9, 9, 3), 3, 2, "VALID", pad=[[0, 0], [2, 1], [1, 2], [0, 0]]),
        "pad_conv_asym": lambda: _conv((1, 8, 7, 4), 3, 1, "VALID", pad=[[0, 0], [0, 2], [1, 0], [0, 0]]),
        "conv_leaky": lambda: _conv((1, 8, 8, 8), 1, 1, "VALID", out_c=8, act=leaky(0.1)),
        "conv1x1_k48_odd_pixels": lambda: _conv((1, 5, 7, 48), 1, 1, "VALID", out_c=32),
        "conv3x3_k72_leaky": lambda: _conv((1, 7, 8, 8), 3, 1, "SAME", out_c=6, act=leaky(0.1)),
        "conv3x3_s2_relu6_even": lambda: _conv((1, 9, 10, 4), 3, 2, "SAME", out_c=6, act=tf.nn.relu6),
        "dw3x3_s1_same": lambda: _dw((1, 7, 9, 6), 3, 1, "SAME"),
        "dw3x3_s2_valid": lambda: _dw((1, 11, 9, 5), 3, 2, "VALID"),
        "dw3x3_mult2": lambda: _dw((1, 6, 6, 3), 3, 1, "SAME", mult=2),
        "pad_dw_s2": lambda: _dw((1, 10, 10, 8), 3, 2, "VALID", pad=[[0, 0], [1, 1], [1, 1], [0, 0]]),
        "dw_leaky_pos": lambda: _dw((1, 6, 6, 4), 3, 1, "SAME", act=leaky(0.2), rng=(0.0, 3.0)),
        "dw3x3_simd_s1_leaky": lambda: _dw((1, 7, 9, 12), 3, 1, "SAME", act=leaky(0.1)),
        "dw3x3_simd_s2_same": lambda: _dw((1, 9, 8, 16), 3, 2, "SAME", rng=(-3.0, 1.0)),
        "maxpool_same_s2": lambda: _unary((1, 9, 11, 5), lambda x: tf.nn.max_pool2d(x, 3, 2, "SAME")),
        "maxpool_valid": lambda: _unary((1, 8, 9, 3), lambda x: tf.nn.max_pool2d(x, 2, 2, "VALID")),
        "pad_maxpool": lambda: _unary((1, 8, 8, 4), lambda x: tf.nn.max_pool2d(
            tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 2, "VALID")),
        "pad_alone": lambda: _unary((1, 5, 6, 3), lambda x: tf.pad(x, [[0, 0], [2, 1], [0, 3], [1, 0]])),
        "padv2": lambda: _unary((1, 5, 6, 3), lambda x: tf.pad(x, [[0, 0], [1, 1], [2, 0], [0, 0]],
                                                                constant_values=0.7)),
        "leaky_relu": lambda: _unary((1, 4, 8, 8), leaky(0.1), rng=(-3.0, 5.0)),
        "leaky_relu_neg": lambda: _unary((1, 4, 8, 8), leaky(0.3), rng=(-6.0, 0.5)),
        "logistic": lambda: _unary((1, 4, 8, 8), tf.math.sigmoid, rng=(-8.0, 8.0)),
        "logistic_narrow": lambda: _unary((1, 4, 8, 8), tf.math.sigmoid, rng=(-1.0, 2.0)),
        "add": lambda: ((lambda a, b: a + b), [(1, 5, 7, 6), (1, 5, 7, 6)], [(-1.0, 1.0), (-4.0, 9.0)]),
        "add_pos": lambda: ((lambda a, b: a + b), [(1, 4, 4, 3), (1, 4, 4, 3)], [(0.0, 6.0), (0.0, 0.2)]),
        "concat_c": lambda: ((lambda a, b: tf.concat([a, b], 3)),
                             [(1, 4, 5, 3), (1, 4, 5, 6)], [(-1.0, 1.0), (-1.0, 1.0)]),
        "concat_h": lambda: ((lambda a, b: tf.concat([a, b], 1)), [(1, 2, 5, 3), (1, 3, 5, 3)],
                             [(-1.0, 1.0), (-1.0, 1.0)]),
        "split": lambda: _unary((1, 4, 5, 8), lambda x: [t * 1.0 for t in tf.split(x, 2, axis=3)]),
        "slice": lambda: _unary((1, 6, 7, 12), lambda x: tf.slice(x, [0, 1, 2, 3], [1, 4, -1, 5])),
        "strided_slice": lambda: _unary((1, 9, 8, 6), lambda x: x[:, 1::2, ::3, 1:5]),
        "transpose4d": lambda: _unary((1, 3, 5, 7), lambda x: tf.transpose(x, [0, 2, 3, 1])),
        "transpose5d_shuffle": lambda: _unary((1, 4, 5, 12), lambda x: tf.reshape(
            tf.transpose(tf.reshape(x, [1, 4, 5, 2, 6]), [0, 1, 2, 4, 3]), [1, 4, 5, 12])),
        "transpose5d_shuffle_words": lambda: _unary((1, 3, 4, 16), lambda x: tf.reshape(
            tf.transpose(tf.reshape(x, [1, 3, 4, 2, 8]), [0, 1, 2, 4, 3]), [1, 3, 4, 16])),
        "transpose5d_general": lambda: _unary((1, 2, 3, 4, 5), lambda x: tf.transpose(x, [0, 3, 1, 4, 2])),
        "resize_up_half_pixel": lambda: _unary((1, 5, 6, 4), lambda x: tf.compat.v1.image.resize_bilinear(
            x, [10, 12], half_pixel_centers=True)),
        "resize_up_align": lambda: _unary((1, 5, 6, 4), lambda x: tf.compat.v1.image.resize_bilinear(
            x, [9, 13], align_corners=True)),
        "resize_down": lambda: _unary((1, 10, 9, 4), lambda x: tf.compat.v1.image.resize_bilinear(x, [5, 4])),
        "resize_down_half_pixel": lambda: _unary((1, 10, 9, 4), lambda x: tf.compat.v1.image.resize_bilinear(
            x, [5, 3], half_pixel_centers=True)),
        "shuffle_block": lambda: _shuffle_case("block"),
        "shuffle_convs": lambda: _shuffle_case("convs"),
        "shuffle_pool": lambda: _shuffle_case("pool"),
        "resize_add_up_half_pixel": lambda: ((lambda a, b: a + tf.compat.v1.image.resize_bilinear(
            b, [10, 12], half_pixel_centers=True)), [(1, 10, 12, 8), (1, 5, 6, 8)], [(-1.0, 1.0), (-3.0, 2.0)]),
        "resize_add_down_first": lambda: ((lambda a, b: tf.compat.v1.image.resize_bilinear(
            a, [5, 4], half_pixel_centers=True) + b), [(1, 10, 9, 4), (1, 5, 4, 4)], [(-2.0, 2.0), (0.0, 1.0)]),
        "resize_add_align": lambda: ((lambda a, b: a + tf.compat.v1.image.resize_bilinear(
            b, [9, 7], align_corners=True)), [(1, 9, 7, 3), (1, 4, 3, 3)], [(-1.0, 1.0), (-1.0, 1.0)]),
        # weights 0, 1/2 or 1 (the fast RESIZE_QUARTER; resize_add_up_half_pixel has 1/4, 3/4): 2x, 1/2, corners
        "resize_add_up2": lambda: ((lambda a, b: a + tf.compat.v1.image.resize_bilinear(b, [10, 14])),
                                   [(1, 10, 14, 8), (1, 5, 7, 8)], [(-1.0, 1.0), (-3.0, 2.0)]),
        "resize_add_down2": lambda: ((lambda a, b: a + tf.compat.v1.image.resize_bilinear(b, [4, 5])),
                                     [(1, 4, 5, 4), (1, 8, 10, 4)], [(-1.0, 2.0), (-1.0, 1.0)]),
        # exactly half in both axes with half-pixel centres: every sample a 2x2 block's mean (the fast RESIZE_HALF)
        "resize_add_half": lambda: ((lambda a, b: a + tf.compat.v1.image.resize_bilinear(
            b, [4, 5], half_pixel_centers=True)), [(1, 4, 5, 8), (1, 8, 10, 8)], [(-1.0, 2.0), (-1.5, 1.0)]),
        "resize_add_align_half": lambda: ((lambda a, b: a + tf.compat.v1.image.resize_bilinear(
            b, [7, 5], align_corners=True)), [(1, 7, 5, 12), (1, 4, 3, 12)], [(-1.0, 1.0), (-1.0, 1.0)]),
        "stem_pad_maxpool": lambda: _stem("pad"),
        "stem_replicate_maxpool": lambda: _stem("replicate"),
        "nanodet_shaped_conv_logistic": _nanodet_shaped,
        "unsupported_avgpool": lambda: _unary((1, 4, 4, 3), lambda x: tf.nn.avg_pool2d(x, 2, 2, "VALID")),
    }



def case_names() -> list[str]:
    src = Path(__file__).read_text()
    start = src.index("    return {") + len("    return {")
    names = []
    for line in src[start:src.index("    }\n", start)].splitlines():
        line = line.strip()
        if line.startswith('"'):
            names.append(line.split('"')[1])
    return names


def _cache_dir() -> Path:
    import tensorflow as tf

    key = hashlib.sha256(Path(__file__).read_bytes() + tf.__version__.encode()).hexdigest()[:16]
    return hostcc.cache_dir().parent / "aot-test-models" / key


def build(name: str) -> Path:
    """The converted model of case `name` (cached), converted with full int8 quantisation."""
    path = _cache_dir() / f"{name}.tflite"
    if path.exists():
        return path
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    fn, shapes, ranges = _cases()[name]()
    sig = [tf.TensorSpec(s, tf.float32) for s in shapes]
    tfn = tf.function(fn, input_signature=sig)
    data_rng = np.random.default_rng(7)

    def representative():
        for _ in range(32):
            yield [data_rng.uniform(lo, hi, s).astype(np.float32) for s, (lo, hi) in zip(shapes, ranges)]

    conv = tf.lite.TFLiteConverter.from_concrete_functions([tfn.get_concrete_function()])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    data = conv.convert()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path
