"""Every clause operator means the same on every evaluation path (a differential property test).

What an operator means is written once (``fader_engine.operators``) and a clause is written
into generated code in one place (``fader_engine.codegen.clause_expression``), but a clause
still reaches evaluation by several routes, each generated differently: inline in a flag's
function on a top-level attribute or on a nested one, inside a segment's function (reached
through ``in_segment``), inside a segment nested in another segment, after another clause that
used the same scratch variable, and through the typed ``resolve_boolean`` entry point. For
each operator, hypothesis draws clause values and context values (missing, null, lists,
numbers against strings, booleans against numbers, versions, instants, near misses) and checks
that every route, plain and negated, agrees with a reference written straight from
docs/flag-format.md ("Clause") below, which shares no code with the engine's operator table.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

import mmh3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fader_engine
from fader_engine.instant import parse_instant
from fader_engine.model import Operator
from fader_engine.semver import VersionKey, parse_version

MISSING = object()
"""The attribute is absent from the context (unlike ``None``, a JSON null)."""

EXAMPLES = 60
CONTEXTS_PER_EXAMPLE = 8

# -- the reference: docs/flag-format.md, "Clause", read literally --------------------------------


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: a string equals only a string, a boolean only a boolean, 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is bool and type(b) is bool and a == b
    if type(a) in (int, float) and type(b) in (int, float):
        return a == b
    return type(a) is str and type(b) is str and a == b


def _number(value: Any) -> bool:
    return type(value) in (int, float)


def _versions(test: Callable[[VersionKey, VersionKey], bool]) -> Callable[[Any, list[Any]], bool]:
    def holds(value: Any, values: list[Any]) -> bool:
        version = parse_version(value) if type(value) is str else None
        return version is not None and any(test(version, parse_version(v)) for v in values)  # type: ignore[arg-type]

    return holds


def _instants(test: Callable[[float, float], bool]) -> Callable[[Any, list[Any]], bool]:
    def holds(value: Any, values: list[Any]) -> bool:
        moment = parse_instant(value)
        return moment is not None and any(test(moment, parse_instant(v)) for v in values)  # type: ignore[arg-type]

    return holds


def _in_networks(value: Any, values: list[Any]) -> bool:
    if type(value) is not str:
        return False
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    networks = [ipaddress.ip_network(v.strip(), strict=False) for v in values]
    return any(n.version == address.version and address in n for n in networks)


def _unleash_rollout(value: Any, values: list[Any]) -> bool:
    """Unleash's normalizedHash(value, group) <= percentage, on strings and integers."""
    if type(value) not in (str, int):
        return False
    group, percentage = values
    return mmh3.hash(f"{group}:{value}", 0, signed=False) % 100 + 1 <= percentage


def _member(value: Any, values: list[Any]) -> bool:
    items = value if type(value) is list else [value]
    return any(_json_equal(item, v) for item in items for v in values)


REFERENCE: dict[str, Callable[[Any, list[Any]], bool]] = {
    "in": _member,
    "starts_with": lambda x, vs: type(x) is str and any(x.startswith(v) for v in vs),
    "ends_with": lambda x, vs: type(x) is str and any(x.endswith(v) for v in vs),
    "contains": lambda x, vs: type(x) is str and any(v in x for v in vs),
    "matches": lambda x, vs: type(x) is str and any(re.search(v, x) for v in vs),
    "lt": lambda x, vs: _number(x) and any(x < v for v in vs),
    "lte": lambda x, vs: _number(x) and any(x <= v for v in vs),
    "gt": lambda x, vs: _number(x) and any(x > v for v in vs),
    "gte": lambda x, vs: _number(x) and any(x >= v for v in vs),
    "semver_eq": _versions(lambda a, b: a == b),
    "semver_lt": _versions(lambda a, b: a < b),
    "semver_lte": _versions(lambda a, b: a <= b),
    "semver_gt": _versions(lambda a, b: a > b),
    "semver_gte": _versions(lambda a, b: a >= b),
    "before": _instants(lambda a, b: a < b),
    "after": _instants(lambda a, b: a > b),
    "exists": lambda x, vs: True,
    "ip_in": _in_networks,
    "unleash_rollout": _unleash_rollout,
}


