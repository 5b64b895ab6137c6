"""Evaluation contexts for a parity check: read from a JSON-lines file, or generated.

A verification is only as good as its contexts. Users who have none get them generated from
the translated Fader document itself (so this works the same for every source system): every
clause of every flag rule and segment rule contributes its attribute and values that match it
and values that just miss it (``in`` values and their neighbours, affixes wrapped in other
text, numbers one either side, versions one patch either side, instants a day either side,
members and non-members of IP networks, segment targeting keys). The first contexts are built
to satisfy each rule in turn (and to miss each negated clause); the rest mix the collected
values at random with fresh targeting keys, so every split arm is reached too. Generation is
seeded: the same document and seed give the same contexts.

Contexts files are hostile input like any other: bounded in count, line length and nesting,
and every problem names its line.
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

MAX_CONTEXTS = 10_000
"""Contexts one verification evaluates (each against every flag, by two SDKs)."""
MAX_LINE_CHARS = 65_536
MAX_DEPTH = 16
"""Levels of objects and arrays in one context: attributes are flat or shallow."""
DEFAULT_COUNT = 200
_SEMVER = re.compile(r"^(v?)(\d+)\.(\d+)\.(\d+)(.*)$")
_GENERATED_PREFIX = "gen-user-"
_DENSITIES = (0.0, 0.0, 0.15, 0.5, 0.85)


class ContextsError(ValueError):
    """A contexts file or list that cannot be used; the message names the line or index."""


# ---------------------------------------------------------------------------------- reading
def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ContextsError(f"the key {key!r} appears twice in one object")
        found[key] = value
    return found


def check_context(value: Any, where: str) -> dict[str, Any]:
    """`value` as a context, or :class:`ContextsError` saying what is wrong at `where`."""
    if not isinstance(value, dict):
        raise ContextsError(
            f"{where}: a context is a JSON object such as "
            '{"targetingKey": "user-1", "email": "a@example.com"}'
        )
    if "targetingKey" in value and not isinstance(value["targetingKey"], str):
        raise ContextsError(f"{where}: targetingKey must be a string")
    if _depth(value) > MAX_DEPTH:
        raise ContextsError(f"{where}: the context nests more than {MAX_DEPTH} levels")
    return value


def check_contexts(values: Sequence[Any]) -> list[dict[str, Any]]:
    """A list of contexts as an API client sends them, checked like a file's lines."""
    if len(values) > MAX_CONTEXTS:
        raise ContextsError(f"at most {MAX_CONTEXTS:,} contexts per verification")
    return [check_context(v, f"context {i}") for i, v in enumerate(values)]


