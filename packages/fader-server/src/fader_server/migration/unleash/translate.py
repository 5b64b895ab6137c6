"""Translate an Unleash client-features payload into one Fader environment, exactly or not at all.

The payload is what Unleash's server SDKs fetch (``/api/client/features``: ``features`` and
``segments``), already specific to one environment. Each flag becomes a Fader flag whose rules
are its strategies in order (:mod:`.strategies`, :mod:`.constraints`), whose variants and
splits are Unleash's (:mod:`.variants`), and whose prerequisites are its dependencies. A flag
that uses anything without an exact equivalent is left out and listed as
:class:`~fader_server.migration.model.Unsupported` with the reason. The conventions (context,
answers) and every semantic decision are in docs/migration-unleash.md. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fader_engine.errors import ConfigurationError
from fader_engine.model import FORMAT_ID
from fader_engine.parse import parse_document
from fader_server.migration.model import (
    Answer,
    SourceDocumentError,
    Translation,
    Unsupported,
)
from fader_server.migration.unleash.conditions import (
    NEVER,
    Alternatives,
    HelperSegments,
    UntranslatableError,
    conjoin,
)
from fader_server.migration.unleash.constraints import all_constraints
from fader_server.migration.unleash.strategies import strategy_test
from fader_server.migration.unleash.variants import VariantTable, overrides, serve

MAX_FEATURES = 10_000
MAX_RULES = 1_000
_KEY_CHARS = re.compile(r"[^a-z0-9._-]+")
_KINDS = {
    "release": "release",
    "experiment": "experiment",
    "operational": "ops",
    "kill-switch": "ops",
    "permission": "permission",
}


@dataclass
class _Flag:
    """One translated flag before its dependencies are resolved."""

    name: str
    key: str
    raw: Mapping[str, Any]
    document: dict[str, Any]
    answers: dict[str, Answer]
    on_variants: dict[str, str]
    """Fader variant -> Unleash variant name ("disabled" for none), enabled variants only."""
    off: str
    no_variant: str | None
    """The Fader variant for "enabled, no variant" (Unleash's parent variant is then none)."""
    flag_named_group: bool


@dataclass
class _Context:
    helpers: HelperSegments = field(default_factory=HelperSegments)
    segments: dict[str, Any] = field(default_factory=dict)
    segment_keys: dict[str, str] = field(default_factory=dict)
    segment_errors: dict[str, UntranslatableError] = field(default_factory=dict)
    unsupported: list[Unsupported] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fader_key(name: str, taken: set[str]) -> str:
    key = _KEY_CHARS.sub("-", name.lower()).strip("-._") or "flag"
    key = key[:120]
    if not key[0].isalnum():
        key = "x" + key
    candidate, n = key, 1
    while candidate in taken:
        n += 1
        candidate = f"{key}-{n}"
    taken.add(candidate)
    return candidate


def _malformed(exc: Exception) -> str:
    return f"not a well-formed Unleash flag ({type(exc).__name__}: {exc})"[:500]


def _segments(raw: Any, ctx: _Context) -> None:
    if raw is None:
        return
    if not isinstance(raw, list):
        raise SourceDocumentError("'segments' of an Unleash payload must be a list")
    for item in raw:
        if not isinstance(item, Mapping) or isinstance(item.get("id"), bool):
            continue
        ident = item.get("id")
        if not isinstance(ident, int):
            continue
        source = str(ident)
        key = f"unleash-segment-{ident}"
        try:
            parts = all_constraints(item.get("constraints"), ctx.helpers, f"segment {ident}")
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            error = UntranslatableError(f"segment {ident}", _malformed(exc))
            ctx.segment_errors[source] = error
            ctx.unsupported.append(Unsupported(error.construct, error.detail, segment=source))
            continue
        except UntranslatableError as exc:
            ctx.segment_errors[source] = exc
            ctx.unsupported.append(Unsupported(exc.construct, exc.detail, segment=source))
            continue
        conj = conjoin(parts)
        segment: dict[str, Any] = {"rules": [{"clauses": c} for c in conj]}
        if isinstance(item.get("name"), str):
            segment["description"] = f"Unleash segment {item['name']!r}"
        ctx.segments[key] = segment
        ctx.segment_keys[source] = key


def _strategy(flag: str, index: int, raw: Any, ctx: _Context) -> tuple[Alternatives, bool]:
    where = f"strategy {index + 1}"
    if not isinstance(raw, Mapping):
        raise UntranslatableError(where, "a strategy must be an object")
    try:
        test = strategy_test(flag, raw)
    except UntranslatableError as exc:
        raise UntranslatableError(f"{where}: {exc.construct}", exc.detail) from None
    parts = [test.alternatives, *all_constraints(raw.get("constraints"), ctx.helpers, where)]
    for ident in raw.get("segments") or []:
        source = str(ident)
        if source in ctx.segment_errors:
            error = ctx.segment_errors[source]
            raise UntranslatableError(
                f"{where}: segment {source}", f"the segment is not translated ({error.detail})"
            )
        if source not in ctx.segment_keys:
            raise UntranslatableError(
                f"{where}: segment {source}",
                "the payload has no such segment; Unleash cannot compile the flag (always off)",
            )
        parts.append([[{"op": "in_segment", "values": [ctx.segment_keys[source]]}]])
    return conjoin(parts), test.flag_named_group


def _flag(name: str, key: str, raw: Mapping[str, Any], ctx: _Context) -> _Flag:
    strategies = raw.get("strategies") or []
    variants = raw.get("variants") or []
    if not isinstance(strategies, list) or not isinstance(variants, list):
        raise UntranslatableError("flag", "'strategies' and 'variants' must be lists")
    with_variants = bool(variants) or any(
        isinstance(s, Mapping) and s.get("variants") for s in strategies
    )
    table = VariantTable()
    if with_variants:
        first = variants[0] if variants and isinstance(variants[0], Mapping) else {}
        own_overrides = overrides(table, variants, "flag")
        own: dict[str, Any] = (
            serve(table, variants, name, first.get("stickiness"), "flag")
            if variants
            else {"variant": table.enabled_without_variant()}
        )
    else:
        own_overrides, own = [], {"variant": "on"}

    rules: list[dict[str, Any]] = []
    named_group = False

    def add(
        conjs: Alternatives,
        served: dict[str, Any],
        extra: list[tuple[Alternatives, str]],
        description: str,
    ) -> None:
        for alternatives, variant in extra:
            for conj in conjs:
                for more in alternatives:
                    rules.append(
                        {"description": description, "clauses": conj + more, "variant": variant}
                    )
        for conj in conjs:
            rules.append({"description": description, "clauses": list(conj), **served})

    for index, strategy in enumerate(strategies):
        conjs, flag_named = _strategy(name, index, strategy, ctx)
        named_group = named_group or flag_named
        if conjs == NEVER:
            continue
        label = f"strategy {index + 1} ({strategy.get('name')})"
        strategy_variants = strategy.get("variants") or []
        if strategy_variants:
            params = strategy.get("parameters") or {}
            group = params.get("groupId", name)
            if not isinstance(group, str):
                raise UntranslatableError(f"{label} groupId", "must be a string")
            served = serve(table, strategy_variants, group, params.get("stickiness"), label)
            add(conjs, served, [], label)
        else:
            add(conjs, own, own_overrides, label)
    if not strategies:
        empty: Alternatives = [[]]
        add(empty, own, own_overrides, "no strategies: everyone")
        rules = rules[:-1]  # the catch-all becomes the default
        default = own
    else:
        default = {"variant": table.off if with_variants else "off"}
    if len(rules) > MAX_RULES:
        raise UntranslatableError(
            "strategies", f"{len(rules)} Fader rules are needed; Fader allows {MAX_RULES}"
        )
    document: dict[str, Any]
    if with_variants:
        document = {"type": "object", "variants": dict(table.values), "offVariant": table.off}
        answers = dict(table.answers)
        on_variants = table.enabled_names()
        off = table.off
        no_variant = table.by_pair.get("\x00enabled")
    else:
        document = {"type": "boolean", "variants": {"on": True, "off": False}, "offVariant": "off"}
        answers = {"on": Answer(True, "disabled"), "off": Answer(False, "disabled")}
        on_variants = {"on": "disabled"}
        off, no_variant = "off", "on"
    if raw.get("enabled") is not True:
        document["enabled"] = False
    if rules:
        document["rules"] = rules
    document["default"] = default
    if isinstance(raw.get("description"), str) and raw["description"]:
        document["description"] = raw["description"]
    if raw.get("type") in _KINDS:
        document["kind"] = _KINDS[raw["type"]]
    document["metadata"] = {"unleash_name": name}
    return _Flag(name, key, raw, document, answers, on_variants, off, no_variant, named_group)


def _prerequisites(flag: _Flag, flags: Mapping[str, _Flag], raws: Mapping[str, Any]) -> bool:
    """Attach `flag`'s dependencies; ``False`` when they can never hold (the flag is off)."""
    prerequisites: list[dict[str, Any]] = []
    for index, dep in enumerate(flag.raw.get("dependencies") or []):
        where = f"dependency {index + 1}"
        if not isinstance(dep, Mapping) or not isinstance(dep.get("feature"), str):
            raise UntranslatableError(where, "a dependency names its parent 'feature'")
        parent_name = dep["feature"]
        expected = dep.get("enabled")
        expected = True if expected is None else expected
        wanted = dep.get("variants") or []
        parent_raw = raws.get(parent_name)
        if parent_raw is None or parent_raw.get("dependencies"):
            return False  # Unleash: an unknown parent, or one with parents, never holds
        parent = flags.get(parent_name)
        if parent is None:
            raise UntranslatableError(
                f"{where} on {parent_name!r}", "the parent flag is not translated"
            )
        if parent_raw.get("enabled") is not True:
            if expected:
                return False
            if wanted:
                raise UntranslatableError(
                    f"{where} on {parent_name!r}",
                    "a disabled-parent dependency with variants has no exact equivalent",
                )
            continue  # a disabled parent always satisfies enabled: false
        if parent.flag_named_group:
            raise UntranslatableError(
                f"{where} on {parent_name!r}",
                "the parent's rollout has no groupId: Unleash then hashes the *child's* name "
                "when checking the dependency; give the parent's strategy a groupId",
            )
        if expected is False:
            if wanted:
                raise UntranslatableError(
                    f"{where} on {parent_name!r}",
                    "enabled: false together with variants has no exact equivalent",
                )
            allowed = [parent.off]
        elif wanted:
            # A parent that resolves no variant at all also satisfies a variant dependency.
            allowed = [
                k for k, v in parent.on_variants.items() if v in wanted or k == parent.no_variant
            ]
        else:
            allowed = list(parent.on_variants)
        if not allowed:
            return False
        prerequisites.append({"flag": parent.key, "variants": allowed})
    if prerequisites:
        flag.document["prerequisites"] = prerequisites
    return True


def _features(data: Any) -> list[Mapping[str, Any]]:
    if not isinstance(data, Mapping) or not isinstance(data.get("features"), list):
        raise SourceDocumentError(
            "an Unleash import reads the client-features payload (GET /api/client/features): "
            'an object with a "features" list'
        )
    features = data["features"]
    if len(features) > MAX_FEATURES:
        raise SourceDocumentError(f"the payload has more than {MAX_FEATURES} flags")
    return [f for f in features if isinstance(f, Mapping)]


def translate(data: Any, environment: str) -> Translation:
    """One Fader environment document for an Unleash client-features payload."""
    features = _features(data)
    ctx = _Context()
    _segments(data.get("segments"), ctx)
    taken: set[str] = set()
    keys: dict[str, str] = {}
    raws: dict[str, Mapping[str, Any]] = {}
    flags: dict[str, _Flag] = {}
    for raw in features:
        name = raw.get("name")
        if not isinstance(name, str) or not name or name in raws:
            ctx.unsupported.append(
                Unsupported("flag", "a flag needs a unique, non-empty name", flag=str(name))
            )
            continue
        raws[name] = raw
        keys[name] = _fader_key(name, taken)
        if keys[name] != name:
            ctx.notes.append(f"Unleash flag {name!r} is Fader flag {keys[name]!r}")
        try:
            flags[name] = _flag(name, keys[name], raw, ctx)
        except UntranslatableError as exc:
            ctx.unsupported.append(Unsupported(exc.construct, exc.detail, flag=name))
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            # Hostile or corrupt input: one malformed flag does not stop the import.
            ctx.unsupported.append(Unsupported("flag", _malformed(exc), flag=name))
    for name in list(flags):
        flag = flags[name]
        try:
            satisfiable = _prerequisites(flag, flags, raws)
        except UntranslatableError as exc:
            ctx.unsupported.append(Unsupported(exc.construct, exc.detail, flag=name))
            del flags[name]
            continue
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            ctx.unsupported.append(Unsupported("dependencies", _malformed(exc), flag=name))
            del flags[name]
            continue
        if not satisfiable:
            flag.document["enabled"] = False
            flag.document.pop("prerequisites", None)
            ctx.notes.append(
                f"Unleash flag {name!r} depends on a flag that can never satisfy it "
                "(missing, itself dependent, or disabled): it is off in Fader"
            )
    document = _document(flags, ctx, environment)
    ctx.notes += _convention_notes(flags, data.get("segments"))
    return Translation(
        source="unleash",
        document=document,
        keys=keys,
        answers={f.key: f.answers for f in flags.values()},
        unsupported=tuple(ctx.unsupported),
        notes=tuple(ctx.notes),
        segment_keys=dict(ctx.segment_keys),
    )


_CONVENTION_NOTES = (
    (
        "NUM_",
        "NUM_* constraints compare numeric attributes: send numbers as JSON numbers (a "
        "numeric-looking string is a number to Unleash but not to Fader)",
    ),
    (
        "DATE_",
        "date constraints read the context attribute currentTime (RFC 3339): Fader reads "
        "no clock, so send it",
    ),
    (
        "applicationHostname",
        "applicationHostname matches the context attribute hostname: send "
        "the application's host name",
    ),
)


def _convention_notes(flags: Mapping[str, _Flag], segments: Any) -> list[str]:
    """Reminders of the context convention for the constructs this payload uses."""
    text = repr([f.raw for f in flags.values()]) + repr(segments)
    return [
        f"{note} (docs/migration-unleash.md)"
        for marker, note in _CONVENTION_NOTES
        if marker in text
    ]


def _document(flags: dict[str, _Flag], ctx: _Context, environment: str) -> dict[str, Any]:
    """The Fader document; a flag the engine still refuses is moved to the unsupported list."""
    while True:
        document = {
            "format": FORMAT_ID,
            "metadata": {"source": "unleash", "environment": environment},
            "segments": {**ctx.segments, **ctx.helpers.segments},
            "flags": {f.key: f.document for f in flags.values()},
        }
        try:
            parse_document(document)
        except ConfigurationError as exc:
            by_key = {f.key: n for n, f in flags.items()}
            bad = {
                by_key[p.path.split("/")[2]]
                for p in exc.problems
                if p.path.startswith("/flags/") and p.path.split("/")[2] in by_key
            }
            if not bad:
                raise
            for name in bad:
                detail = "; ".join(
                    f"{p.path}: {p.message}"
                    for p in exc.problems
                    if p.path.split("/")[2:3] == [flags[name].key]
                )
                ctx.unsupported.append(
                    Unsupported("flag", f"Fader refuses it: {detail}", flag=name)
                )
                del flags[name]
            continue
        return document


__all__ = ["translate"]
