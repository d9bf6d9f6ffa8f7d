"""Stage 2, code generation: a .tflite + a board file -> a self-contained firmware project (`generate`), rendered from
templates/ with the model as a C array and a TFLM op resolver, or lowered to plain C by the AOT engine (`aot/`)."""
