"""Static memory plan: every activation buffer gets a fixed offset in one arena.

Buffers (tensors and per-step scratch) live from the step that writes them first to the step that reads them last
(the model input from before the first step, outputs to the end).  Placement is greedy, each buffer at the lowest
offset where it overlaps no buffer alive at the same time, tried in a few orders (largest first, earliest first,
longest-lived first, largest size x lifetime first) keeping the smallest arena.  A step may write its output over
an input it consumes last (same offset) when the lowering marked the pair safe: element-wise ops, and the row-
streamed conv + max pool whose pooled rows only land on input rows already read.
"""
from __future__ import annotations

from dataclasses import dataclass

from nanodet_mcu.codegen.aot.lower import Program

ALIGN = 16


@dataclass
class Buffer:
    root: int
    size: int
    first: int
    last: int


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan(prog: Program) -> tuple[dict[int, int], int]:
    """-> (root tensor -> byte offset, arena bytes)."""
    def root(ti):
        return prog.alias.get(ti, (ti, 0))[0]

    bufs: dict[int, Buffer] = {r: Buffer(r, size, 1 << 30, -1) for r, size in prog.sizes.items()}
    for i, s in enumerate(prog.steps):
        for ti in s.reads + s.writes:
            b = bufs[root(ti)]
            b.first, b.last = min(b.first, i), max(b.last, i)
    for ti in prog.inputs:
        bufs[root(ti)].first = -1
    for ti in prog.outputs:
        bufs[root(ti)].last = len(prog.steps)
    for b in bufs.values():
        if b.last < b.first:
            b.first, b.last = min(b.first, b.last), max(b.first, b.last)
    shareable: set[tuple[int, int]] = set()
    for i, s in enumerate(prog.steps):
        for a, o in s.inplace_ok:
            ra, ro = root(a), root(o)
            if ra != ro and bufs[ra].last == i and bufs[ro].first == i and bufs[ro].size <= bufs[ra].size:
                shareable.add((ra, ro))
                shareable.add((ro, ra))

    # Greedy placement is order-sensitive: try a few orders and keep the smallest arena.
    orders = [lambda b: (-b.size, b.first), lambda b: (b.first, -b.size), lambda b: (-(b.last - b.first), -b.size),
              lambda b: (-b.size * (b.last - b.first + 1), b.first)]
    best = None
    for key in orders:
        offsets, arena = _place(sorted(bufs.values(), key=key), shareable)
        if best is None or arena < best[1]:
            best = (offsets, arena)
    return best


def _place(order: list[Buffer], shareable: set[tuple[int, int]]) -> tuple[dict[int, int], int]:
    placed: list[tuple[Buffer, int]] = []
    for b in order:
        live = [(p, off) for p, off in placed if p.first <= b.last and b.first <= p.last]
        candidates = sorted({0, *(_align(off + p.size) for p, off in live),
                             *(off for p, off in live if (p.root, b.root) in shareable)})
        for cand in candidates:
            ok = True
            for p, off in live:
                if cand < off + p.size and off < cand + b.size:
                    if (p.root, b.root) in shareable and off == cand:
                        continue
                    ok = False
                    break
            if ok:
                placed.append((b, cand))
                break
    arena = _align(max((off + b.size for b, off in placed), default=0))
    return {b.root: off for b, off in placed}, arena
