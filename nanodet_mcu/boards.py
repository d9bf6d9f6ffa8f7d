"""Boards as data: `nanodet_mcu/boards/<name>.toml`, loaded and checked here.  Adding a board = adding a file.

Schema (every key required unless marked optional):

    name, description            board id (= file stem) and a one-line description
    family                       template family: templates/<family>/ holds its build files
                                 ("mcux-armgcc": MCUXpresso SDK armgcc CMake; "gcc-make": plain Makefile)
    default_engine, engines      "tflm" | "aot"
    layer                        board layer directory firmware/<layer>/ (copied into the project)
    [core]   cpu, fpu, float_abi, clock_hz
    [timer]  kind ("dwt-cycles" | "systick-instructions"), units_per_tick
    [uart]   name, baud, note
    [flash]  name, size          where code, weights and embedded images go
    [[memory]]                   candidate regions for the tensor arena
             name, address, size, speed_rank (1 = fastest), reserved (bytes other data needs there),
             external (true: off-chip, falling back to it is announced), section (the arena's input section),
             linker_region (the linker file's MEMORY name the section is placed in),
             define_region (true: the linker file lacks that MEMORY region; the project adds it from address/size)
    [build]  (gcc-make family)   linker_script (in the layer directory), cflags, ldflags
    [sdk]    (mcux-armgcc family) boards (SDK board names, first = default), device, core_id, cpu_define,
             build_config, linker_script (relative to the SDK core), board_sources, board_include_dirs,
             defines, asm_defines, components (CONFIG_USE_<component>), config (CONFIG_<x>=<v> settings),
             tflm_components, tflm_prebuilt_components, tflm_defines (eIQ TFLM middleware),
             linkserver ("<device>:<board>" names), pyocd_target
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from nanodet_mcu import FIRMWARE_DIR, TEMPLATES_DIR
from nanodet_mcu.errors import NanodetError

BOARDS_DIR = Path(__file__).resolve().parent / "boards"
ENGINES = ("tflm", "aot")
TIMER_KINDS = ("dwt-cycles", "systick-instructions")

_REQUIRED = {
    "": {"name": str, "description": str, "family": str, "default_engine": str, "engines": list, "layer": str,
         "core": dict, "timer": dict, "uart": dict, "flash": dict, "memory": list},
    "core": {"cpu": str, "fpu": str, "float_abi": str, "clock_hz": int},
    "timer": {"kind": str, "units_per_tick": int},
    "uart": {"name": str, "baud": int, "note": str},
    "flash": {"name": str, "size": int},
    "memory": {"name": str, "address": int, "size": int, "speed_rank": int, "reserved": int, "external": bool,
               "section": str, "linker_region": str, "define_region": bool},
    "build": {"linker_script": str, "cflags": list, "ldflags": list},
    "sdk": {"boards": list, "device": str, "core_id": str, "cpu_define": str, "build_config": str,
            "linker_script": str, "board_sources": list, "board_include_dirs": list, "defines": list,
            "asm_defines": list, "components": list, "config": list, "tflm_components": list,
            "tflm_prebuilt_components": list,
            "tflm_defines": list, "linkserver": list, "pyocd_target": str},
}
_FAMILY_TABLE = {"gcc-make": "build", "mcux-armgcc": "sdk"}


@dataclass(frozen=True)
class MemoryRegion:
    name: str
    address: int
    size: int
    speed_rank: int
    reserved: int
    external: bool
    section: str
    linker_region: str
    define_region: bool

    @property
    def available(self) -> int:
        return self.size - self.reserved


@dataclass(frozen=True)
class Board:
    name: str
    data: dict  # the whole TOML table, as templates read it

    @property
    def family(self) -> str:
        return self.data["family"]

    @property
    def default_engine(self) -> str:
        return self.data["default_engine"]

    @property
    def engines(self) -> list[str]:
        return list(self.data["engines"])

    @property
    def layer_dir(self) -> Path:
        return FIRMWARE_DIR / self.data["layer"]

    @property
    def clock_hz(self) -> int:
        return self.data["core"]["clock_hz"]

    @property
    def memory(self) -> list[MemoryRegion]:
        return [MemoryRegion(**m) for m in self.data["memory"]]


def names() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.toml"))


def _check_table(where: str, table: dict, schema: dict) -> None:
    for key, kind in schema.items():
        if key not in table:
            raise NanodetError(f"{where}: missing key '{key}'")
        value = table[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            raise NanodetError(f"{where}: '{key}' must be {kind.__name__}, not {type(value).__name__}")


def validate(data: dict, where: str) -> None:
    """Raise NanodetError naming the first thing wrong with a board table."""
    _check_table(where, data, _REQUIRED[""])
    for section in ("core", "timer", "uart", "flash"):
        _check_table(f"{where} [{section}]", data[section], _REQUIRED[section])
    if not data["memory"]:
        raise NanodetError(f"{where}: no [[memory]] regions")
    for i, region in enumerate(data["memory"]):
        _check_table(f"{where} [[memory]] #{i + 1}", region, _REQUIRED["memory"])
        if not 0 <= region["reserved"] < region["size"]:
            raise NanodetError(f"{where} [[memory]] {region['name']}: reserved must be in [0, size)")
    family_table = _FAMILY_TABLE.get(data["family"])
    if family_table is None:
        raise NanodetError(f"{where}: unknown family '{data['family']}' (known: {', '.join(sorted(_FAMILY_TABLE))})")
    if family_table not in data:
        raise NanodetError(f"{where}: family {data['family']} needs a [{family_table}] table")
    _check_table(f"{where} [{family_table}]", data[family_table], _REQUIRED[family_table])
    if not (TEMPLATES_DIR / data["family"]).is_dir():
        raise NanodetError(f"{where}: no templates/{data['family']}/ directory")
    bad = [e for e in data["engines"] if e not in ENGINES]
    if bad or data["default_engine"] not in data["engines"]:
        raise NanodetError(f"{where}: engines must be among {ENGINES} and include default_engine")
    if data["timer"]["kind"] not in TIMER_KINDS:
        raise NanodetError(f"{where}: timer kind must be one of {TIMER_KINDS}")


@lru_cache(maxsize=None)
def _load_cached(name: str) -> Board:
    path = BOARDS_DIR / f"{name}.toml"
    if not path.is_file():
        raise NanodetError(f"unknown board '{name}' (known: {', '.join(names())})")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise NanodetError(f"{path}: {exc}") from exc
    validate(data, str(path))
    if data["name"] != name:
        raise NanodetError(f"{path}: name '{data['name']}' differs from the file name")
    return Board(name, data)


def load(name: str) -> Board:
    """The board `name`, or NanodetError listing the known boards."""
    return _load_cached(name)
