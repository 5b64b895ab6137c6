"""Parsing a split's ``bucketing``: which vendor's hash places contexts (docs/bucketing.md).

Absent, a split uses the document's own flagd-compatible bucketing. Present, it names
LaunchDarkly's or Unleash's algorithm with that vendor's parameters, so that a rollout imported
from it keeps every user in their bucket. Everything the evaluator relies on is checked here:
for Unleash, that the normaliser divides 100% and that every weight is a whole number of its
steps, so the integer arithmetic is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fader_engine.model import (
    TOTAL_WEIGHT,
    LaunchDarklyBucketing,
    UnleashBucketing,
    VendorBucketing,
    WeightedVariant,
)
from fader_engine.parse_clauses import parse_attribute
from fader_engine.parse_fields import Problems, child, json_type, read_object
from fader_engine.percent import format_percent

ALGORITHMS = ("launchdarkly", "unleash")
MAX_PREFIX = 1024
"""A LaunchDarkly prefix is a flag key and salt, or a seed: short."""
MAX_FALLBACK = 8
MAX_SEED = 2**32 - 1

_LD_FIELDS = ("algorithm", "prefix", "contextKind")
_UNLEASH_FIELDS = ("algorithm", "group", "seed", "modulus", "fallback")


def _text(obj: Any, name: str, path: str, where: str, problems: Problems) -> str | None:
    value = obj.get(name)
    if not isinstance(value, str) or not value or len(value) > MAX_PREFIX:
        problems.add(
            child(path, name),
            f"'{name}' of {where} must be a non-empty string of at most {MAX_PREFIX} "
            f"characters, not {json_type(value) if not isinstance(value, str) else repr(value)}",
        )
        return None
    return value


def _integer(
    obj: Any,
    name: str,
    default: int,
    low: int,
    high: int,
    path: str,
    where: str,
    problems: Problems,
) -> int | None:
    value = obj.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.add(
            child(path, name), f"'{name}' of {where} must be an integer from {low} to {high}"
        )
        return None
    return value


def parse_bucketing(
    value: Any, path: str, where: str, weights: Sequence[WeightedVariant], problems: Problems
) -> VendorBucketing | None:
    """The vendor bucketing of a split, or ``None`` when it was reported."""
    obj = read_object(
        value, path, where, problems, known=_LD_FIELDS + _UNLEASH_FIELDS, required=("algorithm",)
    )
    if obj is None or "algorithm" not in obj:
        return None
    algorithm = obj["algorithm"]
    if algorithm not in ALGORITHMS:
        problems.add(
            child(path, "algorithm"),
            f"unknown bucketing algorithm {algorithm!r} in {where}; use 'launchdarkly' or "
            "'unleash' (leave 'bucketing' out for Fader's own)",
        )
        return None
    own = _LD_FIELDS if algorithm == "launchdarkly" else _UNLEASH_FIELDS
    for name in obj:
        if name not in own:
            problems.add(child(path, name), f"'{name}' is not a parameter of {algorithm} bucketing")
    if algorithm == "launchdarkly":
        prefix = _text(obj, "prefix", path, where, problems)
        kind = _text(obj, "contextKind", path, where, problems) if "contextKind" in obj else "user"
        if prefix is None or kind is None:
            return None
        return LaunchDarklyBucketing(prefix, kind)
    group = _text(obj, "group", path, where, problems)
    seed = _integer(obj, "seed", 0, 0, MAX_SEED, path, where, problems)
    modulus = _integer(obj, "modulus", 100, 1, TOTAL_WEIGHT, path, where, problems)
    fallback = _fallback(obj, path, where, problems)
    if group is None or seed is None or modulus is None or fallback is None:
        return None
    if TOTAL_WEIGHT % modulus:
        problems.add(
            child(path, "modulus"),
            f"'modulus' of {where} must divide 100000 (e.g. 100 or 1000) so that its buckets "
            f"are whole thousandths of a percent; {modulus} does not",
        )
        return None
    step = TOTAL_WEIGHT // modulus
    for weight in weights:
        if weight.weight % step:
            problems.add(
                child(path, "modulus"),
                f"variant {weight.variant!r} of {where} weighs {format_percent(weight.weight)}%, "
                f"which is not a whole number of 1/{modulus} steps ({format_percent(step)}%)",
            )
            return None
    return UnleashBucketing(group, seed, modulus, fallback)


def _fallback(
    obj: Any, path: str, where: str, problems: Problems
) -> tuple[tuple[str, ...], ...] | None:
    raw = obj.get("fallback", [])
    at = child(path, "fallback")
    if not isinstance(raw, list) or len(raw) > MAX_FALLBACK:
        problems.add(
            at, f"'fallback' of {where} must be an array of at most {MAX_FALLBACK} attributes"
        )
        return None
    paths = tuple(
        parse_attribute(item, child(at, index), where, problems) for index, item in enumerate(raw)
    )
    return None if any(not p for p in paths) else paths
