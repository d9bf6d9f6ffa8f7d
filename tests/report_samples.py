"""Report sections written by other parts of verify, built from their schema (/work/notes/contracts.md) so the page
can be tested before (and independently of) the code that fills them: `profile` (verify --profile) and `bisect`."""
from __future__ import annotations

# NanoDet-m-0.5x's AOT steps in model order, abridged: (fused op kinds, output tensor, output shape, MACs)
_STEPS = [
    ("CONV_2D+LEAKY_RELU", "model/leaky_re_lu/LeakyRelu", [1, 160, 160, 24], 16_588_800),
    ("MAX_POOL_2D", "model/max_pooling2d/MaxPool", [1, 80, 80, 24], 0),
    ("PAD+DEPTHWISE_CONV_2D", "model/depthwise_conv2d/depthwise", [1, 40, 40, 24], 345_600),
    ("CONV_2D+LEAKY_RELU", "model/leaky_re_lu_1/LeakyRelu", [1, 40, 40, 24], 921_600),
    ("CONV_2D+LEAKY_RELU", "model/leaky_re_lu_2/LeakyRelu", [1, 80, 80, 24], 3_686_400),
    ("PAD+DEPTHWISE_CONV_2D", "model/depthwise_conv2d_1/depthwise", [1, 40, 40, 24], 345_600),
    ("CONV_2D+LEAKY_RELU", "model/leaky_re_lu_3/LeakyRelu", [1, 40, 40, 24], 921_600),
    ("CONCATENATION+RESHAPE+TRANSPOSE+RESHAPE", "model/tf.reshape_1/Reshape", [1, 40, 40, 48], 0),
    ("SPLIT", "model/tf.split/split", [1, 40, 40, 24], 0),
    ("CONV_2D+LEAKY_RELU", "model/leaky_re_lu_4/LeakyRelu", [1, 40, 40, 24], 921_600),
    ("PAD+DEPTHWISE_CONV_2D", "model/depthwise_conv2d_2/depthwise", [1, 40, 40, 24], 345_600),
    ("CONV_2D+LEAKY_RELU", "model/leaky_re_lu_5/LeakyRelu", [1, 40, 40, 24], 921_600),
    ("CONCATENATION+RESHAPE+TRANSPOSE+RESHAPE", "model/tf.reshape_3/Reshape", [1, 40, 40, 48], 0),
    ("PAD+DEPTHWISE_CONV_2D", "model/depthwise_conv2d_3/depthwise", [1, 20, 20, 48], 172_800),
    ("CONV_2D+LEAKY_RELU", "model/leaky_re_lu_6/LeakyRelu", [1, 20, 20, 48], 921_600),
    ("CONV_2D+LEAKY_RELU", "model/leaky_re_lu_7/LeakyRelu", [1, 40, 40, 48], 3_686_400),
    ("PAD+DEPTHWISE_CONV_2D", "model/depthwise_conv2d_4/depthwise", [1, 20, 20, 48], 172_800),
    ("CONV_2D+LEAKY_RELU", "model/leaky_re_lu_8/LeakyRelu", [1, 20, 20, 48], 921_600),
    ("CONCATENATION+RESHAPE+TRANSPOSE+RESHAPE", "model/tf.reshape_5/Reshape", [1, 20, 20, 96], 0),
    ("PAD+DEPTHWISE_CONV_2D", "model/depthwise_conv2d_9/depthwise", [1, 10, 10, 96], 86_400),
    ("CONV_2D+LEAKY_RELU", "model/leaky_re_lu_20/LeakyRelu", [1, 10, 10, 96], 921_600),
    ("RESIZE_BILINEAR", "model/up_sampling2d/resize/ResizeBilinear", [1, 20, 20, 96], 0),
    ("ADD", "model/tf.math.add_40/Add", [1, 20, 20, 96], 0),
    ("PAD+DEPTHWISE_CONV_2D", "model/depthwise_conv2d_20/depthwise", [1, 10, 10, 96], 86_400),
    ("CONV_2D+LEAKY_RELU", "model/leaky_re_lu_39/LeakyRelu", [1, 10, 10, 96], 921_600),
    ("CONV_2D", "model/tf.math.add_66/Add", [1, 10, 10, 112], 1_075_200),
    ("SLICE+LOGISTIC", "StatefulPartitionedCall:0", [1, 10, 10, 80], 0),
    ("SLICE", "StatefulPartitionedCall:1", [1, 10, 10, 32], 0),
]


def profile(board: bool = False) -> dict:
    """A `profile` section: QEMU (emulated instructions, 40 per tick) or an RT1170 (cycles at 996 MHz)."""
    clock, per_tick, unit = (996_000_000, 1, "cycles") if board else (25_000_000, 40, "emulated instructions")
    steps = []
    for i, (op, tensor, shape, macs) in enumerate(_STEPS):
        elements = shape[1] * shape[2] * shape[3]
        ticks = (macs * 3 + elements * 6) // (per_tick * (4 if board else 1)) + 20
        steps.append({"index": i, "op": op, "tensor": tensor, "shape": shape, "macs": macs, "ticks": ticks})
    summed = sum(s["ticks"] for s in steps)
    inference = summed + summed // 250  # the loop and the hooks themselves: ~0.4 % outside the steps
    for s in steps:
        value = float(s["ticks"] * per_tick)
        s.update(value=value, ms=value / clock * 1e3 if board else None, share=s["ticks"] / inference,
                 per_mac=value / s["macs"] if s["macs"] else None)
    return {"engine": "aot", "unit": unit, "clock_hz": clock, "units_per_tick": float(per_tick),
            "inference_ticks": inference, "sum_ticks": summed, "steps": steps}


def bisect(status: str = "diverged") -> dict:
    if status != "diverged":
        return {"status": status, "detail": {"identical": "all 28 steps equal the host twin's outputs",
                                             "no-host-twin": "the tflm engine has no per-step host twin",
                                             "error": "the device stopped answering at step 12"}[status]}
    return {"status": "diverged", "detail": "first difference at step 14 of 28 (CONV_2D+LEAKY_RELU)",
            "step": {"index": 14, "op": "CONV_2D+LEAKY_RELU", "tensor": "model/leaky_re_lu_6/LeakyRelu",
                     "shape": [1, 20, 20, 48]},
            "differing_bytes": 37, "bytes": 19_200, "max_abs_delta": 2, "channels": [5, 17, 40], "rows": [3, 4, 11],
            "device_npy": "bisect/step14.device.npy", "host_npy": "bisect/step14.host.npy"}
