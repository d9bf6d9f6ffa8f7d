"""Where the tensor arena goes: the fastest memory region of the board that holds it."""
from __future__ import annotations

from dataclasses import dataclass

from nanodet_mcu.boards import MemoryRegion
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
    """Where the AOT engine's constant arrays live at run time: a RAM region (copied from flash at start-up) or
    None (read in place from flash)."""
    region: MemoryRegion | None
    const_bytes: int
    tried: tuple[tuple[str, int], ...]  # (region, bytes free there after the arena) of each candidate, in order

    def describe(self) -> str:
        if self.region is not None:
            r = self.region
            return (f"model constants {self.const_bytes} bytes ({self.const_bytes / 1024:.1f} KiB) in {r.name} "
                    f"({r.linker_region}), copied from flash at start-up")
        room = ", ".join(f"{name} {free // 1024} KiB free" for name, free in self.tried) or "no RAM candidate"
        return f"model constants {self.const_bytes} bytes ({self.const_bytes / 1024:.1f} KiB) in flash ({room})"


def place_constants(const_bytes: int, candidates: list[str], regions: list[MemoryRegion],
                    arena: Placement) -> ConstPlacement:
    """The first candidate region (by name, in the board's order) with room for the constants besides the arena."""
    by_name = {r.name: r for r in regions}
    tried = []
    for name in candidates:
        region = by_name[name]
        free = region.available - (arena.arena_bytes + 16 if region.name == arena.region.name else 0)  # + its ALIGN(16)
        tried.append((name, free))
        if const_bytes <= free:
            return ConstPlacement(region, const_bytes, tuple(tried))
    return ConstPlacement(None, const_bytes, tuple(tried))
