"""Stage 3, the device side seen from the host: build a generated project with its own build script (`build`) and
run firmware on the emulated Cortex-M7 board (`emulator`, QEMU mps2-an500)."""
