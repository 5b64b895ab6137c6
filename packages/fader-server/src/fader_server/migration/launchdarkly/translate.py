"""LaunchDarkly flag data (one environment) as a Fader document, exactly, or reported.

The order LaunchDarkly evaluates a flag in (``ldclient.impl.evaluator``) is kept: off, then
prerequisites, then individual targets, then rules in order, then the fallthrough. Targets and
rules become Fader rules (targets first); the fallthrough becomes the default; an off flag is
a disabled one. What each construct becomes and why is in docs/migration-launchdarkly.md; the
modules beside this one hold the pieces (clauses, rules, rollouts, segments, variants).

A flag that cannot be translated exactly is left out and reported as :class:`Unsupported`, and
so is every flag that has it as a prerequisite: an import that changes who gets what is worse
than none. Deleted flags and segments are skipped, as the SDK skips them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from fader_engine.errors import ConfigurationError
from fader_engine.model import FORMAT_ID
from fader_engine.parse import parse_document
from fader_server.migration.launchdarkly.clauses import DEFAULT_KIND, UntranslatableError
from fader_server.migration.launchdarkly.document import read_document
from fader_server.migration.launchdarkly.rollouts import rollout_split
from fader_server.migration.launchdarkly.rules import (
    Helpers,
    fader_key,
    key_rules,
    rule_formula,
    string_list,
)
from fader_server.migration.launchdarkly.segments import Segments, translate_segments
from fader_server.migration.launchdarkly.variants import Variants, value_type
from fader_server.migration.model import JSON, Translation, Unsupported

SOURCE_NAME = "launchdarkly"


@dataclass
class _Flag:
    """One flag translated but for its prerequisites, which need every other flag first."""

    key: str
    variants: Variants
    document: JSON
    on: bool
    off: int | None
    prerequisites: list[tuple[str, int]] = field(default_factory=list)


def _is_index(value: Any, variants: Variants) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(variants)


def _index(value: Any, variants: Variants, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise UntranslatableError(where, "'variation' must be an integer")
    if not 0 <= value < len(variants):
        raise UntranslatableError(
            where,
            f"variation {value} does not exist; LaunchDarkly answers these evaluations with an "
            "error (the caller's default), which a Fader flag cannot serve",
        )
    return value


def _serve(raw: Any, where: str, flag: str, salt: str, variants: Variants) -> JSON:
    """A rule's or the fallthrough's variation or rollout as Fader's ``variant``/``split``."""
    if not isinstance(raw, dict):
        raise UntranslatableError(where, "serves neither a variation nor a rollout")
    if raw.get("variation") is not None:
        return {"variant": variants.name(_index(raw["variation"], variants, where))}
    if raw.get("rollout") is not None:
        return rollout_split(raw["rollout"], flag, salt, variants, f"{where}, rollout")
    raise UntranslatableError(
        where,
        "serves neither a variation nor a rollout; LaunchDarkly answers with an error "
        "(the caller's default), which a Fader flag cannot serve",
    )


def _list(raw: Mapping[str, Any], name: str) -> list[Any]:
    value = raw.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise UntranslatableError(name, "must be a list of objects")
    return value


def _target_rules(raw: Mapping[str, Any], variants: Variants, helpers: Helpers) -> list[JSON]:
    """Individual targets, in LaunchDarkly's order (``evaluator_common.check_targets``).

    Without ``contextTargets`` (older data) only ``targets`` count, for user contexts. With
    them, ``contextTargets`` give the order; a user-kind entry stands for the *first*
    ``targets`` entry of the same variation (its own values are empty).
    """
    targets, context_targets = _list(raw, "targets"), _list(raw, "contextTargets")
    entries: list[tuple[str, list[str], Any, str]] = []
    if not context_targets:
        for i, t in enumerate(targets):
            where = f"targets {i + 1}"
            entries.append(
                (DEFAULT_KIND, string_list(t, "values", where), t.get("variation"), where)
            )
    for i, t in enumerate(context_targets):
        where = f"contextTargets {i + 1}"
        kind = t.get("contextKind") or DEFAULT_KIND
        if not isinstance(kind, str):
            raise UntranslatableError(where, "'contextKind' must be text")
        if kind == DEFAULT_KIND:
            same = [u for u in targets if u.get("variation") == t.get("variation")]
            values = string_list(same[0], "values", where) if same else []
        else:
            values = string_list(t, "values", where)
        entries.append((kind, values, t.get("variation"), where))
    rules: list[JSON] = []
    for kind, values, variation, where in entries:
        if not values:
            continue
        name = variants.name(_index(variation, variants, where))
        description = f"LaunchDarkly {where} ({kind})"
        rules += [
            {"description": description, "clauses": clauses, "variant": name}
            for clauses in key_rules(values, kind, helpers)
        ]
    return rules


