"""Unleash variants as Fader variants, splits and override rules.

A flag with variants becomes an ``object`` flag whose values are what Unleash's
``get_variant`` returns (``{"name", "payload"?, "enabled", "feature_enabled"}``), so code
moving from ``client.get_variant(...)`` to Fader reads the same dictionary. One Fader variant
stands for each distinct (name, payload) pair (strategies may reuse a name with another
payload), one for "not enabled" (the off variant) and, when some path enables the flag without
any variant, one for "enabled, no variant".

Unleash picks a variant with ``murmur3(group:seed, 86028157) % total + 1`` against the
cumulative weights, i.e. the engine's ``unleash`` bucketing with ``modulus`` = the total weight
(1000 when Unleash computed the weights); the seed is the first variant's stickiness field
(``default``: the user id, else the session id, else chance). Overrides are rules before the
split. Weights are used as the payload gives them, whatever their ``weightType``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fader_engine.model import TOTAL_WEIGHT
from fader_server.migration.model import Answer
from fader_server.migration.unleash.conditions import Alternatives, UntranslatableError
from fader_server.migration.unleash.constraints import check_operand, membership
from fader_server.migration.unleash.context import USER_ID
from fader_server.migration.unleash.strategies import stickiness_attribute

VARIANT_SEED = 86028157
"""The murmur3 seed Unleash uses for variants."""
DISABLED = "disabled"
"""Unleash's name for "no variant"."""


def _payload(raw: Any, where: str) -> dict[str, str] | None:
    if raw is None:
        return None
    if (
        not isinstance(raw, Mapping)
        or not isinstance(raw.get("type"), str)
        or not isinstance(raw.get("value"), str)
    ):
        raise UntranslatableError(
            f"{where} payload", "a payload is an object with a string 'type' and 'value'"
        )
    return {"type": raw["type"], "value": raw["value"]}


@dataclass
class VariantTable:
    """The Fader variants of one flag and the Unleash answer each stands for."""

    values: dict[str, Any] = field(default_factory=dict)
    answers: dict[str, Answer] = field(default_factory=dict)
    by_pair: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.off = self._add(
            DISABLED,
            {"name": DISABLED, "enabled": False, "feature_enabled": False},
            Answer(False, DISABLED),
        )

    def _add(self, wanted: str, value: Any, answer: Answer) -> str:
        name, n = wanted, 1
        while name in self.values:
            n += 1
            name = f"{wanted} #{n}"
        self.values[name] = value
        self.answers[name] = answer
        return name

    def enabled_without_variant(self) -> str:
        key = "\x00enabled"
        if key not in self.by_pair:
            self.by_pair[key] = self._add(
                "enabled",
                {"name": DISABLED, "enabled": False, "feature_enabled": True},
                Answer(True, DISABLED),
            )
        return self.by_pair[key]

    def variant(self, name: str, payload: dict[str, str] | None) -> str:
        key = repr((name, payload))
        if key not in self.by_pair:
            value: dict[str, Any] = {"name": name, "enabled": True, "feature_enabled": True}
            if payload is not None:
                value["payload"] = payload
            self.by_pair[key] = self._add(
                name, value, Answer(payload if payload is not None else True, name)
            )
        return self.by_pair[key]

    def enabled_names(self) -> dict[str, str]:
        """Fader variant -> Unleash variant name, for every variant but the off one."""
        return {k: a.variant or "" for k, a in self.answers.items() if k != self.off}


def _seed(stickiness: Any) -> tuple[str | None, list[str]]:
    """The split's ``by`` (``None``: the targeting key) and fallback attributes."""
    if stickiness in (None, "default"):
        return None, ["sessionId"]
    if not isinstance(stickiness, str):
        raise UntranslatableError("variant stickiness", "stickiness must be a string")
    if stickiness == "userId":
        return None, []
    return stickiness_attribute(stickiness), []


def serve(
    table: VariantTable, raws: list[Any], group: str, stickiness: Any, where: str
) -> dict[str, Any]:
    """What choosing among `raws` serves: a variant, or a split with Unleash's bucketing."""
    if not group:
        raise UntranslatableError(f"{where} groupId", "an empty group id is not supported")
    entries: list[tuple[str, int]] = []
    for index, raw in enumerate(raws):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
            raise UntranslatableError(f"{where} variant {index + 1}", "a variant needs a name")
        weight = raw.get("weight", 0)
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise UntranslatableError(
                f"{where} variant {raw['name']!r}", "weights are non-negative integers"
            )
        name = table.variant(raw["name"], _payload(raw.get("payload"), f"{where} variant"))
        entries.append((name, weight))
    total = sum(w for _, w in entries)
    weighted = [(n, w) for n, w in entries if w > 0]
    if total == 0:
        raise UntranslatableError(
            f"{where} variants", "all weights are 0; Unleash cannot pick a variant"
        )
    if len(weighted) == 1:
        return {"variant": weighted[0][0]}  # even chance picks the only weighted variant
    if TOTAL_WEIGHT % total:
        raise UntranslatableError(
            f"{where} variants",
            f"the weights total {total}, which does not divide 100000; the buckets would not "
            "be whole thousandths of a percent",
        )
    by, fallback = _seed(stickiness)
    split: dict[str, Any] = {
        "weights": [
            {"variant": n, "weight": _percent(w * (TOTAL_WEIGHT // total))} for n, w in weighted
        ],
        "bucketing": {
            "algorithm": "unleash",
            "group": group,
            "seed": VARIANT_SEED,
            "modulus": total,
            "fallback": fallback,
        },
    }
    if by is not None:
        split["by"] = by
    return {"split": split}


def _percent(thousandths: int) -> int | float:
    return thousandths // 1000 if thousandths % 1000 == 0 else thousandths / 1000


def overrides(table: VariantTable, raws: list[Any], where: str) -> list[tuple[Alternatives, str]]:
    """Override rules of the flag's own variants, in Unleash's order."""
    out: list[tuple[Alternatives, str]] = []
    for raw in raws:
        if not isinstance(raw, Mapping):
            continue
        for override in raw.get("overrides") or []:
            if not isinstance(override, Mapping):
                raise UntranslatableError(f"{where} override", "an override is an object")
            field_name = override.get("contextName")
            if field_name == "currentTime":
                raise UntranslatableError(
                    f"{where} override on currentTime",
                    "Unleash fills in its own clock; no exact equivalent",
                )
            attr = USER_ID if field_name == "userId" else stickiness_attribute(str(field_name))
            values = override.get("values") or []
            texts = [check_operand(v, f"{where} override value") for v in values]
            alternatives = membership(attr, texts)
            if alternatives:
                name = table.variant(raw["name"], _payload(raw.get("payload"), f"{where} variant"))
                out.append((alternatives, name))
    return out
