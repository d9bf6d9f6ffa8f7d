"""Board files: every shipped board loads and validates; the facts the firmware depends on are right."""
from __future__ import annotations

import copy
import dataclasses

import pytest

from nanodet_mcu import FIRMWARE_DIR, boards
from nanodet_mcu.codegen.placement import place_arena
from nanodet_mcu.errors import NanodetError


def test_known_boards():
    assert boards.names() == ["mps2-an500", "rt1050", "rt1170"]


@pytest.mark.parametrize("name", ["mps2-an500", "rt1050", "rt1170"])
def test_board_loads_with_a_layer(name):
    board = boards.load(name)
    assert board.name == name
    assert board.layer_dir.is_dir(), f"board layer {board.layer_dir} missing"
    assert board.default_engine in board.engines
    ranks = [r.speed_rank for r in board.memory]
    assert ranks == sorted(ranks)


def test_board_facts():
    rt1170, rt1050, qemu = boards.load("rt1170"), boards.load("rt1050"), boards.load("mps2-an500")
    assert (rt1170.clock_hz, rt1050.clock_hz, qemu.clock_hz) == (996_000_000, 600_000_000, 25_000_000)
    assert (rt1170.default_engine, rt1050.default_engine, qemu.default_engine) == ("tflm", "tflm", "aot")
    assert rt1170.data["timer"] == {"kind": "dwt-cycles", "units_per_tick": 1}
    assert qemu.data["timer"] == {"kind": "systick-instructions", "units_per_tick": 40}
    assert rt1170.data["sdk"]["boards"] == ["evkmimxrt1170", "evkbmimxrt1170"]
    assert rt1050.data["sdk"]["boards"] == ["evkbimxrt1050"]
    assert rt1170.data["sdk"]["linker_script"].endswith("MIMXRT1176xxxxx_cm7_flexspi_nor_sdram.ld")
    assert {r.name: r.linker_region for r in rt1170.memory} == {"DTCM": "m_data2", "OCRAM1+2": "nd_ocram",
                                                                 "SDRAM": "m_data"}
    assert [r.define_region for r in rt1170.memory] == [False, True, False]
    # The current MCUXpresso SDK (west mcuxsdk layout) by default, the classic 2.x one on request; mps2 needs none.
    assert (rt1170.family, rt1170.families) == ("mcuxsdk", ["mcuxsdk", "mcux-armgcc"])
    assert rt1050.families == ["mcuxsdk", "mcux-armgcc"] and qemu.families == ["gcc-make"]
    assert rt1170.data["mcuxsdk"]["boards"] == ["evkbmimxrt1170"] and rt1170.data["mcuxsdk"]["core_id"] == "cm7"
    assert rt1050.data["mcuxsdk"]["boards"] == ["evkbimxrt1050"] and rt1050.data["mcuxsdk"]["core_id"] == ""
    assert rt1170.data["mcuxsdk"]["device_dir"] == "devices/RT/RT1170/MIMXRT1176"
    assert rt1050.data["mcuxsdk"]["device_dir"] == "devices/RT/RT1050/MIMXRT1052"
    for b in (rt1170, rt1050):  # both layouts link with the device's flexspi_nor_sdram file, whose regions [[memory]]
        assert b.data["mcuxsdk"]["build_config"] == b.data["sdk"]["build_config"] == "flexspi_nor_sdram_release"
    for b in (rt1170, rt1050):
        assert b.data["uart"]["name"] == "LPUART1" and b.data["uart"]["baud"] == 115200
    assert (FIRMWARE_DIR / "mps2-an500" / qemu.data["build"]["linker_script"]).is_file()


def test_sdk_picks_the_family():
    rt1050, qemu = boards.load("rt1050"), boards.load("mps2-an500")
    assert rt1050.family_for(None).name == rt1050.family_for("mcuxsdk").name == "mcuxsdk"
    assert rt1050.family_for("classic").name == "mcux-armgcc"
    assert rt1050.sdk_table("mcux-armgcc") is rt1050.data["sdk"]
    assert rt1050.sdk_table("mcuxsdk") is rt1050.data["mcuxsdk"]
    assert boards.SDKS == ("mcuxsdk", "classic")
    with pytest.raises(NanodetError, match="builds without an MCUXpresso SDK"):
        qemu.family_for("mcuxsdk")
    only_classic = boards.Board("rt1050", dict(rt1050.data, family="mcux-armgcc", families=["mcux-armgcc"]))
    with pytest.raises(NanodetError, match="has no 'mcuxsdk' project; --sdk classic"):
        only_classic.family_for("mcuxsdk")


