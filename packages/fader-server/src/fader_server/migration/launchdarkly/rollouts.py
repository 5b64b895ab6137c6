"""LaunchDarkly percentage rollouts as Fader splits with LaunchDarkly's own bucketing.

The engine's ``{"algorithm": "launchdarkly"}`` bucketing hashes exactly what the SDK hashes
(docs/bucketing.md): SHA-1 of ``"{prefix}.{value}"`` where the prefix is the rollout's ``seed``
or ``"{flag key}.{salt}"`` (the *original* LaunchDarkly key, so renamed flags keep their
users), the value the ``bucketBy`` attribute (the context key for experiments, which ignore
``bucketBy``), and a context of another kind than the rollout's gets the first variation.

What LaunchDarkly does with weights that do not sum to 100%, reproduced: a context past the
last bucket gets the *last* variation, and buckets past 100% are unreachable.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from fader_server.migration.launchdarkly.clauses import DEFAULT_KIND, UntranslatableError, attribute
from fader_server.migration.launchdarkly.variants import Variants
from fader_server.migration.model import JSON

TOTAL = 100_000
"""LaunchDarkly's weights are thousandths of a percent, like Fader's."""


def _integer(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _pieces(variations: Any, variants: Variants, where: str) -> list[tuple[int, int]]:
    """(variation index, weight) for each range of the rollout, in order, summing to 100%."""
    if not isinstance(variations, list) or not variations:
        raise UntranslatableError(
            where, "a rollout without variations makes LaunchDarkly fail the flag"
        )
    pieces: list[tuple[int, int]] = []
    total = 0
    for i, entry in enumerate(variations):
        variation = entry.get("variation") if isinstance(entry, dict) else None
        weight = entry.get("weight") if isinstance(entry, dict) else None
        if not (_integer(variation) and _integer(weight)):
            raise UntranslatableError(
                f"{where}, bucket {i + 1}", "a bucket needs an integer 'variation' and 'weight'"
            )
        if not 0 <= variation < len(variants):
            raise UntranslatableError(
                f"{where}, bucket {i + 1}",
                f"variation {variation} does not exist (LaunchDarkly fails the evaluation)",
            )
        if weight < 0:
            raise UntranslatableError(f"{where}, bucket {i + 1}", "a negative weight")
        end = min(total + weight, TOTAL)
        pieces.append((variation, end - total))
        total = end
    last_variation, last_weight = pieces[-1]
    pieces[-1] = (last_variation, last_weight + TOTAL - total)
    # Empty ranges serve nobody, except the first: a context of another kind gets it.
    kept = [pieces[0], *(p for p in pieces[1:] if p[1] > 0)]
    merged: list[tuple[int, int]] = []
    for variation, weight in kept:
        if merged and merged[-1][0] == variation:
            merged[-1] = (variation, merged[-1][1] + weight)
        else:
            merged.append((variation, weight))
    return merged


def _percent(weight: int) -> int | float:
    return weight // 1000 if weight % 1000 == 0 else weight / 1000


def rollout_split(rollout: Any, flag_key: str, salt: str, variants: Variants, where: str) -> JSON:
    """The Fader ``{"split": ...}`` serving what `rollout` serves."""
    if not isinstance(rollout, dict):
        raise UntranslatableError(where, "'rollout' must be an object")
    context_kind = rollout.get("contextKind")
    seed = rollout.get("seed")
    if context_kind is not None and not isinstance(context_kind, str):
        raise UntranslatableError(where, "the rollout's 'contextKind' must be text")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise UntranslatableError(where, "the rollout's 'seed' must be an integer")
    experiment = rollout.get("kind") == "experiment"
    split: JSON = {}
    bucket_by = None if experiment else rollout.get("bucketBy")
    if bucket_by not in (None, ""):
        attr = attribute(bucket_by, context_kind, f"{where}, bucketBy")
        if attr.is_kind or attr.path is None:
            raise UntranslatableError(
                f"{where}, bucketBy",
                f"bucketing by {bucket_by!r} (the context kind or a value LaunchDarkly never "
                "finds) has no Fader equivalent",
            )
        if attr.path != "targetingKey":
            split["by"] = attr.path
    occurrences: dict[int, int] = {}
    weights = []
    for variation, weight in _pieces(rollout.get("variations"), variants, where):
        occurrence = occurrences.get(variation, 0)
        occurrences[variation] = occurrence + 1
        weights.append(
            {"variant": variants.name(variation, occurrence), "weight": _percent(weight)}
        )
    split["weights"] = weights
    split["bucketing"] = {
        "algorithm": "launchdarkly",
        "prefix": str(seed) if seed is not None else f"{flag_key}.{salt}",
        "contextKind": context_kind or DEFAULT_KIND,
    }
    return {"split": split}
