"""`nanodet-mcu generate`: a self-contained firmware project for a board from an int8 NanoDet .tflite."""
from nanodet_mcu import boards


def add_arguments(p):
    p.add_argument("--board", required=True, choices=boards.names(),
                   help="target board, one of the board files nanodet_mcu/boards/*.toml (mps2-an500 is QEMU's)")
    p.add_argument("--model", required=True, metavar="MODEL",
                   help="int8 NanoDet .tflite (from convert, or NXP's); copied into the project")
    p.add_argument("--engine", choices=boards.ENGINES,
                   help="inference engine (default: the board's, tflm for the RT boards, aot for mps2-an500)")
    p.add_argument("--sdk", choices=boards.SDKS,
                   help="MCUXpresso SDK layout the RT project builds with: mcuxsdk = the current SDK (west workspace "
                        "from mcuxsdk-manifests, 24.12 and later), classic = mcux-sdk 2.x (2.15) (default: mcuxsdk for "
                        "the RT boards; mps2-an500 needs no SDK)")
    p.add_argument("--out", metavar="DIR", help="project directory (default: build/<board>-<engine>/)")
    p.add_argument("--embed-images", nargs="+", default=[], metavar="IMG",
                   help="images stored in flash (resized to 320x320 RGB888) for on-device runs without upload "
                        "(default: none)")
    p.add_argument("--force", action="store_true",
                   help="replace a non-empty directory generate did not create (default: refuse)")
    p.add_argument("--tflm-include", nargs="+", action="extend", default=[], metavar="DIR",
                   help="tflm engine without an SDK (mps2-an500): TFLM include directories (tflite-micro root, its "
                        "flatbuffers/include and gemmlowp), given once or repeated; they become the build's default "
                        "for TFLM_INCLUDE (default: none, set TFLM_INCLUDE at build time)")
    p.add_argument("--tflm-lib", metavar="LIB",
                   help="tflm engine without an SDK: the TFLM static library for Cortex-M7 (release or default "
                        "build); the build's default for TFLM_LIB (default: none, set TFLM_LIB at build time)")
    p.add_argument("--profile", action="store_true",
                   help="build with per-step instrumentation (per-op timing and output CRCs for verify --profile / "
                        "--bisect); off, the inference has no hook at all.  ND_PROFILE=0|1 at build time overrides it "
                        "(default: off)")
    p.add_argument("--tflm-stock-transpose", action="store_true",
                   help="tflm engine: keep the TFLM's own TRANSPOSE kernel instead of the reference one the glue "
                        "registers (to diagnose a TFLM build; CMSIS-NN's skips NanoDet's 5-D shuffles; default: the "
                        "reference one)")
    p.add_argument("--weights-format", choices=("int16", "int8"),
                   help="aot engine: conv weights pre-extended to int16 (fastest) or kept int8 (half their flash, for "
                        "flash-tight boards; about 15%% more instructions) (default: int16)")


def run(args) -> int:
    from nanodet_mcu.codegen.generate import generate
    from nanodet_mcu.device.sdk import NAMES

    project = generate(args.board, args.model, engine=args.engine, out_dir=args.out,
                       embed_images=args.embed_images, force=args.force,
                       tflm_include=args.tflm_include, tflm_lib=args.tflm_lib, profile=args.profile,
                       tflm_stock_transpose=args.tflm_stock_transpose, weights_format=args.weights_format,
                       sdk=args.sdk)
    print(f"{project.out_dir}: {project.board} project, {project.engine} engine, {len(project.files)} files")
    print(f"  {project.placement.describe()}")
    if project.ram:
        print(f"  RAM: the arena holds every tensor and kernel scratch (largest {project.ram['scratch_bytes']:,} "
              f"bytes), planned here; the engine's stack stays within {project.ram['stack_bytes_bound']:,} bytes "
              "below its caller (ND_KERNELS_STACK_BYTES, checked against the painted stack on the emulated "
              "Cortex-M7)")
    for line in project.aot_placement:
        print(f"  {line}")
    flash = ", ".join(f"{k} {v:,}" for k, v in sorted(project.flash_bytes.items()))
    print(f"  flash (large constants): {flash} bytes")
    print(f"  build: {project.out_dir}/build.sh   (or: nanodet-mcu build {project.out_dir})")
    if args.profile:
        print("  per-step instrumentation on: verify --profile / --bisect")
    sdk = boards.FAMILIES[project.family].sdk
    if sdk:
        print(f"  SDK: {NAMES[sdk]} in MCUX_SDK_ROOT (--sdk {sdk}; its README.md says how to get it)")
        _note_other_sdk(sdk)
    return 0


def _note_other_sdk(sdk: str) -> None:
    """Say now, not at build time, when MCUX_SDK_ROOT already holds the other SDK layout."""
    import os
    import sys

    from nanodet_mcu.device.sdk import NAMES, detect
    from nanodet_mcu.errors import NanodetError

    root = os.environ.get("MCUX_SDK_ROOT")
    try:
        tree = detect(root) if root else None
    except NanodetError:
        return
    if tree is not None and tree.sdk != sdk:
        print(f"nanodet-mcu generate: note: MCUX_SDK_ROOT={root} holds {NAMES[tree.sdk]}; this project needs "
              f"{NAMES[sdk]} (generate with --sdk {tree.sdk} for that tree)", file=sys.stderr)