def test_family_tables_are_validated():
    data = copy.deepcopy(boards.load("rt1170").data)
    del data["mcuxsdk"]["core_id"]
    with pytest.raises(NanodetError, match=r"\[mcuxsdk\]: missing key 'core_id'"):
        boards.validate(data, "x.toml")
    data = copy.deepcopy(boards.load("rt1170").data)
    del data["mcuxsdk"]
    with pytest.raises(NanodetError, match=r"family mcuxsdk needs a \[mcuxsdk\] table"):
        boards.validate(data, "x.toml")
    data = copy.deepcopy(boards.load("rt1170").data)
    data["families"] = ["mcux-armgcc"]
    with pytest.raises(NanodetError, match="'families' must be a list that includes family 'mcuxsdk'"):
        boards.validate(data, "x.toml")


@pytest.mark.parametrize("change, message", [
    ({"name": "nd_x"}, "must be a new '.nd_<identifier>'"),
    ({"name": ".nd_arena"}, "must be a new '.nd_<identifier>'"),
    ({"load": "zero"}, "load must be one of"),
    ({"inputs": []}, "inputs must be non-empty strings"),
    ({"engines": ["glow"]}, "engines must be among"),
])
def test_linker_sections_are_validated(change, message):
    data = copy.deepcopy(boards.load("rt1050").data)
    del data["aot"]  # it names the board's own sections
    good = {"name": ".nd_itcm_text", "inputs": [".nd_itcm_text*"], "region": "m_qacode", "load": "copy"}
    data["linker_sections"] = [good]
    boards.validate(data, "x.toml")
    assert boards.Board("rt1050", data).linker_sections("aot") == [good]
    data["linker_sections"] = [{**good, **change}]
    with pytest.raises(NanodetError, match=message):
        boards.validate(data, "x.toml")
    qemu = copy.deepcopy(boards.load("mps2-an500").data)
    qemu["linker_sections"] = [good]
    with pytest.raises(NanodetError, match="need an MCUXpresso family; gcc-make has its own linker script"):
        boards.validate(qemu, "x.toml")


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(NanodetError, match="unknown board 'rt9999'.*mps2-an500"):
        boards.load("rt9999")


def test_validation_names_the_problem():
    data = copy.deepcopy(boards.load("rt1170").data)
    del data["memory"][0]["speed_rank"]
    with pytest.raises(NanodetError, match="missing key 'speed_rank'"):
        boards.validate(data, "x.toml")
    data = copy.deepcopy(boards.load("rt1170").data)
    data["core"]["clock_hz"] = "fast"
    with pytest.raises(NanodetError, match="'clock_hz' must be int"):
        boards.validate(data, "x.toml")
    data = copy.deepcopy(boards.load("mps2-an500").data)
    data["family"] = "iar"
    with pytest.raises(NanodetError, match="unknown family 'iar'"):
        boards.validate(data, "x.toml")
    data = copy.deepcopy(boards.load("mps2-an500").data)
    data["default_engine"] = "glow"
    with pytest.raises(NanodetError, match="engines"):
        boards.validate(data, "x.toml")
    data = copy.deepcopy(boards.load("rt1170").data)
    del data["aot"]["code_section"]
    with pytest.raises(NanodetError, match="missing key 'code_section'"):
        boards.validate(data, "x.toml")


@pytest.mark.parametrize("change, message", [
    (lambda d: d["aot"].update(code_section=".nd_fast"), r"'.nd_fast' is no \[\[linker_sections\]\] entry of the aot"),
    (lambda d: d["linker_sections"][1].update(engines=["tflm"]), "'.nd_const' is no .* entry of the aot engine"),
    (lambda d: d["linker_sections"][0].update(load="noload"), r'.nd_itcm_text must be a load = "copy" section'),
    (lambda d: d["linker_sections"][1].update(inputs=[".rodata*"]), "must take the input section .nd_const"),
    (lambda d: d["linker_sections"][1].update(region="m_qacode"), "placed in m_qacode, which no \\[\\[memory\\]\\]"),
])
def test_aot_placement_is_validated(change, message):
    data = copy.deepcopy(boards.load("rt1170").data)
    change(data)
    with pytest.raises(NanodetError, match=message):
        boards.validate(data, "x.toml")


def test_aot_placement_data():
    """Both RT boards: the fast kernels in ITCM and the constants' candidate in on-chip RAM, all [[linker_sections]]
    (copied by the board layer); the emulated board has no placement."""
    rt1170, rt1050, qemu = boards.load("rt1170"), boards.load("rt1050"), boards.load("mps2-an500")
    for b, const_region in ((rt1170, "nd_ocram"), (rt1050, "m_data3")):
        assert b.aot == {"code_section": ".nd_itcm_text", "const_sections": [".nd_const"]}
        code, const = b.linker_section(".nd_itcm_text"), b.linker_section(".nd_const")
        assert (code["region"], const["region"]) == ("m_qacode", const_region)
        assert b.region_name("m_qacode") == "ITCM" and b.linker_sections("tflm") == []
    assert rt1170.region_name("nd_ocram") == "OCRAM1+2" and rt1050.region_name("m_data3") == "OCRAM"
    assert qemu.aot is None


