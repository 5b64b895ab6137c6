"""LaunchDarkly's and Unleash's percentage bucketing, so an imported rollout keeps its users.

A rollout imported from another system must put every user in the bucket that system put them
in; otherwise a 30% rollout would serve a *different* 30% after the move and users would see
features flicker. Each vendor hashes differently:

* **LaunchDarkly**: SHA-1 of ``"{prefix}.{value}"`` where the prefix is the rollout's seed or
  ``"{flag_key}.{salt}"``; the first 15 hex digits, divided by ``0xFFFFFFFFFFFFFFF``, give a
  bucket in ``[0, 1)``. Only strings and integers are bucketable; any other value (or none)
  is bucket 0, and a context of another kind than the rollout's is bucket -1 (first variation).
* **Unleash**: MurmurHash3-x86-32 of ``"{group}:{value}"`` with a seed (0 for rollouts,
  86028157 for variants), modulo a normaliser (100 for rollouts, the variants' total weight);
  the value is the first of the stickiness attributes that is present.

Both are turned into Fader's integer arithmetic (weights in thousandths of a percent, cumulative
bounds, ``bisect``) *exactly*, without floating point: for LaunchDarkly,
``h / M < c / 100000`` is ``floor(h * 100000 / M) < c`` for an integer bound ``c``, so the
point ``h * 100000 // M`` compared with the integer bounds gives LaunchDarkly's answer for every
hash. Variants still own consecutive ranges in list order, so growing a rollout only adds users,
whichever vendor's hash places them. docs/bucketing.md has the details and the sources.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Callable, Mapping
from typing import Any

import mmh3

from fader_engine.model import TOTAL_WEIGHT, LaunchDarklyBucketing, UnleashBucketing

Owner = Callable[[Mapping[str, Any]], int]
"""The index of the variant a context falls in, or -1 when the context lacks its seed."""

LD_SCALE = 0xFFFFFFFFFFFFFFF
"""LaunchDarkly divides the first 15 hex digits of the SHA-1 by this (2**60 - 1)."""
UNLEASH_VARIANT_SEED = 86028157
"""The murmur3 seed Unleash uses for variants (rollouts use 0)."""


def lookup(ctx: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The attribute at `path` (nested objects), or ``None`` when any step is missing.

    Rules and splits of every algorithm read attributes this one way (codegen uses it too), so
    a path means the same thing to a clause and to the bucketing of the split it guards.
    """
    value: Any = ctx
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
        if value is None:
            return None
    return value


def bucketable(value: Any) -> str | None:
    """The text both vendors hash: a string, or an integer's decimal digits; else ``None``.

    Exact classes: a boolean is not an integer here (LaunchDarkly refuses it; Unleash contexts
    are strings), and a float has no single canonical text across SDKs.
    """
    cls = value.__class__
    if cls is str:
        return str(value)
    if cls is int:
        return str(value)
    return None


def launchdarkly_hash(prefix: str, value: str) -> int:
    """The 60-bit integer LaunchDarkly divides by :data:`LD_SCALE` to get the bucket."""
    digest = hashlib.sha1(f"{prefix}.{value}".encode(), usedforsecurity=False).hexdigest()
    return int(digest[:15], 16)


def launchdarkly_point(prefix: str, value: str) -> int:
    """The bucket as an integer point in ``[0, 100000)``, exact (see the module docstring)."""
    return launchdarkly_hash(prefix, value) * TOTAL_WEIGHT // LD_SCALE


def launchdarkly_owner(
    bucketing: LaunchDarklyBucketing, by: tuple[str, ...], bounds: tuple[int, ...]
) -> Owner:
    path = by or ("targetingKey",)
    prefix, kind = bucketing.prefix, bucketing.context_kind

    def owner(ctx: Mapping[str, Any]) -> int:
        context_kind = ctx.get("kind")
        if (context_kind if context_kind.__class__ is str else "user") != kind:
            return 0  # LaunchDarkly's bucket -1: the first variation, whatever its weight
        value = bucketable(lookup(ctx, path))
        point = 0 if value is None else launchdarkly_point(prefix, value)
        return bisect_right(bounds, point)

    return owner


def unleash_hash(group: str, value: str, seed: int) -> int:
    """Unleash's ``normalizedHash`` before the modulo: murmur3 (x86, 32-bit) of ``group:value``."""
    return mmh3.hash(f"{group}:{value}", seed, signed=False)


def unleash_in_rollout(group: str, value: str, percentage: float) -> bool:
    """Unleash's rollout test: ``normalizedHash(value, group, 100) <= percentage``."""
    return unleash_hash(group, value, 0) % 100 + 1 <= percentage


def unleash_owner(
    bucketing: UnleashBucketing, by: tuple[str, ...], bounds: tuple[int, ...]
) -> Owner:
    paths = (by or ("targetingKey",), *bucketing.fallback)
    group, seed, modulus = bucketing.group, bucketing.seed, bucketing.modulus
    step = TOTAL_WEIGHT // modulus  # parse checked that the modulus divides 100%

    def owner(ctx: Mapping[str, Any]) -> int:
        for path in paths:
            value = bucketable(lookup(ctx, path))
            if value is not None:
                # Unleash serves the first variant with hash % modulus + 1 <= its cumulative
                # weight, i.e. hash % modulus < it: scaled to thousandths of a percent.
                point = (unleash_hash(group, value, seed) % modulus) * step
                return bisect_right(bounds, point)
        return -1

    return owner


def owner_function(
    bucketing: LaunchDarklyBucketing | UnleashBucketing,
    by: tuple[str, ...],
    bounds: tuple[int, ...],
) -> Owner:
    """The owner function of a split with a vendor's bucketing."""
    if isinstance(bucketing, LaunchDarklyBucketing):
        return launchdarkly_owner(bucketing, by, bounds)
    return unleash_owner(bucketing, by, bounds)
