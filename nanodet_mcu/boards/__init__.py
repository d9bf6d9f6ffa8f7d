"""Boards as data: `nanodet_mcu/boards/<name>.toml`, loaded and checked here.  Adding a board = adding a file.

Schema (every key required unless marked optional):

    name, description            board id (= file stem) and a one-line description
    family                       the default project family (FAMILIES below): its templates/<family>/ holds the
                                 build files ("mcuxsdk": the current MCUXpresso SDK, west layout 24.12+;
                                 "mcux-armgcc": the classic MCUXpresso SDK 2.x armgcc CMake; "gcc-make": Makefile)
    families (optional)          every family the board supports, `family` among them (generate --sdk picks one)
    default_engine, engines      "tflm" | "aot"
    layer                        board layer directory firmware/<layer>/ (copied into the project)
    emulated_by (optional)       the emulator that runs this board (nothing to flash; `flash` points to emulate)
    [core]   cpu, fpu, float_abi, clock_hz
    [timer]  kind ("dwt-cycles" | "systick-instructions"), units_per_tick
    [uart]   name, baud, note
    [flash]  name, size          where code, weights and embedded images go
    [[memory]]                   candidate regions for the tensor arena
             name, address, size (or flexram = "dtcm" | "ocram": the size follows from the [flexram] split),
             speed_rank (1 = fastest), reserved (bytes other data needs there),
             external (true: off-chip, falling back to it is announced), section (the arena's input section),
             linker_region (the linker file's MEMORY name the section is placed in),
             define_region (true: the linker file lacks that MEMORY region; the project adds it from address/size)
    [flexram] (optional)         i.MX RT FlexRAM bank split that the firmware applies at start-up
             bank_bytes, banks, itcm_banks, dtcm_banks, ocram_banks (the split), bank_cfg_registers (IOMUXC_GPR
             registers holding 2 bits per bank, bank 0 in the lowest bits, banks shared equally among them),
             tcm_size_register ("GPR14" when the device has CM7_CFGITCMSZ/CFGDTCMSZ fields, else ""),
             itcm_address, itcm_linker_region (the linker file's ITCM MEMORY region, resized to the split)
    [build]  (gcc-make family)   linker_script (in the layer directory), cflags (after the [core] architecture
             flags), ldflags
    [sdk]    (mcux-armgcc family) boards (SDK board names, first = default), device, core_id, cpu_define,
             build_config, linker_script (relative to the SDK core), board_sources, board_include_dirs,
             defines, asm_defines, components (CONFIG_USE_<component>), config (CONFIG_<x>=<v> settings),
             tflm_components, tflm_prebuilt_components, tflm_defines (eIQ TFLM middleware),
             linkserver ("<device>:<board>" names), pyocd_target
    [mcuxsdk] (mcuxsdk family)   boards (the SDK's board names, first = default), core_id ("" on single-core
             devices; the SDK then names the ELF <project>_<core_id>.elf), cpu_define (what the SDK defines for the
             part, for checks compiling the board layer alone), device_dir (the device folder under the SDK root),
             build_config (CMAKE_BUILD_TYPE / west --config: it picks the device linker file), kconfig (this
             board's CONFIG_...=<v> lines for prj.conf), linkserver, pyocd_target (as in [sdk])
    [[linker_sections]] (optional) extra output sections the mcux families add to the SDK's device linker file,
             ahead of its .bss, besides the tensor arena's (which [[memory]] places):
             name (".nd_<x>"), inputs (input section patterns), region (the linker file's MEMORY region; a
             [[memory]] region with define_region is defined by the project), load ("noload": not in the image and
             never zeroed; "copy": its image follows the SDK's load images in flash and nd_board_init copies it
             from __nd_<x>_load__ to __nd_<x>_start__..__nd_<x>_end__), engines (optional: only for these engines)
    [aot] (optional)             where the AOT engine's hot parts go, by name of [[linker_sections]] (aot, "copy",
             each taking the input section of its own name):
             code_section (the fast kernels' code, C and assembly: e.g. ITCM), const_sections (the model's constant
             arrays, in order of preference: the first whose region, a [[memory]] region, has room beside the arena
             takes them; the others are left out of the project; none with room: the constants stay in flash)
"""
from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from nanodet_mcu import FIRMWARE_DIR, TEMPLATES_DIR
from nanodet_mcu.errors import NanodetError

