"""The distinct-context sketch: merging, encoding, accuracy, and refusing what is not a sketch."""

from __future__ import annotations

import base64
import random
import zlib

import mmh3
import pytest

from fader_engine.sketches import (
    HASH_SEED,
    REGISTERS,
    RELATIVE_STANDARD_ERROR,
    DistinctSketch,
    SketchError,
    key_hash,
)


def sketch_of(*keys: str) -> DistinctSketch:
    return DistinctSketch().update(keys)


def copy(sketch: DistinctSketch) -> DistinctSketch:
    return DistinctSketch(bytes(sketch.registers))


def test_the_hash_is_murmur3_x64_128_low_64_bits_with_fadr_seed() -> None:
    """Pinned values: another SDK must compute the same (docs/events.md, section 2)."""
    assert HASH_SEED == 0x46414452
    assert key_hash("") == 0x59BCAF6AA6DD797E
    assert key_hash("user-42") == 0x7834077ACE5B7290
    for key in ("user-42", "é", "\U0001f600", "x" * 300):
        full = mmh3.hash128(key.encode(), HASH_SEED, x64arch=True, signed=False)
        assert key_hash(key) == full & (2**64 - 1)


def test_add_and_add_hash_agree() -> None:
    by_key, by_hash = DistinctSketch(), DistinctSketch()
    for i in range(500):
        by_key.add(f"u-{i}")
        by_hash.add_hash(key_hash(f"u-{i}"))
    assert by_key.registers == by_hash.registers


def test_merge_is_a_union_idempotent_and_commutative() -> None:
    rng = random.Random(3)
    a = sketch_of(*(f"a-{rng.random()}" for _ in range(3000)))
    b = sketch_of(*(f"b-{rng.random()}" for _ in range(700)))
    ab, ba = copy(a).merge(b), copy(b).merge(a)
    assert ab.registers == ba.registers
    assert copy(ab).merge(b).registers == ab.registers  # merging again changes nothing
    assert copy(ab).merge(ab).registers == ab.registers
    union = DistinctSketch()
    for sketch in (a, b):
        union.merge(sketch)
    assert union.registers == ab.registers
    both = DistinctSketch().update(f"k-{i}" for i in range(100))
    assert copy(both).merge(sketch_of(*(f"k-{i}" for i in range(50)))).registers == (both.registers)


def test_encode_decode_round_trip() -> None:
    for sketch in (DistinctSketch(), sketch_of("u-1"), sketch_of(*(str(i) for i in range(10**4)))):
        text = sketch.encode()
        assert DistinctSketch.decode(text).registers == sketch.registers
        assert DistinctSketch.from_bytes(sketch.to_bytes()).registers == sketch.registers
    assert len(DistinctSketch().encode()) < 40  # an empty sketch is a few bytes
    assert len(sketch_of(*(str(i) for i in range(10**5))).to_bytes()) < REGISTERS


def test_small_counts_are_close_to_exact() -> None:
    assert DistinctSketch().estimate() == 0
    assert DistinctSketch().empty
    assert not sketch_of("u").empty
    for n in (1, 2, 10):
        assert sketch_of(*(f"user-{i}" for i in range(n))).estimate() == n
    # linear counting: the standard deviation at 100 keys is about 2.2 keys
    assert abs(sketch_of(*(f"user-{i}" for i in range(100))).estimate() - 100) <= 7
    for n in (300, 1000):
        estimate = sketch_of(*(f"user-{i}" for i in range(n))).estimate()
        assert abs(estimate / n - 1) <= 3 * RELATIVE_STANDARD_ERROR


def test_large_counts_err_as_documented() -> None:
    errors = []
    for seed in range(10):
        rng = random.Random(seed)
        n = rng.randrange(5_000, 50_000)
        estimate = sketch_of(*(f"{seed}:{i}" for i in range(n))).estimate()
        errors.append(abs(estimate / n - 1))
    assert sum(errors) / len(errors) <= RELATIVE_STANDARD_ERROR, errors
    assert max(errors) <= 4 * RELATIVE_STANDARD_ERROR, errors


@pytest.mark.parametrize(
    "text",
    [
        "not base64!",
        "QUJD\n",  # whitespace is not base64 here
        "é",
        base64.b64encode(b"not zlib").decode(),
        "A" * 10_000,  # longer than any sketch
    ],
)
def test_text_that_is_not_a_sketch_is_refused(text: str) -> None:
    with pytest.raises(SketchError):
        DistinctSketch.decode(text)


def test_zlib_bombs_and_wrong_sizes_are_refused() -> None:
    bomb = zlib.compress(bytes(50 * 2**20), 9)  # 50 MiB of zeros in about 50 KiB
    with pytest.raises(SketchError):
        DistinctSketch.from_bytes(bomb)
    small_bomb = zlib.compress(bytes(2**20), 9)  # 1 MiB in about 1 KiB: under the size cap
    assert len(small_bomb) < 4 * REGISTERS
    with pytest.raises(SketchError, match="exactly"):
        DistinctSketch.from_bytes(small_bomb)
    for size in (0, REGISTERS - 1, REGISTERS + 1):
        with pytest.raises(SketchError):
            DistinctSketch.from_bytes(zlib.compress(bytes(size)))
    with pytest.raises(SketchError):
        DistinctSketch.from_bytes(zlib.compress(bytes(REGISTERS))[:-3])  # truncated
    with pytest.raises(SketchError):
        DistinctSketch.from_bytes(zlib.compress(bytes(REGISTERS)) + b"junk")  # trailing data
    with pytest.raises(SketchError):
        DistinctSketch(bytes(REGISTERS - 1))


def test_ranks_higher_than_a_64_bit_hash_can_give_are_refused() -> None:
    highest = bytearray(REGISTERS)
    highest[7] = 55  # 54 zero bits, then rank 55: possible
    assert DistinctSketch.from_bytes(zlib.compress(bytes(highest))).registers == highest
    highest[7] = 56
    with pytest.raises(SketchError):
        DistinctSketch.from_bytes(zlib.compress(bytes(highest)))
    with pytest.raises(SketchError):
        DistinctSketch(bytes([255]) * REGISTERS)