class _Translator:
    def __init__(self, segments: Segments, helpers: Helpers) -> None:
        self.segments = segments
        self.helpers = helpers
        self.notes: list[str] = []
        self.array_attributes: dict[str, set[str]] = defaultdict(set)

    def note_arrays(self, attribute: str, op: str) -> None:
        """Remember an attribute compared with an operator Fader applies to one value only."""
        if attribute not in ("kind", "targetingKey", "anonymous", "name"):
            self.array_attributes[attribute].add(op)

    def flag(self, key: str, raw: Any) -> _Flag:
        if not isinstance(raw, dict):
            raise UntranslatableError("flag", "must be an object")
        variations = raw.get("variations")
        if not isinstance(variations, list) or not variations:
            raise UntranslatableError(
                "variations", "a flag without variations answers only errors in LaunchDarkly"
            )
        kind = value_type(variations)
        if kind is None:
            raise UntranslatableError(
                "variations",
                "the variations are of different JSON types (or null); a Fader flag has one type",
            )
        variants = Variants(variations)
        on, salt = raw.get("on", False), raw.get("salt") or ""
        if not isinstance(on, bool) or not isinstance(salt, str):
            raise UntranslatableError("flag", "'on' must be a boolean and 'salt' text")
        off = raw.get("offVariation")
        # An off variation that is not one of the variations is LaunchDarkly's error answer:
        # the caller's default, exactly as without one.
        off_index = off if _is_index(off, variants) else None
        has_off = off_index is not None
        prerequisites = []
        for i, p in enumerate(_list(raw, "prerequisites")):
            where = f"prerequisite {i + 1}"
            if not isinstance(p.get("key"), str):
                raise UntranslatableError(where, "'key' must be text")
            variation = p.get("variation")
            if not isinstance(variation, int) or isinstance(variation, bool):
                raise UntranslatableError(where, "'variation' must be an integer")
            prerequisites.append((p["key"], variation))
        if not has_off and not on:
            raise UntranslatableError(
                "offVariation",
                "the flag is off without an off variation: LaunchDarkly answers every "
                "evaluation with the caller's default, which a Fader flag cannot serve",
            )
        if not has_off and prerequisites:
            raise UntranslatableError(
                "offVariation",
                "without an off variation LaunchDarkly answers the caller's default when a "
                "prerequisite fails, which a Fader flag cannot serve",
            )
        rules = _target_rules(raw, variants, self.helpers)
        for i, rule in enumerate(_list(raw, "rules")):
            where = f"rule {i + 1}"
            formula = rule_formula(
                rule.get("clauses"),
                where,
                self.segments.lookup,
                self.helpers,
                self.note_arrays,
            )
            if not formula:
                self.notes.append(
                    f"flag '{key}' {where} can never match (its clauses need contexts of two "
                    "kinds, a segment that does not exist or an attribute no context has); it "
                    "is left out"
                )
                continue
            serve = _serve(rule, where, key, salt, variants)
            rule_id = rule.get("id")
            description = f"LaunchDarkly {where}" + (
                f" ({rule_id})" if isinstance(rule_id, str) else ""
            )
            rules += [{"description": description, "clauses": c, **serve} for c in formula]
        try:
            default = _serve(raw.get("fallthrough"), "fallthrough", key, salt, variants)
        except UntranslatableError:
            if on:
                raise
            default = {"variant": variants.name(off_index or 0)}  # off: never served
        off_name = variants.name(off_index or 0)
        if not has_off:
            self.notes.append(
                f"flag '{key}' has no off variation; Fader needs one and uses '{off_name}', "
                "served only if the flag is turned off in Fader (LaunchDarkly would answer the "
                "caller's default)"
            )
        document: JSON = {
            "type": kind,
            "variants": {},  # filled once every alias is known
            "enabled": on,
            "offVariant": off_name,
            "default": default,
        }
        if rules:
            document["rules"] = rules
        return _Flag(key, variants, document, on, off_index, prerequisites)