BOARDS_DIR = Path(__file__).resolve().parent  # the *.toml files live beside this module
ENGINES = ("tflm", "aot")
TIMER_KINDS = ("dwt-cycles", "systick-instructions")

_REQUIRED = {
    "": {"name": str, "description": str, "family": str, "default_engine": str, "engines": list, "layer": str,
         "core": dict, "timer": dict, "uart": dict, "flash": dict, "memory": list},
    "core": {"cpu": str, "fpu": str, "float_abi": str, "clock_hz": int},
    "timer": {"kind": str, "units_per_tick": int},
    "uart": {"name": str, "baud": int, "note": str},
    "flash": {"name": str, "size": int},
    "memory": {"name": str, "address": int, "speed_rank": int, "reserved": int, "external": bool,
               "section": str, "linker_region": str, "define_region": bool},
    "flexram": {"bank_bytes": int, "banks": int, "itcm_banks": int, "dtcm_banks": int, "ocram_banks": int,
                "bank_cfg_registers": list, "tcm_size_register": str, "itcm_address": int, "itcm_linker_region": str},
    "build": {"linker_script": str, "cflags": list, "ldflags": list},
    "mcuxsdk": {"boards": list, "core_id": str, "cpu_define": str, "device_dir": str, "build_config": str,
                "kconfig": list, "linkserver": list, "pyocd_target": str},
    "linker_sections": {"name": str, "inputs": list, "region": str, "load": str},
    "aot": {"code_section": str, "const_sections": list},
    "sdk": {"boards": list, "device": str, "core_id": str, "cpu_define": str, "build_config": str,
            "linker_script": str, "board_sources": list, "board_include_dirs": list, "defines": list,
            "asm_defines": list, "components": list, "config": list, "tflm_components": list,
            "tflm_prebuilt_components": list,
            "tflm_defines": list, "linkserver": list, "pyocd_target": str},
}


@dataclass(frozen=True)
class Family:
    """A kind of generated project: the board table it reads, the SDK layout it builds with (generate --sdk) and
    its template directories (shared ones first, templates/<name>/ last)."""
    name: str
    table: str
    sdk: str  # "" = no SDK
    shared: tuple[str, ...] = ()
    core_suffixed_elf: bool = False  # the build names the ELF <project>_<core_id>.elf when the table has a core_id

    @property
    def template_dirs(self) -> tuple[str, ...]:
        return (*self.shared, self.name)


FAMILIES = {f.name: f for f in (
    Family("gcc-make", "build", ""),
    Family("mcuxsdk", "mcuxsdk", "mcuxsdk", ("mcux-common",), core_suffixed_elf=True),
    Family("mcux-armgcc", "sdk", "classic", ("mcux-common",)),
)}
SDKS = tuple(f.sdk for f in FAMILIES.values() if f.sdk)  # generate --sdk choices, the current SDK first
SECTION_LOADS = ("noload", "copy")
FLEXRAM_KINDS = {"ocram": 1, "dtcm": 2, "itcm": 3}  # FLEXRAM_BANK_CFG 2-bit codes (0 = bank unused)


