"""The union of many stored distinct-context sketches, fast enough for a 90-day view.

A usage view merges one hour sketch per variant and key kind for every hour of its period:
4,320 sketches for two variants over 90 days. Merging register by register in a Python loop
(:meth:`fader_engine.sketches.DistinctSketch.merge`) costs about half a millisecond a sketch,
seconds for such a view. Here the 1,024 one-byte registers are held as one 8,192-bit integer
and two sketches merge in a handful of big-integer operations (SIMD within a register: every
byte is a lane, and no rank reaches 128, so a lane's top bit is free to carry the comparison),
about thirty times faster. The result is exactly the engine's: the larger register wins.

Both stores' reads use it (:mod:`fader_server.storage.sql.usage_reads` and
:mod:`fader_server.storage.memory.usage_reads`); nothing here does I/O.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable

from fader_engine.sketches import PRECISION, REGISTERS, DistinctSketch
from fader_server.storage.ports.usage import DistinctContexts

MAX_RANK = 64 - PRECISION + 1
"""The largest rank a register holds (the leading zeros of 54 bits, plus one)."""
_BITS = 8 * REGISTERS
_TOP = int.from_bytes(b"\x80" * REGISTERS, "big")
"""The top bit of every lane."""
_ALL = (1 << _BITS) - 1
_MAX_ENCODED = 4 * REGISTERS
_RANKS = bytes(range(MAX_RANK + 1))


def registers(encoded: bytes) -> bytes | None:
    """The registers of a compressed sketch as stored, or None when it is not one (a row
    written by a broken or hostile client is skipped, never a failed view)."""
    if len(encoded) > _MAX_ENCODED:
        return None
    try:
        decompressor = zlib.decompressobj()
        found = decompressor.decompress(encoded, REGISTERS + 1)
    except zlib.error:
        return None
    if (
        len(found) != REGISTERS
        or decompressor.unconsumed_tail
        or decompressor.unused_data
        or not decompressor.eof
        or found.translate(None, _RANKS)  # what is left once every valid rank is deleted
    ):
        return None
    return found


class SketchUnion:
    """The union of the sketches added: :meth:`add` stored ones, :meth:`update` other unions."""

    __slots__ = ("_lanes",)

    def __init__(self) -> None:
        self._lanes = 0

    def add(self, encoded: bytes) -> bool:
        """Merge in a compressed sketch; False (and nothing merged) if it is not one."""
        found = registers(encoded)
        if found is None:
            return False
        self._merge(int.from_bytes(found, "big"))
        return True

    def update(self, other: SketchUnion) -> SketchUnion:
        self._merge(other._lanes)
        return self

    def _merge(self, lanes: int) -> None:
        mine = self._lanes
        # per lane 128 + mine - theirs: its top bit is set exactly where mine >= theirs
        keep_mine = (((mine | _TOP) - lanes) & _TOP) >> 7
        keep_mine *= 0xFF  # 0xFF in the lanes where mine wins, 0x00 elsewhere (no carries)
        self._lanes = (mine & keep_mine) | (lanes & (keep_mine ^ _ALL))

    def sketch(self) -> DistinctSketch:
        """The union as the engine's sketch (all registers zero when nothing was added)."""
        return DistinctSketch(self._lanes.to_bytes(REGISTERS, "big"))

    def estimate(self) -> int:
        """The estimated number of distinct keys, exactly as the engine's sketch computes it."""
        return self.sketch().estimate()


def distinct_by_variant(rows: Iterable[tuple[str, bytes]]) -> DistinctContexts:
    """Distinct contexts per variant and across all, from (variant, stored sketch) rows: one
    union per variant as the rows stream in, then the variants' unions into one (what both
    stores' ``distinct_contexts`` return)."""
    merged: dict[str, SketchUnion] = defaultdict(SketchUnion)
    for variant, contexts in rows:
        merged[variant].add(contexts)  # a row that holds no sketch adds nothing
    every = SketchUnion()
    for union in merged.values():
        every.update(union)
    return DistinctContexts(
        every.estimate(), {variant: union.estimate() for variant, union in merged.items()}
    )
