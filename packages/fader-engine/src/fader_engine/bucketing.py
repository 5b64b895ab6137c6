"""Deterministic percentage bucketing, identical to flagd's ``fractional`` operator.

Two algorithms exist because flagd's evaluators moved from one to the other:

* **v2** (Fader's default; flagd Go/JS evaluators): MurmurHash3-x86-32, seed 0, of the UTF-8
  seed *string*; ``bucket = (hash * total_weight) >> 32``. The shorthand seed is
  ``flag_key + targeting_key``.
* **v3**: the seed may be any JSON value; it is encoded as canonical CBOR (RFC 8949 core
  deterministic encoding, integral floats become integers, ``-0.0`` becomes ``0``) and then
  hashed the same way. The shorthand seed is the CBOR array ``[flag_key, targeting_key]``.
  Spec: flagd ``docs/architecture-decisions/fractional-non-string-rand-units.md``.

Both map a seed to an integer bucket in ``[0, total_weight)``; variants own consecutive ranges in
declaration order. Growing one variant's weight at the expense of a later one only moves the
boundary, so a rollout that grows from 5% to 25% keeps every user it already had.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import cbor2
import mmh3

MAX_TOTAL_WEIGHT = 2**31 - 1
"""flagd rejects weight sums above a signed 32-bit integer; so do we."""


class BucketingAlgorithm(StrEnum):
    V2 = "v2"
    V3 = "v3"


def hash_v2(seed: str) -> int:
    """MurmurHash3-x86-32 (seed 0) of the UTF-8 encoding of `seed`, as an unsigned integer."""
    return mmh3.hash(seed, 0, signed=False)


def _canonical_json(value: Any) -> Any:
    """Normalise JSON numbers as flagd v3 does before CBOR encoding."""
    if isinstance(value, float):
        if value == 0.0:
            return 0
        if value.is_integer() and -(2**63) <= value <= 2**64 - 1:
            return int(value)
        return value
    if isinstance(value, list):
        return [_canonical_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical_json(v) for k, v in value.items()}
    return value


def _cbor_head(major: int, length: int) -> bytes:
    """The shortest CBOR head for `length` (RFC 8949 §4.2.1 preferred serialization)."""
    if length < 24:
        return bytes((major << 5 | length,))
    if length < 0x100:
        return bytes((major << 5 | 24, length))
    if length < 0x10000:
        return bytes((major << 5 | 25,)) + length.to_bytes(2, "big")
    if length < 0x100000000:
        return bytes((major << 5 | 26,)) + length.to_bytes(4, "big")
    return bytes((major << 5 | 27,)) + length.to_bytes(8, "big")


_TEXT_HEADS = tuple(bytes((0x60 | n,)) for n in range(24))


def _cbor_text(text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    size = len(data)
    return (_TEXT_HEADS[size] if size < 24 else _cbor_head(3, size)) + data


def cbor_seed(value: Any) -> bytes:
    """Canonical CBOR encoding of a JSON seed value (flagd fractional v3).

    Strings and arrays of strings (the shorthand seed ``[flag_key, targeting_key]``) are
    encoded directly: they are nearly every seed, and the general encoder costs ~10 µs per
    call. Everything else goes through cbor2's canonical mode.
    """
    cls = value.__class__
    if cls is str:
        return _cbor_text(value)
    if cls is list and len(value) == 2 and value[0].__class__ is str and value[1].__class__ is str:
        return b"\x82" + _cbor_text(value[0]) + _cbor_text(value[1])
    if cls is list and all(item.__class__ is str for item in value):
        return _cbor_head(4, len(value)) + b"".join(_cbor_text(item) for item in value)
    if isinstance(value, float) and not math.isfinite(value):
        return cbor2.dumps(value, canonical=True)
    return cbor2.dumps(_canonical_json(value), canonical=True)


def hash_v3(seed: Any) -> int:
    """MurmurHash3-x86-32 (seed 0) of the canonical CBOR encoding of a JSON seed value."""
    return mmh3.hash(cbor_seed(seed), 0, signed=False)


def bucket(hash_value: int, total_weight: int) -> int:
    """Map an unsigned 32-bit hash to ``[0, total_weight)`` without floating point."""
    return (hash_value * total_weight) >> 32


def pick(hash_value: int, cumulative: Sequence[int]) -> int:
    """Index of the range that owns `hash_value`.

    `cumulative` holds the running totals of the weights (last item = total weight, > 0).
    """
    point = (hash_value * cumulative[-1]) >> 32
    for index, upper in enumerate(cumulative):
        if point < upper:
            return index
    return len(cumulative) - 1  # unreachable: point < total
