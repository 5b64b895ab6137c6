"""Parsing one flag: variants, targeting rules, what they serve (variant or split), metadata.

References *between* flags and segments (prerequisites naming flags, cycles) need the whole
document and are checked in :mod:`fader_engine.parse`; everything checkable from one flag is
checked here. See ``docs/flag-format.md`` ("Flag", "Rule", "Split").
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType
from typing import Any

from fader_engine.model import (
    TOTAL_WEIGHT,
    Flag,
    FlagKind,
    Prerequisite,
    Rule,
    Serve,
    Split,
    WeightedVariant,
)
from fader_engine.parse_bucketing import parse_bucketing
from fader_engine.parse_clauses import parse_attribute, parse_clauses
from fader_engine.parse_fields import (
    Problems,
    child,
    is_number,
    json_type,
    quoted,
    read_bool,
    read_list,
    read_object,
    read_string,
    read_strings,
    suggestion,
)
from fader_engine.parse_limits import MAX_RULES, MAX_VARIANTS, check_count, check_value_depth
from fader_engine.percent import WeightError, format_percent, percent_to_weight
from fader_engine.result import ValueType

_FLAG_FIELDS = (
    "type",
    "variants",
    "enabled",
    "offVariant",
    "rules",
    "default",
    "prerequisites",
    "name",
    "description",
    "kind",
    "tags",
    "metadata",
)
_FLAG_REQUIRED = ("type", "variants", "offVariant", "default")
_RULE_FIELDS = ("id", "description", "clauses", "variant", "split")
_SERVE_FIELDS = ("variant", "split")
_SPLIT_FIELDS = ("by", "weights", "bucketing")
_WEIGHT_FIELDS = ("variant", "weight")
_PREREQUISITE_FIELDS = ("flag", "variants")
_TYPES = tuple(str(t) for t in ValueType)
_KINDS = tuple(str(k) for k in FlagKind)

_TYPE_RULES: Mapping[ValueType, tuple[Callable[[Any], bool], str]] = {
    ValueType.BOOLEAN: (lambda v: isinstance(v, bool), "true or false"),
    ValueType.STRING: (lambda v: isinstance(v, str), "strings"),
    ValueType.NUMBER: (is_number, "numbers"),
    # OpenFeature's "structure" values: JSON objects, and arrays as the SDKs allow them too.
    ValueType.OBJECT: (lambda v: isinstance(v, dict | list), "JSON objects or arrays"),
}


def _parse_variants(
    obj: Mapping[str, Any], value_type: ValueType | None, path: str, where: str, problems: Problems
) -> dict[str, Any]:
    raw = obj.get("variants")
    at = child(path, "variants")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.add(
            at,
            f"'variants' of {where} must be an object of variant name to value, "
            f"not {json_type(raw)}",
        )
        return {}
    if not raw:
        problems.add(
            at, f'{where} has no variants; give at least one, e.g. {{"on": true, "off": false}}'
        )
    if not check_count(raw, MAX_VARIANTS, at, where, "variants", problems):
        return {}
    variants: dict[str, Any] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name:
            problems.add(at, f"variant names of {where} must be non-empty strings")
            continue
        if not check_value_depth(value, child(at, name), f"variant {name!r} of {where}", problems):
            variants[name] = None  # known by name, so rules serving it raise no second problem
            continue
        if value_type is not None:
            accepts, needs = _TYPE_RULES[value_type]
            if not accepts(value):
                problems.add(
                    child(at, name),
                    f"variant {name!r} of {value_type} {where} has value "
                    f"{json.dumps(value, default=repr)} ({json_type(value)}); "
                    f"{value_type} flags need {needs}",
                )
        variants[name] = copy.deepcopy(value)
    return variants


def _check_variant(
    name: Any, path: str, where: str, variants: Collection[str], problems: Problems
) -> str | None:
    if not isinstance(name, str):
        problems.add(
            path, f"the variant of {where} must be a variant name (a string), not {json_type(name)}"
        )
        return None
    if variants and name not in variants:
        problems.add(
            path,
            f"{where} serves variant {name!r}, which is not one of the flag's "
            f"variants ({quoted(variants)}){suggestion(name, variants)}",
        )
        return None
    return name


def _parse_split(
    value: Any, path: str, where: str, variants: Collection[str], problems: Problems
) -> Split | None:
    split_where = f"the split of {where}"
    obj = read_object(
        value, path, split_where, problems, known=_SPLIT_FIELDS, required=("weights",)
    )
    if obj is None:
        return None
    by: tuple[str, ...] = ()
    if "by" in obj:
        by = parse_attribute(obj["by"], child(path, "by"), split_where, problems)
    raw = read_list(obj, "weights", path, split_where, problems)
    if raw is None:
        return None
    at = child(path, "weights")
    if not raw:
        problems.add(at, f"{split_where} has no weights; list each variant with its percentage")
        return None
    weights: list[WeightedVariant] = []
    seen: set[str] = set()
    ok = True
    for index, item in enumerate(raw):
        item_path = child(at, index)
        item_where = f"weight {index} of {split_where}"
        entry = read_object(
            item, item_path, item_where, problems, known=_WEIGHT_FIELDS, required=_WEIGHT_FIELDS
        )
        if entry is None or not all(name in entry for name in _WEIGHT_FIELDS):
            ok = False
            continue
        name = _check_variant(
            entry["variant"], child(item_path, "variant"), split_where, variants, problems
        )
        if name is not None and name in seen:
            problems.add(
                child(item_path, "variant"),
                f"variant {name!r} appears more than once in {split_where}; "
                "list each variant once with its total weight",
            )
            name = None
        if name is not None:
            seen.add(name)
        try:
            weight = percent_to_weight(entry["weight"])
        except WeightError as exc:
            problems.add(child(item_path, "weight"), f"{exc} (in {split_where})")
            ok = False
            continue
        if name is None:
            ok = False
            continue
        weights.append(WeightedVariant(name, weight))
    if not ok:
        return None
    total = sum(w.weight for w in weights)
    if total != TOTAL_WEIGHT:
        problems.add(
            at,
            f"split weights of {where} sum to {format_percent(total)}%; "
            "they must sum to exactly 100%",
        )
        return None
    if "bucketing" not in obj:
        return Split(tuple(weights), by)
    bucketing = parse_bucketing(
        obj["bucketing"], child(path, "bucketing"), split_where, weights, problems
    )
    return None if bucketing is None else Split(tuple(weights), by, bucketing)


def _parse_serve(
    obj: Mapping[str, Any], path: str, where: str, variants: Collection[str], problems: Problems
) -> Serve | None:
    """The ``variant`` / ``split`` pair shared by rules and the default: exactly one of them."""
    has_variant, has_split = "variant" in obj, "split" in obj
    if has_variant == has_split:
        problems.add(
            path,
            f"{where} must have exactly one of 'variant' or 'split' "
            f"({'both are' if has_variant else 'neither is'} given)",
        )
        return None
    if has_variant:
        name = _check_variant(obj["variant"], child(path, "variant"), where, variants, problems)
        return None if name is None else Serve(variant=name)
    split = _parse_split(obj["split"], child(path, "split"), where, variants, problems)
    return None if split is None else Serve(split=split)


def _parse_rules(
    obj: Mapping[str, Any],
    path: str,
    flag_where: str,
    variants: Collection[str],
    segment_keys: Collection[str],
    problems: Problems,
) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    ids: set[str] = set()
    at = child(path, "rules")
    raw = read_list(obj, "rules", path, flag_where, problems) or []
    if not check_count(raw, MAX_RULES, at, flag_where, "rules", problems):
        return ()
    for index, item in enumerate(raw):
        rule_path = child(at, index)
        where = f"rule {index} of {flag_where}"
        rule = read_object(
            item, rule_path, where, problems, known=_RULE_FIELDS, required=("clauses",)
        )
        if rule is None:
            continue
        rule_id = read_string(rule, "id", rule_path, where, problems)
        if rule_id is not None:
            if rule_id in ids:
                problems.add(
                    child(rule_path, "id"),
                    f"rule id {rule_id!r} is used twice in {flag_where}; give each rule its own id",
                )
            ids.add(rule_id)
            where = f"rule {index} ({rule_id!r}) of {flag_where}"
        description = read_string(rule, "description", rule_path, where, problems)
        clauses = parse_clauses(rule, rule_path, where, segment_keys, problems)
        serve = _parse_serve(rule, rule_path, where, variants, problems)
        if serve is not None:
            rules.append(Rule(clauses, serve, rule_id, description))
    return tuple(rules)


def _parse_prerequisites(
    obj: Mapping[str, Any], path: str, flag_where: str, problems: Problems
) -> tuple[Prerequisite, ...]:
    out: list[Prerequisite] = []
    at = child(path, "prerequisites")
    for index, item in enumerate(read_list(obj, "prerequisites", path, flag_where, problems) or []):
        item_path = child(at, index)
        where = f"prerequisite {index} of {flag_where}"
        entry = read_object(
            item,
            item_path,
            where,
            problems,
            known=_PREREQUISITE_FIELDS,
            required=_PREREQUISITE_FIELDS,
        )
        if entry is None or not all(name in entry for name in _PREREQUISITE_FIELDS):
            continue
        key = entry["flag"]
        if not isinstance(key, str):
            problems.add(child(item_path, "flag"), f"'flag' of {where} must be a flag key")
            continue
        if any(p.flag == key for p in out):
            problems.add(
                child(item_path, "flag"),
                f"{flag_where} lists prerequisite {key!r} twice; merge the variants into one entry",
            )
            continue
        if not isinstance(entry["variants"], list) or not entry["variants"]:
            problems.add(
                child(item_path, "variants"),
                f"'variants' of {where} must be a non-empty array of variant names",
            )
            continue
        out.append(Prerequisite(key, read_strings(entry, "variants", item_path, where, problems)))
    return tuple(out)


def _parse_metadata(
    obj: Mapping[str, Any], path: str, where: str, problems: Problems
) -> Mapping[str, Any]:
    raw = obj.get("metadata", {})
    at = child(path, "metadata")
    if not isinstance(raw, Mapping):
        problems.add(at, f"'metadata' of {where} must be an object, not {json_type(raw)}")
        return {}
    for name, value in raw.items():
        if not (isinstance(value, str | bool) or is_number(value)):
            problems.add(
                child(at, name),
                f"metadata {name!r} of {where} is {json_type(value)}; "
                "metadata values must be strings, numbers or booleans",
            )
    return MappingProxyType(dict(raw))


def parse_flag(
    key: str, value: Any, path: str, segment_keys: Collection[str], problems: Problems
) -> Flag | None:
    """One flag; ``None`` when anything in it is wrong (every problem is recorded)."""
    where = f"flag {key!r}"
    before = len(problems.items)
    obj = read_object(value, path, where, problems, known=_FLAG_FIELDS, required=_FLAG_REQUIRED)
    if obj is None:
        return None
    value_type: ValueType | None = None
    if "type" in obj:
        if obj["type"] in _TYPES:
            value_type = ValueType(obj["type"])
        else:
            problems.add(
                child(path, "type"),
                f"type {obj['type']!r} of {where} is not one of {quoted(_TYPES)}"
                f"{suggestion(str(obj['type']), _TYPES)}",
            )
    variants = _parse_variants(obj, value_type, path, where, problems)
    off_variant = None
    if "offVariant" in obj:
        off_variant = _check_variant(
            obj["offVariant"],
            child(path, "offVariant"),
            f"the offVariant of {where}",
            variants,
            problems,
        )
    default = None
    if "default" in obj:
        default_path = child(path, "default")
        default_where = f"the default of {where}"
        raw_default = read_object(
            obj["default"], default_path, default_where, problems, known=_SERVE_FIELDS
        )
        if raw_default is not None:
            default = _parse_serve(raw_default, default_path, default_where, variants, problems)
    enabled = read_bool(obj, "enabled", True, path, where, problems)
    rules = _parse_rules(obj, path, where, variants, segment_keys, problems)
    prerequisites = _parse_prerequisites(obj, path, where, problems)
    kind = None
    if "kind" in obj:
        if obj["kind"] in _KINDS:
            kind = FlagKind(obj["kind"])
        else:
            problems.add(
                child(path, "kind"),
                f"kind {obj['kind']!r} of {where} is not one of {quoted(_KINDS)}",
            )
    name = read_string(obj, "name", path, where, problems)
    description = read_string(obj, "description", path, where, problems)
    tags = read_strings(obj, "tags", path, where, problems)
    metadata = _parse_metadata(obj, path, where, problems)
    if len(problems.items) > before or value_type is None or off_variant is None or default is None:
        return None
    return Flag(
        key=key,
        type=value_type,
        variants=MappingProxyType(variants),
        off_variant=off_variant,
        default=default,
        enabled=enabled,
        rules=rules,
        prerequisites=prerequisites,
        name=name,
        description=description,
        kind=kind,
        tags=tags,
        metadata=metadata,
    )
