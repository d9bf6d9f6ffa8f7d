"""A failed build names the compiler's or linker's first error line, not the first command line with "-Werror"."""
from __future__ import annotations

import pytest

from nanodet_mcu import cli
from nanodet_mcu.device.build import first_error_line
from tests.conftest import require_tool

GCC_CMD = "arm-none-eabi-gcc -mcpu=cortex-m7 -O2 -Wall -Wextra -Werror -c nd_app.c -o build/nd_app.o"
LD = "/usr/lib/gcc/arm-none-eabi/12.2.1/../../../arm-none-eabi/bin/ld"


@pytest.mark.parametrize("output, expected", [
    (f"{GCC_CMD}\nnd_app.c:12:3: error: expected ';' before '}}' token\nmake: *** [Makefile:60: build/nd_app.o] "
     "Error 1", "nd_app.c:12:3: error: expected ';' before '}' token"),
    (f"{GCC_CMD}\nx.h:1:10: fatal error: tensorflow/lite/micro/micro_interpreter.h: No such file or directory",
     "x.h:1:10: fatal error: tensorflow/lite/micro/micro_interpreter.h: No such file or directory"),
    (f"{GCC_CMD}\n{LD}: build/engine_tflm.o: in function `nd_engine_init':\nengine_tflm.cc:(.text+0x1c): undefined "
     "reference to `tflite::MicroPrintf(char const*, ...)'\ncollect2: error: ld returned 1 exit status",
     "engine_tflm.cc:(.text+0x1c): undefined reference to `tflite::MicroPrintf(char const*, ...)'"),
    (f"{LD}: warning: nanodet.elf has a LOAD segment with RWX permissions\n{LD}: build/nanodet.elf section `.bss' "
     "will not fit in region `RAM'\ncollect2: error: ld returned 1 exit status",
     f"{LD}: build/nanodet.elf section `.bss' will not fit in region `RAM'"),
    (f"{LD}: cannot find /x/libtensorflow-microlite.a: No such file or directory",
     f"{LD}: cannot find /x/libtensorflow-microlite.a: No such file or directory"),
    ("Makefile:40: *** set TFLM_LIB to a TFLM static library built for cortex-m7 hard-float.  Stop.",
     "Makefile:40: *** set TFLM_LIB to a TFLM static library built for cortex-m7 hard-float.  Stop."),
    ("-- The C compiler identification is GNU 12.2.1\nCMake Error at CMakeLists.txt:12 (message):\n  no eIQ TFLM "
     "in the SDK\n-- Configuring incomplete, errors occurred!", "CMake Error at CMakeLists.txt:12 (message): no eIQ "
                                                                "TFLM in the SDK"),
    ("build.sh: set MCUX_SDK_ROOT to the MCUXpresso SDK (see README.md)",
     "build.sh: set MCUX_SDK_ROOT to the MCUXpresso SDK (see README.md)"),
    (f"{GCC_CMD}\ncollect2: error: ld returned 1 exit status", "collect2: error: ld returned 1 exit status"),
    ("compiling\nKilled", "Killed"),
    ("", "no output"),
])
def test_first_error_line(output, expected):
    assert first_error_line(output) == expected


def test_real_compile_and_link_errors_are_named(nxp_model_path, tmp_path, capsys):
    """A generated mps2 project broken twice: a syntax error, then a missing symbol at link time."""
    require_tool("arm-none-eabi-gcc")
    from nanodet_mcu.codegen import generate

    out = tmp_path / "p"
    generate.generate("mps2-an500", nxp_model_path, engine="aot", out_dir=out, log=lambda m: None)
    app = out / "nd_app.c"
    original = app.read_text()
    app.write_text(original + "\nint nd_broken(void) { return 1 }\n")
    assert cli.main(["build", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "nd_app.c:" in err and ": error: expected ';' before '}' token" in err and "-Werror" not in err
    app.write_text(original)
    engine = out / "engine_aot.c"  # renames its nd_engine_invoke: nd_app.c's call is left unresolved
    engine.write_text("#define nd_engine_invoke nd_engine_invoke_renamed\n" + engine.read_text())
    assert cli.main(["build", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "undefined reference to `nd_engine_invoke'" in err and len(err.splitlines()) == 1
