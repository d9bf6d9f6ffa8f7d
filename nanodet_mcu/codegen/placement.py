"""Where the tensor arena goes (the fastest memory region of the board that holds it) and where the AOT engine's
constant arrays go (the first of the board's candidate sections with room)."""
from __future__ import annotations

from dataclasses import dataclass

from nanodet_mcu.boards import Board, MemoryRegion
from nanodet_mcu.errors import NanodetError


@dataclass(frozen=True)
class Placement:
    region: MemoryRegion
    arena_bytes: int
    skipped: tuple[MemoryRegion, ...]  # faster regions too small for the arena
    warning: str | None  # set when the arena falls back to external memory

    def describe(self) -> str:
        r = self.region
        return (f"tensor arena {self.arena_bytes} bytes ({self.arena_bytes / 1024:.1f} KiB) in {r.name} "
                f"({r.linker_region}, {r.available // 1024} KiB available)")


def place_arena(arena_bytes: int, regions: list[MemoryRegion], board: str = "board") -> Placement:
    """Pick the fastest region (lowest speed_rank, then the smallest that fits) whose free space holds the arena."""
    if arena_bytes <= 0:
        raise NanodetError(f"arena size must be positive, got {arena_bytes}")
    ordered = sorted(regions, key=lambda r: (r.speed_rank, r.available, r.name))
    skipped = []
    for region in ordered:
        if arena_bytes <= region.available:
            warning = None
            if region.external:
                too_small = ", ".join(f"{r.name} {r.available // 1024} KiB" for r in skipped) or "none on chip"
                warning = (f"WARNING: the {arena_bytes // 1024} KiB tensor arena does not fit in on-chip RAM "
                           f"({too_small}); it goes to external {region.name}, which is several times slower")
            return Placement(region, arena_bytes, tuple(skipped), warning)
        skipped.append(region)
    biggest = max(regions, key=lambda r: r.available)
    raise NanodetError(f"the {arena_bytes}-byte tensor arena fits in no memory region of {board} "
                       f"(largest: {biggest.name}, {biggest.available} bytes free)")


@dataclass(frozen=True)
class ConstPlacement:
    """Where the AOT engine's constant arrays live at run time: a board [[linker_sections]] copy section in a RAM
    region (filled from flash at start-up), or none (read in place from flash)."""
    section: dict | None  # the [[linker_sections]] entry taking the constants
    region: MemoryRegion | None  # the [[memory]] region it is placed in
    const_bytes: int
    tried: tuple[tuple[str, int], ...]  # (region, bytes free there after the arena) of each candidate, in order

    def describe(self) -> str:
        size = f"model constants {self.const_bytes} bytes ({self.const_bytes / 1024:.1f} KiB)"
        if self.region is not None:
            return (f"{size} in {self.region.name} ({self.section['name']} in {self.region.linker_region}), copied "
                    "from flash at start-up")
        room = ", ".join(f"{name} {free // 1024} KiB free" for name, free in self.tried) or "no RAM candidate"
        return f"{size} in flash ({room})"


def place_constants(const_bytes: int, candidates: list[dict], regions: list[MemoryRegion],
                    arena: Placement) -> ConstPlacement:
    """The first candidate section (board [aot] const_sections, in order) whose region has room for the constants
    besides the arena."""
    by_linker_name = {r.linker_region: r for r in regions}
    tried = []
    for section in candidates:
        region = by_linker_name[section["region"]]
        free = region.available - (arena.arena_bytes + 16 if region.name == arena.region.name else 0)  # + ALIGN(16)
        tried.append((region.name, free))
        if const_bytes <= free:
            return ConstPlacement(section, region, const_bytes, tuple(tried))
    return ConstPlacement(None, None, const_bytes, tuple(tried))


@dataclass(frozen=True)
class AotPlacement:
    """Where a board's [aot] table puts the AOT engine's hot parts, all through [[linker_sections]]: the fast kernels'
    code in its code section, the model's constants in the first const section with room (else they stay in flash,
    and the candidate sections are left out of the project)."""
    code: dict | None  # the [[linker_sections]] entry of the kernels' code; None: no [aot] placement
    code_memory: str = ""
    consts: ConstPlacement | None = None
    candidates: tuple[str, ...] = ()  # the const sections the board offers

    @property
    def const_section(self) -> str:
        return self.consts.section["name"] if self.consts is not None and self.consts.section else ""

    @property
    def dropped(self) -> set[str]:
        """Candidate const sections the project leaves out (no constants go there)."""
        return set(self.candidates) - {self.const_section}

    @property
    def defines(self) -> list[str]:
        """Compile definitions (C and assembly) that put the code and the constants into their sections."""
        out = [f"ND_KERNELS_CODE_SECTION={self.code['name']}"] if self.code else []
        return out + ([f"ND_MODEL_CONST_SECTION={self.const_section}"] if self.const_section else [])

    def lines(self) -> list[str]:
        if self.code is None:
            return []
        return [f"fast kernels' code in {self.code_memory} ({self.code['name']} in {self.code['region']}), copied "
                "from flash at start-up", self.consts.describe()]

    def manifest(self) -> dict:
        if self.code is None:
            return {}
        return {"code_section": self.code["name"], "code_memory": self.code_memory,
                "const_section": self.const_section,
                "const_region": self.consts.region.name if self.consts.region else "flash"}


NO_AOT_PLACEMENT = AotPlacement(None)


def aot_placement(board: Board, engine: str, arena: Placement, const_bytes: int) -> AotPlacement:
    """The board's [aot] placement for this project (nothing for the tflm engine or a board without [aot])."""
    aot = board.aot
    if engine != "aot" or aot is None:
        return NO_AOT_PLACEMENT
    code = board.linker_section(aot["code_section"])
    candidates = [board.linker_section(name) for name in aot["const_sections"]]
    consts = place_constants(const_bytes, candidates, board.memory, arena)
    return AotPlacement(code, board.region_name(code["region"]), consts, tuple(aot["const_sections"]))
