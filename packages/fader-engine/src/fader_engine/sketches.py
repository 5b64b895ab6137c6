"""How many distinct contexts saw a flag: a HyperLogLog sketch that SDKs and the server share.

Why a sketch: counting distinct users exactly needs memory that grows with the users, and the
counts of two SDK instances (or two minutes) cannot be added, since the same user may be in
both. A HyperLogLog sketch has a fixed size (1,024 one-byte registers here) and merges by taking
the larger register, so summaries from any number of processes, intervals and replicas combine
into one estimate, and merging the same summary twice changes nothing.

Why here: the SDK builds sketches and the server merges and reads them, and the engine is the
only package both depend on. Nothing here does I/O or reads a clock.

Accuracy: with m = 1,024 registers the relative standard error is 1.04 / sqrt(m) = 3.25%; up to
about 2.5 m = 2,560 distinct keys the estimate uses linear counting over empty registers, which
is far more precise there (exact to within a few keys up to a few hundred). The hash is
MurmurHash3 x64-128 (its low 64 bits) of the key's UTF-8 bytes with a fixed seed, so every SDK
in every language can produce compatible registers.
"""

from __future__ import annotations

import base64
import binascii
import math
import zlib
from collections.abc import Iterable

import mmh3

from fader_engine.errors import SketchError

__all__ = [
    "HASH_SEED",
    "PRECISION",
    "REGISTERS",
    "RELATIVE_STANDARD_ERROR",
    "DistinctSketch",
    "SketchError",
    "key_hash",
]

PRECISION = 10
REGISTERS = 1 << PRECISION
_SUFFIX_BITS = 64 - PRECISION
_SUFFIX_MASK = (1 << _SUFFIX_BITS) - 1
_LOW_64 = (1 << 64) - 1
_MAX_RANK = _SUFFIX_BITS + 1
_VALID_RANKS = bytes(range(_MAX_RANK + 1))
HASH_SEED = 0x46414452  # "FADR"
RELATIVE_STANDARD_ERROR = 1.04 / math.sqrt(REGISTERS)
_ALPHA = 0.7213 / (1 + 1.079 / REGISTERS)
_LANE_TOPS = int.from_bytes(b"\x80" * REGISTERS, "big")
_ALL_LANES = (1 << (8 * REGISTERS)) - 1
_MAX_ENCODED = 4 * REGISTERS  # a compressed sketch is never near this; anything longer is junk


def key_hash(key: str) -> int:
    """The 64-bit hash a key is counted by (unsigned)."""
    # The low 64 bits of the 128-bit digest: the same number as mmh3.hash64(...)[0], without
    # the tuple (this runs on an SDK's evaluation path).
    digest: int = mmh3.mmh3_x64_128_uintdigest(key.encode("utf-8", "surrogatepass"), HASH_SEED)
    return digest & _LOW_64


class DistinctSketch:
    """A HyperLogLog sketch of 1,024 registers: add keys or hashes, merge, estimate."""

    __slots__ = ("registers",)

    def __init__(self, registers: bytes | bytearray | None = None) -> None:
        if registers is None:
            self.registers = bytearray(REGISTERS)
            return
        # translate() deletes every valid rank: anything left is out of range (a C loop,
        # ~100x faster than max() over 1,024 bytes; a server validates thousands of these)
        if len(registers) != REGISTERS or registers.translate(None, _VALID_RANKS):
            raise SketchError(f"a sketch has {REGISTERS} registers each at most {_MAX_RANK}")
        self.registers = bytearray(registers)

    def add(self, key: str) -> None:
        # add_hash(key_hash(key)) inlined: SDKs call this on the evaluation path.
        digest: int = mmh3.mmh3_x64_128_uintdigest(key.encode("utf-8", "surrogatepass"), HASH_SEED)
        hashed = digest & _LOW_64
        index = hashed >> _SUFFIX_BITS
        rank = _SUFFIX_BITS - (hashed & _SUFFIX_MASK).bit_length() + 1
        registers = self.registers
        registers[index] = max(registers[index], rank)

    def add_hash(self, hashed: int) -> None:
        index = hashed >> _SUFFIX_BITS
        rank = _SUFFIX_BITS - (hashed & _SUFFIX_MASK).bit_length() + 1
        self.registers[index] = max(self.registers[index], rank)

    def update(self, keys: Iterable[str]) -> DistinctSketch:
        for key in keys:
            self.add(key)
        return self

    def merge(self, other: DistinctSketch) -> DistinctSketch:
        """Make this sketch count the keys of both (in place); returns it."""
        # All 1,024 registers at once, as lanes of one 8,192-bit integer: no rank reaches 128,
        # so per lane 128 + mine - theirs never borrows from the next lane, and its top bit
        # says whether mine is the larger. About thirty times faster than a Python loop.
        mine = int.from_bytes(self.registers, "big")
        theirs = int.from_bytes(other.registers, "big")
        keep_mine = ((((mine | _LANE_TOPS) - theirs) & _LANE_TOPS) >> 7) * 0xFF
        merged = (mine & keep_mine) | (theirs & (keep_mine ^ _ALL_LANES))
        self.registers = bytearray(merged.to_bytes(REGISTERS, "big"))
        return self

    @property
    def empty(self) -> bool:
        return not any(self.registers)

    def estimate(self) -> int:
        """The estimated number of distinct keys added (0 for an empty sketch)."""
        zeros = self.registers.count(0)
        if zeros == REGISTERS:
            return 0
        raw = _ALPHA * REGISTERS * REGISTERS / sum(2.0**-rank for rank in self.registers)
        if raw <= 2.5 * REGISTERS and zeros:
            return round(REGISTERS * math.log(REGISTERS / zeros))
        return round(raw)

    def to_bytes(self) -> bytes:
        """The registers, zlib-compressed at level 1 (a sketch of few keys is mostly zeros: about
        a hundred bytes; a full one about 500). Higher levels save a few percent and cost two
        to four times the CPU, paid by the server for every hour row a summary touches."""
        return zlib.compress(bytes(self.registers), 1)

    @classmethod
    def from_bytes(cls, data: bytes) -> DistinctSketch:
        if len(data) > _MAX_ENCODED:
            raise SketchError("a compressed sketch is at most a few KiB")
        try:
            decompressor = zlib.decompressobj()
            registers = decompressor.decompress(data, REGISTERS + 1)
        except zlib.error as error:
            raise SketchError(f"not a zlib-compressed sketch ({error})") from None
        if decompressor.unconsumed_tail or not decompressor.eof:
            raise SketchError(f"a sketch decompresses to exactly {REGISTERS} bytes")
        if decompressor.unused_data:
            raise SketchError("a compressed sketch has nothing after its zlib stream")
        return cls(registers)

    def encode(self) -> str:
        """For JSON: base64 of :meth:`to_bytes`."""
        return base64.b64encode(self.to_bytes()).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> DistinctSketch:
        if len(text) > _MAX_ENCODED * 4 // 3 + 4:
            raise SketchError("a compressed sketch is at most a few KiB")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise SketchError("a sketch is base64 text") from None
        return cls.from_bytes(data)