@dataclass(frozen=True)
class FlexRam:
    """A FlexRAM bank split and the register values that apply it (banks of each kind in the SDK's order:
    OCRAM from bank 0, then DTCM, then ITCM, as FLEXRAM_AllocateRam lays them out)."""
    bank_bytes: int
    banks: int
    itcm_banks: int
    dtcm_banks: int
    ocram_banks: int
    bank_cfg_registers: tuple[str, ...]
    tcm_size_register: str
    itcm_address: int
    itcm_linker_region: str

    def bank_count(self, kind: str) -> int:
        return {"itcm": self.itcm_banks, "dtcm": self.dtcm_banks, "ocram": self.ocram_banks}[kind]

    def bytes(self, kind: str) -> int:
        return self.bank_count(kind) * self.bank_bytes

    @property
    def bank_cfg(self) -> int:
        """The whole FLEXRAM_BANK_CFG value: 2 bits per bank, bank 0 in bits 1:0."""
        kinds = ["ocram"] * self.ocram_banks + ["dtcm"] * self.dtcm_banks + ["itcm"] * self.itcm_banks
        return sum(FLEXRAM_KINDS[k] << (2 * bank) for bank, k in enumerate(kinds))

    @property
    def register_values(self) -> dict[str, int]:
        """bank_cfg split over the registers (RT1050: GPR17 = all 16 banks; RT1170: GPR17 = 0-7, GPR18 = 8-15)."""
        bits = 2 * self.banks // len(self.bank_cfg_registers)
        return {reg: (self.bank_cfg >> (bits * i)) & ((1 << bits) - 1)
                for i, reg in enumerate(self.bank_cfg_registers)}

    def tcm_size_code(self, kind: str) -> int:
        """CM7_CFGxTCMSZ encoding (0 = none, else log2(KiB) + 1) of the TCM window, rounded up to a power of two as
        the core's TCM size must be; the banks behind the window may be fewer (e.g. 12 banks = 384 KB -> 512 KB)."""
        kib = -(-self.bytes(kind) // 1024)
        if kib == 0:
            return 0
        window_kib = 1 << (kib - 1).bit_length()
        return max(window_kib.bit_length(), 3)  # bit_length = log2 + 1; 4 KB (code 3) is the smallest window


def _check_flexram(where: str, f: dict) -> None:
    used = f["itcm_banks"] + f["dtcm_banks"] + f["ocram_banks"]
    if min(f["itcm_banks"], f["dtcm_banks"], f["ocram_banks"]) < 0 or used > f["banks"]:
        raise NanodetError(f"{where} [flexram]: {used} banks allocated, the FlexRAM has {f['banks']}")
    regs = f["bank_cfg_registers"]
    if not regs or (2 * f["banks"]) % len(regs) or 2 * f["banks"] // len(regs) > 32:
        raise NanodetError(f"{where} [flexram]: {f['banks']} banks do not share evenly over 32-bit registers {regs}")
    if f["tcm_size_register"] not in ("", "GPR14"):
        raise NanodetError(f"{where} [flexram]: tcm_size_register must be 'GPR14' or ''")


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
        """The default family's name."""
        return self.data["family"]

    @property
    def families(self) -> list[str]:
        return list(self.data.get("families", [self.data["family"]]))

    def family_for(self, sdk: str | None = None) -> Family:
        """The family generate --sdk `sdk` selects (None: the board's default)."""
        if sdk is None:
            return FAMILIES[self.family]
        if sdk not in SDKS:
            raise NanodetError(f"--sdk must be one of {', '.join(SDKS)}, not '{sdk}'")
        found = [FAMILIES[f] for f in self.families if FAMILIES[f].sdk == sdk]
        if not found:
            offered = [FAMILIES[f].sdk for f in self.families if FAMILIES[f].sdk]
            if not offered:
                raise NanodetError(f"{self.name} builds without an MCUXpresso SDK ({self.family}): --sdk does not "
                                   "apply to it")
            raise NanodetError(f"{self.name} has no '{sdk}' project; --sdk {' or '.join(offered)}")
        return found[0]

    def sdk_table(self, family: str) -> dict:
        """The board table a family reads ([mcuxsdk], [sdk], [build])."""
        return self.data[FAMILIES[family].table]

    def linker_sections(self, engine: str) -> list[dict]:
        """[[linker_sections]] that apply to this engine."""
        return [s for s in self.data.get("linker_sections", []) if engine in s.get("engines", ENGINES)]

    @property
    def aot(self) -> dict | None:
        """The [aot] table (the fast kernels' section, the constants' candidate sections), or None."""
        return self.data.get("aot")

    def linker_section(self, name: str) -> dict:
        """The [[linker_sections]] entry called `name`."""
        return next(s for s in self.data.get("linker_sections", []) if s["name"] == name)

    def region_name(self, linker_region: str) -> str:
        """A linker MEMORY region as reports name it: its [[memory]] name, "ITCM" for the FlexRAM ITCM region, or
        the linker name itself."""
        for m in self.memory:
            if m.linker_region == linker_region:
                return m.name
        if self.flexram is not None and linker_region == self.flexram.itcm_linker_region:
            return "ITCM"
        return linker_region

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
    def arch_flags(self) -> list[str]:
        """Compiler flags for the core, from [core] (Thumb is the only instruction set a Cortex-M has)."""
        core = self.data["core"]
        return [f"-mcpu={core['cpu']}", "-mthumb", f"-mfpu={core['fpu']}", f"-mfloat-abi={core['float_abi']}"]

    @property
    def clock_hz(self) -> int:
        return self.data["core"]["clock_hz"]

    @property
    def flexram(self) -> FlexRam | None:
        return _flexram(self.data)

    @property
    def memory(self) -> list[MemoryRegion]:
        return [_region(m, self.flexram) for m in self.data["memory"]]

    @property
    def resized_linker_regions(self) -> list[tuple[str, int, int]]:
        """(MEMORY region, ORIGIN, new LENGTH) of the linker file's regions whose size follows the FlexRAM split."""
        f = self.flexram
        if f is None:
            return []
        out = [(f.itcm_linker_region, f.itcm_address, f.bytes("itcm"))]
        out += [(r.linker_region, r.address, r.size) for r, m in zip(self.memory, self.data["memory"])
                if "flexram" in m and not r.define_region]
        return out


def _flexram(data: dict) -> FlexRam | None:
    f = data.get("flexram")
    return None if f is None else FlexRam(**{**f, "bank_cfg_registers": tuple(f["bank_cfg_registers"])})


def _region(m: dict, flexram: FlexRam | None) -> MemoryRegion:
    fields = {k: v for k, v in m.items() if k != "flexram"}
    if "flexram" in m:
        fields["size"] = flexram.bytes(m["flexram"])
    return MemoryRegion(**fields)


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
    if not isinstance(data.get("emulated_by", ""), str):
        raise NanodetError(f"{where}: 'emulated_by' must be str")
    for section in ("core", "timer", "uart", "flash"):
        _check_table(f"{where} [{section}]", data[section], _REQUIRED[section])
    if not data["memory"]:
        raise NanodetError(f"{where}: no [[memory]] regions")
    if "flexram" in data:
        _check_table(f"{where} [flexram]", data["flexram"], _REQUIRED["flexram"])
        _check_flexram(where, data["flexram"])
    for i, region in enumerate(data["memory"]):
        _check_table(f"{where} [[memory]] #{i + 1}", region, _REQUIRED["memory"])
        kind = region.get("flexram")
        if ("size" in region) == (kind is not None):
            raise NanodetError(f"{where} [[memory]] {region['name']}: give either size or flexram, not both or neither")
        if kind is not None:
            if kind not in ("dtcm", "ocram"):
                raise NanodetError(f"{where} [[memory]] {region['name']}: flexram must be 'dtcm' or 'ocram'")
            if "flexram" not in data:
                raise NanodetError(f"{where} [[memory]] {region['name']}: flexram = '{kind}' needs a [flexram] table")
            size = _flexram(data).bytes(kind)
        else:
            _check_table(f"{where} [[memory]] #{i + 1}", region, {"size": int})
            size = region["size"]
        if not 0 <= region["reserved"] < size:
            raise NanodetError(f"{where} [[memory]] {region['name']}: reserved must be in [0, size)")
    families = data.get("families", [data["family"]])
    if not isinstance(families, list) or data["family"] not in families:
        raise NanodetError(f"{where}: 'families' must be a list that includes family '{data['family']}'")
    for name in families:
        family = FAMILIES.get(name)
        if family is None:
            raise NanodetError(f"{where}: unknown family '{name}' (known: {', '.join(sorted(FAMILIES))})")
        if family.table not in data:
            raise NanodetError(f"{where}: family {name} needs a [{family.table}] table")
        _check_table(f"{where} [{family.table}]", data[family.table], _REQUIRED[family.table])
        for sub in family.template_dirs:
            if not (TEMPLATES_DIR / sub).is_dir():
                raise NanodetError(f"{where}: no templates/{sub}/ directory")
    _check_linker_sections(data, where)  # after the families are known to exist
    _check_aot(data, where)
    bad = [e for e in data["engines"] if e not in ENGINES]
    if bad or data["default_engine"] not in data["engines"]:
        raise NanodetError(f"{where}: engines must be among {ENGINES} and include default_engine")
    if data["timer"]["kind"] not in TIMER_KINDS:
        raise NanodetError(f"{where}: timer kind must be one of {TIMER_KINDS}")


def _check_linker_sections(data: dict, where: str) -> None:
    sections = data.get("linker_sections", [])
    if not isinstance(sections, list):
        raise NanodetError(f"{where}: [[linker_sections]] must be an array of tables")
    # Only the mcux families write the linker file (templates/mcux-common/nd_linker.cmake.j2).
    unplaced = [f for f in data.get("families", [data["family"]]) if "mcux-common" not in FAMILIES[f].shared]
    if sections and unplaced:
        raise NanodetError(f"{where}: [[linker_sections]] need an MCUXpresso family; {unplaced[0]} has its own "
                           "linker script")
    seen = {".nd_arena"}  # the arena's own output section
    for i, s in enumerate(sections):
        _check_table(f"{where} [[linker_sections]] #{i + 1}", s, _REQUIRED["linker_sections"])
        name = s["name"]
        if not name.startswith(".nd_") or not name[1:].isidentifier() or name in seen:
            raise NanodetError(f"{where} [[linker_sections]] {name}: the name must be a new '.nd_<identifier>'")
        seen.add(name)
        if s["load"] not in SECTION_LOADS:
            raise NanodetError(f"{where} [[linker_sections]] {name}: load must be one of {SECTION_LOADS}")
        if not s["inputs"] or not all(isinstance(p, str) and p for p in s["inputs"]):
            raise NanodetError(f"{where} [[linker_sections]] {name}: inputs must be non-empty strings")
        if not set(s.get("engines", ENGINES)) <= set(ENGINES):
            raise NanodetError(f"{where} [[linker_sections]] {name}: engines must be among {ENGINES}")


def _check_aot(data: dict, where: str) -> None:
    if "aot" not in data:
        return
    aot = data["aot"]
    _check_table(f"{where} [aot]", aot, _REQUIRED["aot"])
    sections = {s["name"]: s for s in data.get("linker_sections", []) if "aot" in s.get("engines", ENGINES)}
    memory = {m["linker_region"] for m in data["memory"]}
    for name in [aot["code_section"], *aot["const_sections"]]:
        s = sections.get(name)
        if s is None:
            raise NanodetError(f"{where} [aot]: {name!r} is no [[linker_sections]] entry of the aot engine")
        if s["load"] != "copy":
            raise NanodetError(f"{where} [aot]: {name} must be a load = \"copy\" section (it holds code or data)")
        if not any(fnmatch.fnmatchcase(name, p) for p in s["inputs"]):
            raise NanodetError(f"{where} [aot]: {name}'s inputs must take the input section {name} (the generated "
                               "code puts it there)")
    for name in aot["const_sections"]:
        if sections[name]["region"] not in memory:
            raise NanodetError(f"{where} [aot]: const section {name} is placed in {sections[name]['region']}, which "
                               "no [[memory]] region describes (its size decides whether the constants fit)")


@cache
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
