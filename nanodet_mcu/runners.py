"""Host interpreters of an int8 NanoDet model: one `run(int8 input) -> (scores, boxes)` for each engine.

`tflm` (tflite-micro, the default reference: it is what the board runs), `tflite` (TensorFlow Lite), and the AOT
engine's host build (registered by nanodet_mcu.aot).  Outputs always come back as (scores 1x10x10x80,
boxes 1x10x10x32) int8, whatever order the model stores them in.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from nanodet_mcu import model_info
from nanodet_mcu.errors import NanodetError


class Runner:
    name = "?"

    def __init__(self, info: model_info.ModelInfo):
        self.info = info
        self.layout = model_info.nanodet_layout(info)

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class TflmRunner(Runner):
    name = "tflm"

    def __init__(self, info):
        super().__init__(info)
        self._interp = model_info.tflm_interpreter(info.data, info.path)

    def run(self, x):
        try:
            with model_info._captured_output() as log:
                self._interp.set_input(np.ascontiguousarray(x, np.int8), 0)
                self._interp.invoke()
                outs = [self._interp.get_output(i).copy() for i in range(2)]
        except Exception as exc:  # the binding raises RuntimeError with TFLM's log on stderr
            raise NanodetError(f"tflite-micro failed to run {self.info.path}: "
                               f"{model_info._log_reason(''.join(log), exc)}") from exc
        return outs[self.layout.scores_index], outs[self.layout.boxes_index]


class TfliteRunner(Runner):
    name = "tflite"

    def __init__(self, info):
        super().__init__(info)
        with model_info._captured_output():  # TensorFlow's import and the interpreter log to stderr from C++
            import tensorflow as tf

        def load():
            interp = tf.lite.Interpreter(model_content=info.data, num_threads=1)
            interp.allocate_tensors()
            interp.invoke()  # some corrupt models crash TensorFlow Lite only when run
            return interp

        failure = None
        with model_info._captured_output() as log, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            crash = model_info.crash_in_child(load)
            if crash:
                raise NanodetError(model_info.crash_message("TensorFlow Lite", info.path, crash))
            try:
                self._interp = load()
            except Exception as exc:  # RuntimeError or ValueError with the failing node
                failure = exc
        if failure is not None:
            raise NanodetError(f"TensorFlow Lite refuses {info.path}: {model_info._log_reason(''.join(log), failure)}"
                               ) from failure

    def run(self, x):
        try:
            self._interp.set_tensor(self._interp.get_input_details()[0]["index"], np.ascontiguousarray(x, np.int8))
            self._interp.invoke()
        except Exception as exc:
            raise NanodetError(f"TensorFlow Lite failed to run {self.info.path}: {model_info._log_reason('', exc)}"
                               ) from exc
        outs = [self._interp.get_tensor(d["index"]).copy() for d in self._interp.get_output_details()]
        return outs[self.layout.scores_index], outs[self.layout.boxes_index]


RUNNERS: dict[str, Callable[[model_info.ModelInfo], Runner]] = {"tflm": TflmRunner, "tflite": TfliteRunner}


def runner_names() -> list[str]:
    return ["tflm", "tflite", "aot"]


def make_runner(name: str, info: model_info.ModelInfo) -> Runner:
    if name == "aot":
        from nanodet_mcu.codegen.aot.host import AotRunner  # the emitted C, built for the host

        return AotRunner(info)
    if name not in RUNNERS:
        raise NanodetError(f"unknown interpreter '{name}' (choose from {', '.join(runner_names())})")
    return RUNNERS[name](info)