def expected(op: str, values: list[Any], value: Any, negate: bool) -> bool:
    """A missing or null attribute never matches, negated or not, except for `exists`."""
    present = value is not MISSING and value is not None
    if op == "exists":
        return present is not negate
    return present and REFERENCE[op](value, values) is not negate


# -- strategies ---------------------------------------------------------------------------------

short_text = st.text(alphabet="abAé.-@1 ", max_size=5)
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)
numbers = st.one_of(
    st.integers(-5, 5), st.integers(-(2**60), 2**60), finite, st.sampled_from([0.5, 2.0, -0.0])
)
versions = st.builds(
    lambda v, major, minor, patch, pre, build: f"{v}{major}.{minor}.{patch}{pre}{build}",
    st.sampled_from(["", "v"]),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 3),
    st.sampled_from(["", "-alpha", "-alpha.1", "-beta.2", "-1"]),
    st.sampled_from(["", "+build.5"]),
) | st.sampled_from(["1", "2.1", "v3", "1.0.0-rc.1"])
instants = st.one_of(
    st.integers(1_600_000_000, 1_800_000_000),
    st.floats(1.6e9, 1.8e9),
    st.builds(
        lambda y, mo, d, h, z: f"{y}-{mo:02d}-{d:02d}T{h:02d}:30:00{z}",
        st.integers(2020, 2026),
        st.integers(1, 12),
        st.integers(1, 28),
        st.integers(0, 23),
        st.sampled_from(["Z", "+02:00", "-05:30", ".25Z"]),
    ),
)
networks = st.sampled_from(
    [
        "10.0.0.0/8",
        "10.1.2.3/16",
        "192.168.1.7",
        " 172.16.0.0/12",
        "2001:db8::/32",
        "::1",
        "0.0.0.0/0",
    ]
)
addresses = st.sampled_from(
    [
        "10.0.0.1",
        "10.1.255.255",
        "192.168.1.7",
        "192.168.1.8",
        "172.20.1.1",
        "2001:db8::5",
        "::1",
        "::ffff:10.0.0.1",
        "8.8.8.8",
        "10.0.0",
        "not-an-ip",
    ]
)
PATTERNS = ["^a", "b$", "a.c", "[0-9]+", "^(ab|ba)*$", "x?y", "é", "^$", "A|1"]

VALUES: dict[str, st.SearchStrategy[Any]] = {
    "in": st.one_of(short_text, numbers, st.booleans()),
    "starts_with": short_text,
    "ends_with": short_text,
    "contains": short_text,
    "matches": st.sampled_from(PATTERNS),
    "lt": numbers,
    "lte": numbers,
    "gt": numbers,
    "gte": numbers,
    "before": instants,
    "after": instants,
    **dict.fromkeys(("semver_eq", "semver_lt", "semver_lte", "semver_gt", "semver_gte"), versions),
    "ip_in": networks,
}

scalars = st.one_of(short_text, numbers, st.booleans(), versions, instants, addresses)