def _prerequisite_order(flags: Mapping[str, _Flag]) -> tuple[list[str], set[str]]:
    """Flags with their prerequisites first, and the flags in or behind a prerequisite cycle."""
    pending = {
        k: {p for p, _ in f.prerequisites if p in flags and p != k} for k, f in flags.items()
    }
    cyclic = {k for k, f in flags.items() if any(p == k for p, _ in f.prerequisites)}
    dependents: dict[str, list[str]] = defaultdict(list)
    for k, deps in pending.items():
        for d in deps:
            dependents[d].append(k)
    ready = [k for k, deps in pending.items() if not deps and k not in cyclic]
    order: list[str] = []
    while ready:
        k = ready.pop()
        order.append(k)
        for dependent in dependents[k]:
            pending[dependent].discard(k)
            if not pending[dependent] and dependent not in cyclic:
                ready.append(dependent)
    return order, set(flags) - set(order)


def _referenced_segments(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("op") == "in_segment":
                found.update(v for v in item.get("values", []) if isinstance(v, str))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def translate(data: Any, environment: str) -> Translation:
    """The Fader document of LaunchDarkly flag data (see the module docstring); pure."""
    ld = read_document(data)
    helpers = Helpers(())
    translator = _Translator(Segments(), helpers)
    segments = translate_segments(ld.segments, helpers, translator.note_arrays)
    translator.segments = segments
    unsupported: dict[str, list[Unsupported]] = {}
    notes: list[str] = []
    live = [
        k for k, v in ld.flags.items() if not (isinstance(v, dict) and v.get("deleted") is True)
    ]
    keys: dict[str, str] = {}
    for key in live:
        keys[key] = fader_key(key, keys.values())
    built: dict[str, _Flag] = {}
    for key in live:
        raw = ld.flags[key]
        if isinstance(raw, dict) and isinstance(raw.get("key"), str) and raw["key"] != key:
            notes.append(f"flag '{key}' carries the key '{raw['key']}'; it is imported as '{key}'")
        try:
            built[key] = translator.flag(key, raw)
        except UntranslatableError as exc:
            unsupported[key] = [Unsupported(exc.construct, exc.detail, flag=key)]
    order, cyclic = _prerequisite_order(built)
    for key in cyclic:
        unsupported[key] = [
            Unsupported(
                "prerequisites",
                "the flag is in (or depends on) a cycle of prerequisites; LaunchDarkly fails "
                "its evaluation",
                flag=key,
            )
        ]
    for key in order:
        _resolve_prerequisites(built[key], built, unsupported, keys, notes)
    flags = {keys[k]: f for k, f in built.items() if k not in unsupported}
    document = _assemble(flags, segments, helpers, environment)
    document, dropped = _validated(document, {keys[k]: k for k in built if keys[k] in flags})
    for source_key, problem in dropped.items():
        unsupported[source_key] = [problem]
    flags = {k: f for k, f in flags.items() if k in document["flags"]}
    for key, fader in keys.items():
        if key in built and key not in unsupported and fader != key:
            notes.append(f"flag '{key}' is imported as '{fader}' (Fader keys are lower case)")
    for key, fader in segments.keys.items():
        if fader != key:
            notes.append(f"segment '{key}' is imported as '{fader}' (Fader keys are lower case)")
    if translator.array_attributes:
        listed = ", ".join(
            f"'{a}' ({', '.join(sorted(ops))})"
            for a, ops in sorted(translator.array_attributes.items())
        )
        notes.append(
            "LaunchDarkly applies every operator to each element of an array attribute, Fader "
            f"only 'in': a context holding an array in {listed} may be answered differently"
        )
    return Translation(
        source=SOURCE_NAME,
        document=document,
        keys={k: keys[k] for k in built if k not in unsupported},
        answers={fader: f.variants.answers() for fader, f in flags.items()},
        unsupported=(
            *segments.unsupported.values(),
            *(u for k in live if k in unsupported for u in unsupported[k]),
        ),
        notes=tuple(translator.notes + notes + segments.notes),
        segment_keys=dict(segments.keys),
    )


def _resolve_prerequisites(
    flag: _Flag,
    built: Mapping[str, _Flag],
    unsupported: dict[str, list[Unsupported]],
    keys: Mapping[str, str],
    notes: list[str],
) -> None:
    """Fader prerequisites for `flag`, whose prerequisites are all resolved already."""
    wanted: dict[str, set[int]] = defaultdict(set)
    for prerequisite, variation in flag.prerequisites:
        wanted[prerequisite].add(variation)
    entries: list[JSON] = []
    never = None
    for prerequisite, variations in wanted.items():
        if prerequisite in unsupported:
            unsupported[flag.key] = [
                Unsupported(
                    "prerequisites",
                    f"prerequisite flag '{prerequisite}' is not imported",
                    flag=flag.key,
                )
            ]
            return
        target = built.get(prerequisite)
        (variation,) = variations if len(variations) == 1 else (-1,)
        if target is None or not 0 <= variation < len(target.variants):
            never = prerequisite
            continue
        if target.on and variation == target.off and "prerequisites" in target.document:
            unsupported[flag.key] = [
                Unsupported(
                    "prerequisites",
                    f"it requires the off variation of '{prerequisite}', which LaunchDarkly "
                    f"also serves when a prerequisite of '{prerequisite}' fails and counts as "
                    "passing; Fader counts a failed prerequisite as not passing",
                    flag=flag.key,
                )
            ]
            return
        entries.append(
            {"flag": keys[prerequisite], "variants": target.variants.names_of(variation)}
        )
    if never is not None:
        # LaunchDarkly fails the prerequisite for everyone, so the flag serves its off
        # variation to everyone while staying on: a flag that is on still passes a
        # prerequisite on that variation, which a disabled Fader flag would not.
        flag.document.pop("rules", None)
        flag.document["default"] = {"variant": flag.document["offVariant"]}
        notes.append(
            f"flag '{flag.key}': prerequisite '{never}' can never pass (no such flag, no such "
            "variation, or two different variations required), so the flag serves its off "
            "variation to everyone; it is imported serving that variation"
        )
        return
    if entries:
        flag.document["prerequisites"] = entries


def _assemble(
    flags: Mapping[str, _Flag], segments: Segments, helpers: Helpers, environment: str
) -> JSON:
    out_flags = {}
    for key, flag in flags.items():
        document = dict(flag.document)
        document["variants"] = flag.variants.document()
        out_flags[key] = document
    all_segments = {**segments.documents, **helpers.segments}
    # Keep helper segments something still uses (a flag or segment left out may have made one).
    used = _referenced_segments(out_flags) | _referenced_segments(segments.documents)
    while True:
        more = _referenced_segments({k: all_segments[k] for k in used if k in all_segments}) - used
        if not more:
            break
        used |= more
    kept = {k: v for k, v in all_segments.items() if k in segments.documents or k in used}
    return {
        "format": FORMAT_ID,
        "metadata": {"source": SOURCE_NAME, "environment": environment},
        "segments": kept,
        "flags": out_flags,
    }


def _validated(document: JSON, sources: Mapping[str, str]) -> tuple[JSON, dict[str, Unsupported]]:
    """The document without any flag the engine refuses (a limit, say), and why each was.

    Translation aims never to produce such a flag; this keeps one surprise from sinking the
    whole import. A problem outside a flag means the document cannot be used at all.
    """
    dropped: dict[str, Unsupported] = {}
    for _ in range(len(document["flags"]) + 1):
        try:
            parse_document(document)
            return document, dropped
        except ConfigurationError as exc:
            bad: dict[str, str] = {}
            for problem in exc.problems:
                parts = problem.path.split("/")
                if len(parts) > 2 and parts[1] == "flags" and parts[2] in document["flags"]:
                    bad.setdefault(parts[2], f"{problem.path}: {problem.message}")
                else:
                    raise
            for fader, message in bad.items():
                dropped[sources[fader]] = Unsupported(
                    "Fader document",
                    f"the engine refuses the translation ({message})",
                    flag=sources[fader],
                )
            flags = dict(document["flags"])
            while bad:
                for key in bad:
                    flags.pop(key, None)
                behind = {
                    k: f"prerequisite flag '{sources[p['flag']]}' is not imported"
                    for k, f in flags.items()
                    for p in f.get("prerequisites", [])
                    if p["flag"] in bad
                }
                for fader, message in behind.items():
                    dropped[sources[fader]] = Unsupported(
                        "prerequisites", message, flag=sources[fader]
                    )
                bad = behind
            document = {**document, "flags": flags}
    return document, dropped
