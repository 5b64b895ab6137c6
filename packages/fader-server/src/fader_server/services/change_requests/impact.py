"""Who gets what before and after a change request: every affected flag, in every environment
the request changes, evaluated by the engine for a sample of contexts on the environment's
document as it is and as it would be.

The sample is the contexts the author uploaded with the request (at most
:data:`MAX_CONTEXTS`, :data:`MAX_CONTEXT_BYTES` of JSON), else the targeting keys of the
affected flags' recent debug events (the only contexts the usage data keeps: SDK summaries hold
sketches, not contexts), each evaluated as ``{"targetingKey": key}``, so splits are judged
exactly and attribute rules as for a context without attributes. The preview says which
source it used.

A flag is affected when its document entry differs, or when it uses (directly or through other
segments) a segment whose definition differs; other flags cannot change variant.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from fader_engine.evaluate import Engine
from fader_engine.formats import load
from fader_server.errors import FieldProblem, InvalidInputError
from fader_server.services import documents
from fader_server.services.access import Clock
from fader_server.services.change_requests.operations import overlays
from fader_server.storage.ports import JSON, Project
from fader_server.storage.ports.resources import ResourceReads
from fader_server.storage.ports.usage import UsageReads

MAX_CONTEXTS = 1_000
MAX_CONTEXT_BYTES = 64 * 1024
MAX_FLAGS = 100
"""Flags evaluated per environment (the first, by key): bounds a preview's work."""
EXAMPLES = 10
Source = Literal["uploaded", "usage", "none"]
DEBUG_EVENTS_PER_FLAG = 200


@dataclass(frozen=True, slots=True)
class Example:
    key: str
    before: str | None
    after: str | None


@dataclass(frozen=True, slots=True)
class FlagImpact:
    """One flag in one environment: of `evaluated` contexts, `changed` get another variant."""

    environment: str
    flag: str
    evaluated: int
    changed: int
    examples: list[Example] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Impact:
    """A request's preview: where its contexts came from, and each affected flag."""

    source: Source
    """``uploaded``, ``usage`` (debug events' targeting keys) or ``none``."""
    contexts: int
    flags: list[FlagImpact]


class ImpactReads(ResourceReads, UsageReads, Protocol):
    """What a preview reads: documents, and recent debug events for a sample."""


def check_contexts(contexts: Any) -> list[JSON]:
    """An uploaded sample, bounded and shaped: a list of objects, each with a targeting key."""
    if not isinstance(contexts, list) or not all(isinstance(c, Mapping) for c in contexts):
        raise InvalidInputError(
            "contexts must be a list of objects",
            [FieldProblem("/body/contexts", "a list of evaluation contexts")],
        )
    if len(contexts) > MAX_CONTEXTS:
        raise InvalidInputError(
            f"at most {MAX_CONTEXTS} contexts",
            [FieldProblem("/body/contexts", f"at most {MAX_CONTEXTS}")],
        )
    if len(json.dumps(contexts, separators=(",", ":"))) > MAX_CONTEXT_BYTES:
        raise InvalidInputError(
            f"the contexts take more than {MAX_CONTEXT_BYTES} bytes of JSON",
            [FieldProblem("/body/contexts", f"at most {MAX_CONTEXT_BYTES} bytes")],
        )
    return [dict(c) for c in contexts]


def preview(
    tx: ImpactReads,
    project: Project,
    ops: Sequence[Mapping[str, Any]],
    uploaded: Sequence[JSON],
    clock: Clock,
) -> Impact:
    """Evaluate the affected flags before and after `ops` (see the module docstring)."""
    flags, segments, configs = overlays(ops)
    envs = documents.environments(tx, project)
    touched = envs if flags or segments else [e for e in envs if e in configs]
    now = clock().timestamp()
    plans: list[tuple[str, JSON, JSON, list[str]]] = []
    for env in touched:
        before = documents.build(tx, project, env)
        after = documents.build(
            tx, project, env, flags=flags, segments=segments, configs=configs.get(env)
        )
        changed = _affected_flags(before, after)[:MAX_FLAGS]
        if changed:
            plans.append((env, before, after, changed))
    source: Source = "uploaded"
    sample = [dict(c) for c in uploaded]
    if not uploaded:
        keys = _recent_keys(tx, project, ((env, names) for env, _, _, names in plans))
        source = "usage" if keys else "none"
        sample = [{"targetingKey": k} for k in keys]
    found: list[FlagImpact] = []
    for env, before_doc, after_doc, names in plans:
        old_engine = load(before_doc, clock=lambda: now)
        new_engine = load(after_doc, clock=lambda: now)
        for name in names:
            found.append(_compare(env, name, old_engine, new_engine, sample))
    return Impact(source=source, contexts=len(sample), flags=found)


def _compare(
    env: str, flag: str, before: Engine, after: Engine, sample: Sequence[JSON]
) -> FlagImpact:
    changed = 0
    examples: list[Example] = []
    for context in sample:
        old = _variant(before, flag, context)
        new = _variant(after, flag, context)
        if old != new:
            changed += 1
            if len(examples) < EXAMPLES:
                key = context.get("targetingKey")
                examples.append(Example(str(key) if key is not None else "", old, new))
    return FlagImpact(env, flag, len(sample), changed, examples)


def _variant(engine: Engine, flag: str, context: Mapping[str, Any]) -> str | None:
    if flag not in engine:
        return None  # absent (deleted, or not yet created): nothing is served
    variant = engine.evaluate(flag, context).variant
    return None if variant is None else str(variant)


def _affected_flags(before: JSON, after: JSON) -> list[str]:
    """Flags whose entry differs, or that use a segment whose definition differs."""
    old_segments, new_segments = before["segments"], after["segments"]
    changed_segments = {
        s
        for s in set(old_segments) | set(new_segments)
        if old_segments.get(s) != new_segments.get(s)
    }
    # A segment that uses a changed segment changes too (to a fixed point).
    growing = True
    while growing:
        growing = False
        for name, entry in {**old_segments, **new_segments}.items():
            if name not in changed_segments and changed_segments & set(_uses(entry.get("rules"))):
                changed_segments.add(name)
                growing = True
    found: list[str] = []
    for name in sorted(set(before["flags"]) | set(after["flags"])):
        old, new = before["flags"].get(name), after["flags"].get(name)
        uses = set(_uses((old or {}).get("rules"))) | set(_uses((new or {}).get("rules")))
        if old != new or uses & changed_segments:
            found.append(name)
    return found


def _uses(rules: Any) -> Iterable[str]:
    for rule in rules or []:
        for clause in rule.get("clauses") or []:
            if clause.get("op") == "in_segment":
                yield from (str(v) for v in clause.get("values") or [])


def _recent_keys(
    tx: UsageReads, project: Project, targets: Iterable[tuple[str, list[str]]]
) -> list[str]:
    """Distinct targeting keys of the affected flags' newest debug events, at most
    :data:`MAX_CONTEXTS`."""
    keys: dict[str, None] = {}
    for env, names in targets:
        for name in names:
            for event in tx.debug_events(project.id, env, name, DEBUG_EVENTS_PER_FLAG):
                if event.targeting_key:
                    keys.setdefault(event.targeting_key, None)
                if len(keys) >= MAX_CONTEXTS:
                    return list(keys)
    return list(keys)
