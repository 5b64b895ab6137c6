"""Field-by-field checks of the entries of a project bundle (:mod:`.bundle_format`).

A bundle arrives from outside (a file someone kept, edited or forged), so every entry is
checked the way the admin API's own models check a request before anything is stored: known
fields only, JSON types exact (``"protected": 0`` is not ``false``), strings and lists
bounded, numbers finite and in range, and absent optional fields filled with the defaults the
API stores. The API's models cannot be reused here (services know nothing of the HTTP edge), so
the ranges below repeat theirs (``api/schemas.py``, ``api/rollout_schemas.py``); what a flag's
configuration *means* is still the engine's to judge, on the documents built from the bundle.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from fader_server.errors import FieldProblem

Check = Callable[[Any], str | None]
"""A field check: None when the value is acceptable, else what is wrong with it."""

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
MAX_KEY = 128
MAX_LIST = 1_000
REQUIRED = object()
"""Marks a field with no default."""


def key_problem(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > MAX_KEY or not KEY_PATTERN.match(value):
        return "a key: lower-case letters, digits, '.', '_' and '-', at most 128 characters"
    return None


def text(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, str) or not low <= len(value) <= high:
            return f"a string of {low} to {high} characters"
        return None

    return check


def number(low: float, high: float, *, open_low: bool = False, integer: bool = False) -> Check:
    def check(value: Any) -> str | None:
        kind = int if integer else (int, float)
        wrong = isinstance(value, bool) or not isinstance(value, kind)
        if wrong or not math.isfinite(value) or value > high or value < low:
            return f"{'an integer' if integer else 'a number'} from {low:g} to {high:g}"
        if open_low and value == low:
            return f"a number above {low:g}"
        return None

    return check


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"one of {', '.join(choices)}"

    return check


def optional(inner: Check) -> Check:
    def check(value: Any) -> str | None:
        return None if value is None else inner(value)

    return check


def list_of(inner: Check, low: int = 0, high: int = MAX_LIST, *, unique: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, list) or not low <= len(value) <= high:
            return f"a list of {low} to {high} items"
        for item in value:
            if (wrong := inner(item)) is not None:
                return f"every item must be {wrong}"
        if unique and len({repr(v) for v in value}) != len(value):
            return "a list without repeated items"
        return None

    return check


def json_object(value: Any) -> str | None:
    return None if isinstance(value, dict) else "an object"


def variants(value: Any) -> str | None:
    if not isinstance(value, dict) or not 1 <= len(value) <= MAX_LIST:
        return f"an object of 1 to {MAX_LIST} variants"
    if any(not 1 <= len(name) <= 128 for name in value):
        return "variant names of 1 to 128 characters"
    return None


Spec = Mapping[str, tuple[Check, Any]]
"""Field name → (check, default or :data:`REQUIRED`)."""


def check_fields(
    value: Any, spec: Spec, path: str, problems: list[FieldProblem], *, allow: tuple[str, ...] = ()
) -> dict[str, Any]:
    """`value` checked against `spec` (problems appended, each with its path), with defaults
    filled in; `allow` names fields the caller handles itself (e.g. ``key``)."""
    if not isinstance(value, dict):
        problems.append(FieldProblem(path, "must be an object"))
        return {}
    out: dict[str, Any] = {}
    for name in sorted(set(value) - set(spec) - set(allow)):
        problems.append(FieldProblem(f"{path}/{name}", "unknown field"))
    for name, (check, default) in spec.items():
        if name not in value:
            if default is REQUIRED:
                problems.append(FieldProblem(f"{path}/{name}", "required"))
            else:
                out[name] = list(default) if isinstance(default, list) else default
            continue
        wrong = check(value[name])
        if wrong is not None:
            problems.append(FieldProblem(f"{path}/{name}", f"must be {wrong}"))
        out[name] = value[name]
    return out


FLAG: Spec = {
    "name": (text(1, 200), REQUIRED),
    "description": (text(0, 5000), ""),
    "tags": (list_of(text(1, 64), 0, 100), []),
    "kind": (one_of("release", "experiment", "ops", "permission"), "release"),
    "type": (one_of("boolean", "string", "number", "object"), REQUIRED),
    "variants": (variants, REQUIRED),
    "owner_team": (optional(text(0, 200)), None),
    "expected_lifetime_days": (optional(number(1, 3650, integer=True)), None),
    "client_side": (boolean, False),
}
"""A flag definition as the API stores it (``FlagFields.data``)."""

SEGMENT: Spec = {
    "name": (optional(text(0, 200)), None),
    "description": (optional(text(0, 5000)), None),
    "included": (list_of(text(0, 1000), 0, 100_000), []),
    "excluded": (list_of(text(0, 1000), 0, 100_000), []),
    "rules": (list_of(json_object, 0, MAX_LIST), []),
}
"""A segment as the API stores it; its rules' clauses are the engine's to judge."""

CONFIG: Spec = {
    "enabled": (boolean, REQUIRED),
    "offVariant": (text(1, 128), REQUIRED),
    "rules": (list_of(json_object, 0, MAX_LIST), []),
    "default": (json_object, REQUIRED),
    "prerequisites": (list_of(json_object, 0, MAX_LIST), []),
}
"""A flag configuration (``ConfigIn``); what its rules mean is the engine's to judge."""