def attribute_values(values: list[Any]) -> st.SearchStrategy[Any]:
    """Context values: the clause's own (exact, as the other numeric type, as a near miss),
    any scalar, lists of both, objects, null and absence."""
    near: list[st.SearchStrategy[Any]] = [st.sampled_from(values)]
    strings = [v for v in values if type(v) is str]
    nums = [v for v in values if type(v) in (int, float)]
    if strings:
        near.append(
            st.builds(lambda v, a, b: a + v + b, st.sampled_from(strings), short_text, short_text)
        )
    if nums:
        near.append(st.sampled_from(nums).map(lambda v: float(v) if type(v) is int else v))
        near.append(st.sampled_from(nums).map(lambda v: v + 1e-9))
        near.append(st.sampled_from(nums).map(str))
    one = st.one_of(*near, scalars)
    return st.one_of(
        st.just(MISSING),
        st.none(),
        one,
        one,
        st.lists(one, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b"]), one, max_size=2),
    )


# -- the paths ----------------------------------------------------------------------------------

OFF = {"type": "boolean", "variants": {"on": True, "off": False}, "offVariant": "off"}
DEFAULT_OFF = {"variant": "off"}


def _flag(*rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        **OFF,
        "rules": [{"clauses": c, "variant": "on"} for c in rules],
        "default": DEFAULT_OFF,
    }


def _clause(attribute: str, op: str, values: list[Any], negate: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"attribute": attribute, "op": op, "negate": negate}
    if op != "exists":
        out["values"] = values
    return out


def _in_segment(key: str) -> dict[str, Any]:
    return {"op": "in_segment", "values": [key]}


PATHS = ("flag", "flag-nested", "segment", "segment-in-segment", "after-other-clause")


def document(op: str, values: list[Any]) -> dict[str, Any]:
    """One flag per path and polarity: `<path>/<negate>`; every flag serves `on` on a match."""
    flags: dict[str, Any] = {}
    segments: dict[str, Any] = {}
    for negate in (False, True):
        plain = _clause("a", op, values, negate)
        flags[f"flag.{negate:d}"] = _flag([plain])
        flags[f"flag-nested.{negate:d}"] = _flag([_clause("o.a", op, values, negate)])
        segments[f"inner.{negate:d}"] = {"rules": [{"clauses": [plain]}]}
        segments[f"outer.{negate:d}"] = {"rules": [{"clauses": [_in_segment(f"inner.{negate:d}")]}]}
        flags[f"segment.{negate:d}"] = _flag([_in_segment(f"inner.{negate:d}")])
        flags[f"segment-in-segment.{negate:d}"] = _flag([_in_segment(f"outer.{negate:d}")])
        other = {"attribute": "z", "op": "in", "values": ["zz"]}  # sets the scratch first
        flags[f"after-other-clause.{negate:d}"] = _flag([other, plain])
    return {"format": "fader/v1", "flags": flags, "segments": segments}


def context(value: Any) -> dict[str, Any]:
    ctx: dict[str, Any] = {"targetingKey": "someone", "z": "zz", "o": {}}
    if value is not MISSING:
        ctx["a"] = value
        ctx["o"] = {"a": value}
    return ctx


def served(engine: fader_engine.Engine, key: str, ctx: dict[str, Any]) -> bool:
    result = engine.evaluate(key, ctx)
    assert result.error_code is None, result  # a wrong type never makes an evaluation error
    typed = engine.resolve_boolean(key, ctx, not result.value)
    assert (typed.value, typed.variant) == (result.value, result.variant)
    return result.variant == "on"


@st.composite
def clause_and_contexts(draw: st.DrawFn, op: str) -> tuple[list[Any], list[Any]]:
    if op == "unleash_rollout":
        values: list[Any] = [
            draw(short_text.filter(bool)),
            draw(st.integers(0, 100) | finite.map(abs).filter(lambda p: p <= 100)),
        ]
    elif op == "exists":
        values = []
    else:
        values = draw(st.lists(VALUES[op], min_size=1, max_size=4))
    pool = values or [draw(scalars)]
    contexts = draw(
        st.lists(
            attribute_values(pool), min_size=CONTEXTS_PER_EXAMPLE, max_size=CONTEXTS_PER_EXAMPLE
        )
    )
    return values, contexts


ATTRIBUTE_OPERATORS = [str(op) for op in Operator if op is not Operator.IN_SEGMENT]


def test_every_operator_has_a_reference() -> None:
    assert sorted(REFERENCE) == sorted(ATTRIBUTE_OPERATORS)


@pytest.mark.parametrize("op", ATTRIBUTE_OPERATORS)
@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
def test_every_path_agrees_with_the_reference(op: str, data: st.DataObject) -> None:
    values, contexts = data.draw(clause_and_contexts(op))
    engine = fader_engine.load(document(op, values))
    for value in contexts:
        ctx = context(value)
        for negate in (False, True):
            want = expected(op, values, value, negate)
            got = {path: served(engine, f"{path}.{negate:d}", ctx) for path in PATHS}
            assert got == dict.fromkeys(PATHS, want), (op, values, value, negate)


# -- segment membership -------------------------------------------------------------------------

KEYS = ["k1", "k2", "k3", "k4"]


@st.composite
def segment_cases(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    included = draw(st.sets(st.sampled_from(KEYS), max_size=2))
    excluded = draw(st.sets(st.sampled_from(KEYS), max_size=2))
    rules = draw(st.lists(st.sampled_from(["pro", "team", "free"]), max_size=2))
    segment = {
        "included": sorted(included),
        "excluded": sorted(excluded),
        "rules": [{"clauses": [{"attribute": "plan", "op": "in", "values": [p]}]} for p in rules],
    }
    key = st.sampled_from([*KEYS, MISSING, None, 7, ["k1"]])
    plan = st.sampled_from([MISSING, None, "pro", "team", "free", ["pro"], 1])
    contexts = []
    for k, p in draw(
        st.lists(st.tuples(key, plan), min_size=CONTEXTS_PER_EXAMPLE, max_size=CONTEXTS_PER_EXAMPLE)
    ):
        ctx = {"targetingKey": k, "plan": p}
        contexts.append({name: v for name, v in ctx.items() if v is not MISSING})
    return segment, contexts


def member(segment: dict[str, Any], ctx: dict[str, Any]) -> bool:
    """docs/flag-format.md, "Segment": listed keys first (excluded beats rules), then any rule."""
    key = ctx.get("targetingKey")
    if type(key) is str:
        if key in segment["included"]:
            return True
        if key in segment["excluded"]:
            return False
    plan = ctx.get("plan")
    rules = segment["rules"]
    return plan is not None and any(_member(plan, r["clauses"][0]["values"]) for r in rules)


@settings(max_examples=EXAMPLES * 2, deadline=None)
@given(case=segment_cases())
def test_in_segment_agrees_on_every_path(case: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    segment, contexts = case
    flags: dict[str, Any] = {}
    segments: dict[str, Any] = {"s": segment, "t": {"rules": [{"clauses": [_in_segment("s")]}]}}
    for negate in (False, True):
        direct = {"op": "in_segment", "values": ["s"], "negate": negate}
        nested = {"op": "in_segment", "values": ["t"], "negate": negate}
        either = {"op": "in_segment", "values": ["none", "s"], "negate": negate}
        flags[f"flag.{negate:d}"] = _flag([direct])
        flags[f"segment-in-segment.{negate:d}"] = _flag([nested])
        flags[f"one-of-two.{negate:d}"] = _flag([either])
        flags[f"after-other-clause.{negate:d}"] = _flag(
            [{"attribute": "z", "op": "exists"}, direct]
        )
    segments["none"] = {}
    engine = fader_engine.load({"format": "fader/v1", "flags": flags, "segments": segments})
    for drawn in contexts:
        ctx = {**drawn, "z": 0}
        for negate in (False, True):
            want = member(segment, ctx) is not negate
            got = {
                p: served(engine, f"{p}.{negate:d}", ctx)
                for p in ("flag", "segment-in-segment", "one-of-two", "after-other-clause")
            }
            assert set(got.values()) == {want}, (segment, ctx, negate, got)


def test_reference_matches_documented_examples() -> None:
    """Sanity of the reference itself, on cases docs/flag-format.md spells out."""
    assert expected("in", ["1"], 1, False) is False  # a number never equals a string
    assert expected("in", [1], True, False) is False  # a boolean is not a number
    assert expected("in", [1], 1.0, False) is True
    assert expected("in", ["a"], ["b", "a"], False) is True  # a list matches on any element
    assert expected("lt", [3], MISSING, True) is False  # missing never matches, even negated
    assert expected("exists", [], MISSING, True) is True
    assert expected("semver_gt", ["1.2.0"], "v1.10", False) is True
    assert expected("before", ["2025-01-01T00:00:00Z"], 1_700_000_000, False) is True
