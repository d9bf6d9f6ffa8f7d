"""Edit a .tflite through the flatbuffer object API: the hostile-input tests make broken models from good ones (an
opcode swapped, a shape or a quantisation changed) without TensorFlow."""
from __future__ import annotations

from collections.abc import Callable

from nanodet_mcu import model_info


def edit(data: bytes, change: Callable) -> bytes:
    """`change(model)` edits the unpacked ModelT in place; returns the re-packed flatbuffer."""
    import flatbuffers

    s = model_info.schema()
    model = s.ModelT.InitFromObj(s.Model.GetRootAsModel(bytearray(data), 0))  # writable arrays
    change(model)
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def op_names(model) -> list[str]:
    names = model_info.builtin_op_names()
    codes = [names[max(c.builtinCode, c.deprecatedBuiltinCode)] for c in model.operatorCodes]
    return [codes[op.opcodeIndex] for op in model.subgraphs[0].operators]


def opcode_index(model, name: str) -> int:
    """Index of op `name` in the model's opcode table, appended when absent."""
    s = model_info.schema()
    code = getattr(s.BuiltinOperator, name)
    for i, c in enumerate(model.operatorCodes):
        if max(c.builtinCode, c.deprecatedBuiltinCode) == code:
            return i
    c = s.OperatorCodeT()
    c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
    model.operatorCodes.append(c)
    return len(model.operatorCodes) - 1


def retype_op(model, op_index: int, name: str) -> None:
    """Make operator `op_index` read as op `name` (only its opcode index changes: inputs and options stay)."""
    model.subgraphs[0].operators[op_index].opcodeIndex = opcode_index(model, name)