_STAGE: Spec = {
    "name": (text(1, 200), REQUIRED),
    "min_duration": (number(0, 365 * 86400), REQUIRED),
    "segment": (optional(key_problem), None),
    "percent": (optional(number(0, 100, open_low=True)), None),
    "approval": (boolean, False),
}
_METRIC_GATE: Spec = {
    "kind": (one_of("error_rate", "latency"), REQUIRED),
    "event": (text(1, 200), REQUIRED),
    "alpha": (number(0, 0.2, open_low=True), 0.01),
    "min_samples": (number(1, 100_000_000, integer=True), 200),
    "margin": (number(0, math.inf), 0.0),
    "detect": (optional(number(0, math.inf, open_low=True)), None),
    "trust": (list_of(one_of("server", "client"), 1, 2, unique=True), ["server"]),
}
_PROMETHEUS_GATE: Spec = {
    "kind": (one_of("prometheus"), REQUIRED),
    "url": (text(1, 2000), REQUIRED),
    "query": (text(1, 5000), REQUIRED),
    "max_value": (optional(number(-math.inf, math.inf)), None),
    "min_value": (optional(number(-math.inf, math.inf)), None),
    "trip_after": (number(1, 1000, integer=True), 2),
}
_HTTP_GATE: Spec = {
    "kind": (one_of("http_check"), REQUIRED),
    "url": (text(1, 2000), REQUIRED),
    "interval": (number(0.1, 86400), 10.0),
    "max_latency_ms": (number(0, 60_000, open_low=True), 1000.0),
    "expect_status": (number(100, 599, integer=True), 200),
    "trip_after": (number(1, 1000, integer=True), 3),
}
_GATES = {
    "error_rate": _METRIC_GATE,
    "latency": _METRIC_GATE,
    "prometheus": _PROMETHEUS_GATE,
    "http_check": _HTTP_GATE,
}
MAX_STAGES = 50
MAX_GATES = 50


def check_template(value: Any, path: str, problems: list[FieldProblem]) -> dict[str, Any]:
    """A rollout template's ``stages``, ``gates`` and ``split_by`` (``TemplateIn``), each
    stage and gate checked by its own fields; whether segments exist and percentages grow is
    checked against the project when it is written (``rollouts.checks``)."""
    if not isinstance(value, dict):
        problems.append(FieldProblem(path, "must be an object"))
        return {}
    spec: Spec = {
        "name": (text(1, 200), REQUIRED),
        "stages": (list_of(json_object, 1, MAX_STAGES), REQUIRED),
        "gates": (list_of(json_object, 0, MAX_GATES), []),
        "split_by": (optional(text(1, 200)), None),
    }
    found = check_fields(value, spec, path, problems, allow=("key",))
    if not isinstance(found.get("stages"), list) or not isinstance(found.get("gates"), list):
        return found
    found["stages"] = [
        check_fields(stage, _STAGE, f"{path}/stages/{i}", problems)
        for i, stage in enumerate(found["stages"])
    ]
    gates = []
    for i, gate in enumerate(found["gates"]):
        spec_of = _GATES.get(gate.get("kind"))
        if spec_of is None:
            where = f"{path}/gates/{i}/kind"
            problems.append(FieldProblem(where, f"must be one of {', '.join(_GATES)}"))
            continue
        gates.append(check_fields(gate, spec_of, f"{path}/gates/{i}", problems))
    found["gates"] = gates
    return found