def read_jsonl(lines: Iterable[str], *, name: str = "contexts") -> list[dict[str, Any]]:
    """Contexts from JSON lines (one object per line, blank lines skipped)."""
    contexts: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        where = f"{name}:{number}"
        if len(line) > MAX_LINE_CHARS:
            raise ContextsError(f"{where}: the line is longer than {MAX_LINE_CHARS:,} characters")
        if not line.strip():
            continue
        if len(contexts) == MAX_CONTEXTS:
            raise ContextsError(f"{where}: at most {MAX_CONTEXTS:,} contexts per verification")
        try:
            value = json.loads(line, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise ContextsError(
                f"{where}: not valid JSON: {exc.msg} (column {exc.colno}); a contexts file "
                "holds one JSON object per line"
            ) from exc
        except RecursionError as exc:
            raise ContextsError(f"{where}: the context nests too deeply") from exc
        except ContextsError as exc:
            raise ContextsError(f"{where}: {exc}") from exc
        contexts.append(check_context(value, where))
    return contexts


# ------------------------------------------------------------------------------- generation
@dataclass(slots=True)
class _Values:
    """What the document says about the contexts it distinguishes."""

    attributes: dict[str, list[Any]] = field(default_factory=dict)
    seeds: list[str] = field(default_factory=list)
    """Attributes a split buckets by (``by``, fallbacks): given fresh values in most contexts."""
    keys: list[str] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    """Contexts (attribute → value) each built to match one rule, or miss a negated clause."""

    def add(self, attribute: str, values: Iterable[Any]) -> None:
        known = self.attributes.setdefault(attribute, [])
        for value in values:
            if value is not None and not any(_same(value, k) for k in known):
                known.append(value)

    def add_key(self, key: Any) -> None:
        if isinstance(key, str) and key not in self.keys:
            self.keys.append(key)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _semver_neighbours(text: str) -> tuple[str | None, str | None]:
    found = _SEMVER.match(text)
    if found is None:
        return None, None
    prefix, major, minor, patch, _ = found.groups()
    lower = None
    if int(patch) > 0:
        lower = f"{prefix}{major}.{minor}.{int(patch) - 1}"
    elif int(minor) > 0:
        lower = f"{prefix}{major}.{int(minor) - 1}.0"
    elif int(major) > 0:
        lower = f"{prefix}{int(major) - 1}.0.0"
    return lower, f"{prefix}{major}.{minor}.{int(patch) + 1}"


def _instant_neighbours(value: Any) -> tuple[Any, Any]:
    if _number(value):
        return value - 86_400, value + 86_400
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None, None
        return (when - timedelta(days=1)).isoformat(), (when + timedelta(days=1)).isoformat()
    return None, None


def _ip_values(value: Any) -> tuple[str | None, str | None]:
    """An address inside the network `value`, and one outside it."""
    if not isinstance(value, str):
        return None, None
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None, None
    inside = network[1] if network.num_addresses > 2 else network[0]
    outside_candidates = (
        ["203.0.113.7", "198.51.100.7", "10.255.255.254"]
        if network.version == 4
        else ["2001:db8:ffff::7", "fd00::7"]
    )
    outside = next((c for c in outside_candidates if ipaddress.ip_address(c) not in network), None)
    return str(inside), outside


def clause_values(clause: Mapping[str, Any]) -> tuple[list[Any], list[Any]]:
    """(values that match `clause`, values that just miss it), ignoring `negate`."""
    op = clause.get("op")
    values = [v for v in clause.get("values") or [] if v is not None]
    match: list[Any] = []
    miss: list[Any] = []
    for v in values:
        if op == "in":
            match.append(v)
            miss.append(v + 1 if _number(v) else (not v if isinstance(v, bool) else f"{v}-other"))
        elif op == "starts_with" and isinstance(v, str):
            match.append(f"{v}gen")
            miss.append(f"gen{v}")
        elif op == "ends_with" and isinstance(v, str):
            match.append(f"gen{v}")
            miss.append(f"{v}gen")
        elif op == "contains" and isinstance(v, str):
            match.append(f"gen-{v}-gen")
            miss.append("gen-" + v[::-1] + "-x" if v[::-1] != v else "gen-none")
        elif op in ("lt", "lte", "gt", "gte") and _number(v):
            below, above = v - 1, v + 1
            match.extend([below] if op.startswith("lt") else [above])
            miss.extend([above] if op.startswith("lt") else [below])
            (match if op.endswith("e") else miss).append(v)
        elif isinstance(op, str) and op.startswith("semver_") and isinstance(v, str):
            lower, higher = _semver_neighbours(v)
            equal: list[Any] = [v]
            less: list[Any] = [lower]
            more: list[Any] = [higher]
            kind = op.removeprefix("semver_")
            chosen: tuple[list[Any], list[Any]] = {
                "eq": (equal, less + more),
                "lt": (less, equal + more),
                "lte": (less + equal, more),
                "gt": (more, equal + less),
                "gte": (more + equal, less),
            }.get(kind, ([], []))
            match.extend(chosen[0])
            miss.extend(chosen[1])
        elif op in ("before", "after"):
            earlier, later = _instant_neighbours(v)
            match.append(earlier if op == "before" else later)
            miss.append(later if op == "before" else earlier)
        elif op == "ip_in":
            inside, outside = _ip_values(v)
            match.append(inside)
            miss.append(outside)
        elif op == "matches" and isinstance(v, str) and re.fullmatch(r"[\w@.\- ]*", v):
            match.append(v)  # a pattern without metacharacters matches itself
            miss.append("")
    if op == "exists":
        match.append("present")
    return [m for m in match if m is not None], [m for m in miss if m is not None]


def _clauses_of(rule: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in rule.get("clauses") or [] if isinstance(c, Mapping)]


def _satisfy(
    clauses: Sequence[Mapping[str, Any]],
    segments: Mapping[str, Any],
    depth: int = 0,
) -> dict[str, Any]:
    """Attribute → value for a context meant to match every clause (best effort)."""
    wanted: dict[str, Any] = {}
    for clause in clauses:
        op = clause.get("op")
        if op == "in_segment":
            if clause.get("negate") or depth > 4:
                continue
            for key in clause.get("values") or []:
                segment = segments.get(key)
                if not isinstance(segment, Mapping):
                    continue
                included = [k for k in segment.get("included") or [] if isinstance(k, str)]
                if included:
                    wanted.setdefault("targetingKey", included[0])
                    break
                rules = segment.get("rules") or []
                if rules and isinstance(rules[0], Mapping):
                    for path, value in _satisfy(_clauses_of(rules[0]), segments, depth + 1).items():
                        wanted.setdefault(path, value)
                    break
            continue
        attribute = clause.get("attribute")
        if not isinstance(attribute, str):
            continue
        match, miss = clause_values(clause)
        chosen = miss if clause.get("negate") else match
        if op == "exists" and clause.get("negate"):
            continue  # absent is what a negated `exists` wants
        if chosen:
            wanted.setdefault(attribute, chosen[0])
    return wanted


def _collect(document: Mapping[str, Any]) -> _Values:
    found = _Values()
    segments = document.get("segments") or {}
    rules: list[Mapping[str, Any]] = []
    for flag in (document.get("flags") or {}).values():
        if not isinstance(flag, Mapping):
            continue
        for rule in flag.get("rules") or []:
            if isinstance(rule, Mapping):
                rules.append(rule)
                found.targets.append(_satisfy(_clauses_of(rule), segments))
        for serve in [flag.get("default") or {}, *(flag.get("rules") or [])]:
            split = serve.get("split") if isinstance(serve, Mapping) else None
            if isinstance(split, Mapping) and isinstance(split.get("by"), str):
                found.seeds.append(split["by"])
            bucketing = split.get("bucketing") if isinstance(split, Mapping) else None
            if isinstance(bucketing, Mapping):
                if isinstance(bucketing.get("contextKind"), str):
                    found.add("kind", [bucketing["contextKind"], "user", "device"])
                for path in bucketing.get("fallback") or []:
                    if isinstance(path, str):
                        found.seeds.append(path)
    for segment in segments.values():
        if not isinstance(segment, Mapping):
            continue
        for key in [*(segment.get("included") or []), *(segment.get("excluded") or [])]:
            found.add_key(key)
        for rule in segment.get("rules") or []:
            if isinstance(rule, Mapping):
                rules.append(rule)
    for rule in rules:
        for clause in _clauses_of(rule):
            attribute = clause.get("attribute")
            if not isinstance(attribute, str) or clause.get("op") == "in_segment":
                continue
            match, miss = clause_values(clause)
            if attribute == "targetingKey":
                for key in match + miss:
                    found.add_key(key)
            else:
                found.add(attribute, match + miss)
    return found


def _put(context: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted attribute path (``address.country``) as nested objects."""
    if path == "targetingKey" or "." not in path:
        context[path] = value
        return
    head, rest = path.split(".", 1)
    inner = context.get(head)
    if not isinstance(inner, dict):
        inner = context[head] = {}
    _put(inner, rest, value)


def _random_value(rng: random.Random) -> str:
    """A fresh string for an attribute no clause constrains (a split's `by`, say): strings,
    because that is what every system hashes alike."""
    return f"gen-{rng.getrandbits(40):010x}"


def generate(
    document: Mapping[str, Any], count: int = DEFAULT_COUNT, *, seed: int = 17
) -> list[dict[str, Any]]:
    """`count` contexts for `document` (a ``fader/v1`` document): see the module docstring."""
    if not 0 < count <= MAX_CONTEXTS:
        raise ContextsError(f"generate between 1 and {MAX_CONTEXTS:,} contexts")
    rng = random.Random(seed)
    found = _collect(document)
    contexts: list[dict[str, Any]] = []
    for target in found.targets[:count]:
        context: dict[str, Any] = {"targetingKey": f"{_GENERATED_PREFIX}{len(contexts)}"}
        for path, value in target.items():
            _put(context, path, value)
        contexts.append(context)
    attributes = sorted(found.attributes.items())
    seeds = sorted(set(found.seeds))
    while len(contexts) < count:
        index = len(contexts)
        use_known = found.keys and rng.random() < 0.2
        fresh = f"{_GENERATED_PREFIX}{index}-{rng.getrandbits(32):08x}"
        key = rng.choice(found.keys) if use_known else fresh
        context = {"targetingKey": key}
        # How many attributes this context has: none (it falls through to the default and
        # its split), a few, or most; a missing attribute is a case of its own.
        density = rng.choice(_DENSITIES)
        for path, values in attributes:
            if rng.random() < density:
                _put(context, path, rng.choice(values) if values else _random_value(rng))
        for path in seeds:
            if rng.random() < 0.9:
                _put(context, path, _random_value(rng))
        contexts.append(context)
    return contexts


def iter_jsonl(contexts: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """Contexts as JSON lines (what `fader import --generate-contexts` can save)."""
    for context in contexts:
        yield json.dumps(context, ensure_ascii=False, sort_keys=True) + "\n"
