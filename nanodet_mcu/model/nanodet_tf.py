"""NanoDet-m-0.5x (stride-32 head only) as a TensorFlow graph: NHWC, BN-folded weights as constants.

Built from raw tf ops in a `tf.Module` (TF 2.21's Keras 3 refuses raw ops on Keras tensors).  PyTorch semantics are
reproduced exactly: stride-2 convs pad (1, 1) explicitly then run VALID (TF's SAME would pad (0, 1)); the max pool
pads with -inf semantics (edge replication: the max of a window never changes when one of its own values is
repeated); bilinear resizes use half-pixel centres (PyTorch align_corners=False).

Outputs: scores 1x10x10x80 (after sigmoid) and boxes 1x10x10x32 (raw bin logits), in that order.
"""
from __future__ import annotations

import numpy as np

from nanodet_mcu import spec
from nanodet_mcu.model.weights import layout

LEAKY_SLOPE = 0.1


def _tf():
    import tensorflow as tf

    return tf


class NanodetStride32:
    """Callable graph builder over folded weights; `module()` wraps it in a tf.Module with a tf.function."""

    def __init__(self, weights: layout.Weights, split_head: bool = False):
        tf = _tf()
        self.layers = {layer.name: layer for layer in layout.kept_layers()}
        self.split_head = split_head
        self._w = {}
        for name, layer in self.layers.items():
            w, b = weights[name]
            # depthwise C,1,kh,kw -> kh,kw,C,1; others O,I,kh,kw -> kh,kw,I,O
            k = np.transpose(w, (2, 3, 0, 1) if layer.depthwise else (2, 3, 1, 0))
            self._w[name] = (tf.constant(np.ascontiguousarray(k)), tf.constant(b))

    # -- building blocks ---------------------------------------------------------------------------------------
    def conv(self, x, name: str, act: bool):
        tf = _tf()
        layer = self.layers[name]
        k, b = self._w[name]
        pad = layer.kernel // 2
        if layer.stride == 1 or pad == 0:
            padding = "SAME" if pad else "VALID"  # stride 1, odd kernel: SAME pads pad on every side, as PyTorch
        else:
            x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
            padding = "VALID"
        strides = [1, layer.stride, layer.stride, 1]
        if layer.depthwise:
            y = tf.nn.depthwise_conv2d(x, k, strides=strides, padding=padding)
        else:
            y = tf.nn.conv2d(x, k, strides=strides, padding=padding)
        y = tf.nn.bias_add(y, b)
        return tf.nn.leaky_relu(y, alpha=LEAKY_SLOPE) if act else y

    @staticmethod
    def max_pool(x):
        """3x3 stride-2 pad-1 max pool: replicate the first row/column (same max as -inf padding), then VALID."""
        tf = _tf()
        x = tf.concat([tf.slice(x, [0, 0, 0, 0], [-1, 1, -1, -1]), x], axis=1)
        x = tf.concat([tf.slice(x, [0, 0, 0, 0], [-1, -1, 1, -1]), x], axis=2)
        return tf.nn.max_pool2d(x, ksize=3, strides=2, padding="VALID")

    @staticmethod
    def channel_shuffle(x):
        tf = _tf()
        _, h, w, c = x.shape
        x = tf.reshape(x, [1, h * w, 2, c // 2])
        x = tf.transpose(x, [0, 1, 3, 2])
        return tf.reshape(x, [1, h, w, c])

    @staticmethod
    def resize(x, size: int):
        tf = _tf()
        return tf.raw_ops.ResizeBilinear(images=x, size=[size, size], align_corners=False, half_pixel_centers=True)

    def shuffle_unit(self, x, prefix: str, stride: int):
        tf = _tf()
        if stride == 2:
            left = self.conv(self.conv(x, f"{prefix}.branch1.0", act=False), f"{prefix}.branch1.2", act=True)
            right = x
        else:
            left, right = tf.split(x, 2, axis=-1)
        right = self.conv(right, f"{prefix}.branch2.0", act=True)
        right = self.conv(right, f"{prefix}.branch2.3", act=False)
        right = self.conv(right, f"{prefix}.branch2.5", act=True)
        return self.channel_shuffle(tf.concat([left, right], axis=-1))

    # -- network -----------------------------------------------------------------------------------------------
    def backbone(self, x):
        x = self.conv(x, "backbone.conv1.0", act=True)
        x = self.max_pool(x)
        feats = []
        for s, repeats in enumerate(layout.STAGE_REPEATS, start=2):
            for b in range(repeats):
                x = self.shuffle_unit(x, f"backbone.stage{s}.{b}", 2 if b == 0 else 1)
            feats.append(x)
        return feats  # strides 8, 16, 32

    def pan_stride32(self, feats):
        """PAN top-down (upsample + add) then bottom-up (downsample + add), only as far as the stride-32 output."""
        lat = [self.conv(f, f"fpn.lateral_convs.{i}.conv", act=False) for i, f in enumerate(feats)]
        sizes = [int(f.shape[1]) for f in feats]
        p4 = lat[1] + self.resize(lat[2], sizes[1])
        p3 = lat[0] + self.resize(p4, sizes[0])
        n4 = p4 + self.resize(p3, sizes[1])
        return lat[2] + self.resize(n4, sizes[2])

    def head(self, x):
        tf = _tf()
        lv = layout.KEPT_LEVEL
        for j in range(layout.HEAD_CONVS):
            x = self.conv(x, f"head.cls_convs.{lv}.{j}.depthwise", act=True)
            x = self.conv(x, f"head.cls_convs.{lv}.{j}.pointwise", act=True)
        k, b = self._w[f"head.gfl_cls.{lv}"]
        n = spec.NUM_CLASSES
        if self.split_head:
            # Two convs instead of one 112-channel conv + slices, so each output gets its own int8 range.  Measured
            # on COCO val (600 images, MSE-refined ranges): mAP 4.10 split vs 4.16 shared, i.e. no gain; kept as an
            # option, off by default (the shared conv is also NXP's structure).
            cls = tf.nn.bias_add(tf.nn.conv2d(x, k[..., :n], 1, "VALID"), b[:n])
            box = tf.nn.bias_add(tf.nn.conv2d(x, k[..., n:], 1, "VALID"), b[n:])
        else:
            y = tf.nn.bias_add(tf.nn.conv2d(x, k, 1, "VALID"), b)
            cls = tf.slice(y, [0, 0, 0, 0], [-1, -1, -1, n])
            box = tf.slice(y, [0, 0, 0, n], [-1, -1, -1, -1])
        return tf.sigmoid(cls), box

    def __call__(self, x):
        """x: 1x320x320x3 float32 normalised BGR -> (scores 1x10x10x80, boxes 1x10x10x32)."""
        return self.head(self.pan_stride32(self.backbone(x)))

    def module(self):
        """A tf.Module whose `serve` concrete function takes the normalised input."""
        tf = _tf()
        graph = self

        class Nanodet(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec(spec.INPUT_SHAPE, tf.float32, name="input")])
            def serve(self, x):
                scores, boxes = graph(x)
                return tf.identity(scores, name="scores"), tf.identity(boxes, name="boxes")

        return Nanodet()
