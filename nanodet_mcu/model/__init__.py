"""Stage 1, the host model pipeline: official weights -> TensorFlow graph -> full-int8 TFLite (`convert`), and COCO
metrics of a model on the host reference (`evaluate`).  Detection itself is the shared host reference
(`nanodet_mcu.pipeline`), which code generation and the verifier use too."""