# Arena placement: the fastest region whose free space holds the arena; loud when it is external.  The RT DTCM
# sizes follow the FlexRAM splits (RT1050 384 KB, RT1170 448 KB; 8 KB reserved in each).
@pytest.mark.parametrize("board,arena,region,warned", [
    ("rt1170", 100_000, "DTCM", False),
    ("rt1170", 319_664, "DTCM", False),  # AOT arena of the NXP model (and of ours)
    ("rt1170", 450_560, "DTCM", False),  # exactly DTCM's free space
    ("rt1170", 450_561, "OCRAM1+2", False),
    ("rt1170", 1_048_577, "SDRAM", True),
    ("rt1170", 1_326_720, "SDRAM", True),  # TFLM arena of the NXP model
    ("rt1050", 100_000, "DTCM", False),
    ("rt1050", 319_664, "DTCM", False),  # AOT arena of the NXP model
    ("rt1050", 385_024, "DTCM", False),  # exactly DTCM's free space
    ("rt1050", 385_025, "SDRAM", True),  # too big for DTCM, and for the 64 KB of FlexRAM OCRAM left
    ("rt1050", 1_326_720, "SDRAM", True),  # TFLM arena of the NXP model
    ("mps2-an500", 1_326_720, "SSRAM2/3", False),
])
def test_arena_placement(board, arena, region, warned):
    b = boards.load(board)
    p = place_arena(arena, b.memory, board)
    assert p.region.name == region
    assert (p.warning is not None) == warned
    if warned:
        assert "does not fit in on-chip RAM" in p.warning and "SDRAM" in p.warning
        assert [r.name for r in p.skipped] == [r.name for r in b.memory if not r.external]


def test_arena_too_big_for_every_region():
    with pytest.raises(NanodetError, match="fits in no memory region of mps2-an500"):
        place_arena(5 * 1024 * 1024, boards.load("mps2-an500").memory, "mps2-an500")


def _decode_banks(word: int, banks: int) -> list[str]:
    return [{0: "-", 1: "ocram", 2: "dtcm", 3: "itcm"}[(word >> (2 * i)) & 3] for i in range(banks)]


@pytest.mark.parametrize("name,itcm,dtcm,ocram,registers", [
    ("rt1050", 2, 12, 2, {"GPR17": 0xFAAAAAA5}),
    ("rt1170", 2, 14, 0, {"GPR17": 0xAAAA, "GPR18": 0xFAAA}),
])
def test_flexram_split(name, itcm, dtcm, ocram, registers):
    b = boards.load(name)
    f = b.flexram
    assert (f.banks, f.bank_bytes) == (16, 32 * 1024)
    assert (f.itcm_banks, f.dtcm_banks, f.ocram_banks) == (itcm, dtcm, ocram)
    assert f.register_values == registers
    kinds = _decode_banks(f.bank_cfg, f.banks)
    assert [kinds.count(k) for k in ("itcm", "dtcm", "ocram")] == [itcm, dtcm, ocram]
    # The [[memory]] sizes are derived from the split, never written twice.
    dtcm_region = next(r for r in b.memory if r.name == "DTCM")
    assert "size" not in next(m for m in b.data["memory"] if m["name"] == "DTCM")
    assert dtcm_region.size == dtcm * 32 * 1024 and dtcm_region.address == 0x20000000
    resized = {region: (origin, length) for region, origin, length in b.resized_linker_regions}
    assert resized["m_qacode"] == (0, itcm * 32 * 1024) and resized["m_data2"] == (0x20000000, dtcm * 32 * 1024)
    if ocram:
        assert resized["m_data3"] == (0x20200000, ocram * 32 * 1024)
    else:
        assert "m_data3" not in resized  # the RT1170's m_data3 is OCRAM2, not FlexRAM


@pytest.mark.parametrize("dtcm_banks,code", [(0, 0), (1, 6), (2, 7), (3, 8), (4, 8), (8, 9), (12, 10), (16, 10)])
def test_tcm_size_code_is_the_power_of_two_window(dtcm_banks, code):
    f = dataclasses.replace(boards.load("rt1050").flexram, dtcm_banks=dtcm_banks, itcm_banks=0, ocram_banks=0)
    assert f.tcm_size_code("dtcm") == code  # GPR14 encoding: window = 2^(code-1) KB, 0 = no TCM
    if code:
        assert 2 ** (code - 1) * 1024 >= f.bytes("dtcm") > 2 ** (code - 2) * 1024


def test_flexram_validation():
    data = copy.deepcopy(boards.load("rt1050").data)
    data["flexram"]["dtcm_banks"] = 13
    with pytest.raises(NanodetError, match="17 banks allocated, the FlexRAM has 16"):
        boards.validate(data, "x.toml")
    data = copy.deepcopy(boards.load("rt1050").data)
    data["memory"][0]["size"] = 131072
    with pytest.raises(NanodetError, match="DTCM: give either size or flexram"):
        boards.validate(data, "x.toml")
    data = copy.deepcopy(boards.load("rt1050").data)
    del data["flexram"]
    with pytest.raises(NanodetError, match="needs a \\[flexram\\] table"):
        boards.validate(data, "x.toml")
