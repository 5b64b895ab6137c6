"""A patched document loaded entry by entry is the patched document loaded from scratch.

:class:`LoadedDocument.patched` validates and compiles only what a patch changed. These tests
hold it to a full load (``fader_engine.load`` of ``apply_patch``'s result) on random documents
and chains of random patches (flags replaced, added and removed, segments changed, references
to flags and segments that may not exist or may loop, the bucketing changed): the same
rejection with the same problems, or the same flags in the same order answering the same for
random contexts. And they pin what is reused: exactly the flags whose entry is unchanged and
that reach no changed segment keep their compiled object.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import fader_engine
from fader_engine import ConfigurationError
from fader_engine.incremental import LoadedDocument
from fader_engine.parse import parse_document
from fader_engine.parse_limits import MAX_DOCUMENT_SIZE, MAX_STRING_LENGTH
from fader_engine.parse_patch import parse_patched, parse_whole
from fader_engine.patch import apply_patch, diff_documents

JSON = dict[str, Any]
FLAG_KEYS = ["f0", "f1", "f2", "f3", "f4"]
NEW_FLAG_KEYS = ["f5", "f6"]
SEGMENT_KEYS = ["s0", "s1", "s2"]
NEW_SEGMENT_KEYS = ["s3"]
USERS = ["u1", "u2", "u3", "u4", "u5"]
VARIANTS = {"boolean": {"on": True, "off": False}, "string": {"on": "x", "off": "y", "mid": "z"}}

# -- documents ----------------------------------------------------------------------------------


def _clauses(segments: list[str]) -> st.SearchStrategy[list[JSON]]:
    clause = st.one_of(
        st.builds(
            lambda values, negate: {
                "attribute": "country",
                "op": "in",
                "values": values,
                "negate": negate,
            },
            st.lists(st.sampled_from(["NL", "DE", "US"]), min_size=1, max_size=2),
            st.booleans(),
        ),
        st.builds(
            lambda op, age: {"attribute": "age", "op": op, "values": [age]},
            st.sampled_from(["lt", "gte"]),
            st.integers(10, 60),
        ),
        st.just({"attribute": "email", "op": "ends_with", "values": ["@a.test"]}),
        st.just({"attribute": "app.version", "op": "semver_gte", "values": ["2.0.0"]}),
        st.just({"attribute": "org.id", "op": "exists"}),
        *(
            # twice: flags and segments that name segments are what patches of segments test
            [st.builds(lambda s: {"op": "in_segment", "values": [s]}, st.sampled_from(segments))]
            * 2
            if segments
            else []
        ),
    )
    return st.lists(clause, max_size=2)


def _serve(variants: list[str]) -> st.SearchStrategy[JSON]:
    def split(first: str, weight: int, by: bool) -> JSON:
        rest = next(v for v in variants if v != first)
        weights = [{"variant": first, "weight": weight}, {"variant": rest, "weight": 100 - weight}]
        return {"split": {"weights": weights, **({"by": "org.id"} if by else {})}}

    return st.one_of(
        st.builds(lambda v: {"variant": v}, st.sampled_from(variants)),
        st.builds(split, st.sampled_from(variants), st.integers(0, 100), st.booleans()),
    )


@st.composite
def _flag(draw: st.DrawFn, flags: list[str], segments: list[str]) -> JSON:
    """A flag whose prerequisites name `flags` and whose rules name `segments`."""
    kind = draw(st.sampled_from(sorted(VARIANTS)))
    names = sorted(VARIANTS[kind])
    entry: JSON = {
        "type": kind,
        "variants": VARIANTS[kind],
        "offVariant": draw(st.sampled_from(names)),
        "enabled": draw(st.booleans()),
        "default": draw(_serve(names)),
        "rules": [
            {"clauses": draw(_clauses(segments)), **draw(_serve(names))}
            for _ in range(draw(st.integers(0, 2)))
        ],
    }
    if flags and draw(st.booleans()):
        entry["prerequisites"] = [
            {
                "flag": draw(st.sampled_from(flags)),
                "variants": draw(st.sampled_from([["on"], ["on", "off"]])),
            }
        ]
    if draw(st.booleans()):
        entry["metadata"] = {"owner_team": draw(st.sampled_from(["a", "b"]))}
    return entry


@st.composite
def _segment(draw: st.DrawFn, segments: list[str]) -> JSON:
    """A segment whose rules name `segments`."""
    entry: JSON = {
        "included": draw(st.lists(st.sampled_from(USERS), max_size=2, unique=True)),
        "excluded": draw(st.lists(st.sampled_from(USERS), max_size=1)),
    }
    rules = [{"clauses": draw(_clauses(segments))} for _ in range(draw(st.integers(0, 2)))]
    if rules:
        entry["rules"] = rules
    return entry


@st.composite
def documents(draw: st.DrawFn) -> JSON:
    """A valid document: each segment names only earlier segments, each flag earlier flags."""
    segments = {key: draw(_segment(SEGMENT_KEYS[:i])) for i, key in enumerate(SEGMENT_KEYS)}
    flags = {key: draw(_flag(FLAG_KEYS[:i], SEGMENT_KEYS)) for i, key in enumerate(FLAG_KEYS)}
    return {
        "format": "fader/v1",
        "bucketing": draw(st.sampled_from(["v2", "v3"])),
        "segments": segments,
        "flags": flags,
        "metadata": {"project": "p", "environment": "e"},
    }


@st.composite
def patches(draw: st.DrawFn) -> JSON:
    """Entries replaced, added or removed. One way of breaking the document at a time may be
    open: prerequisites naming any flag (missing, or looping), rules naming any segment (the
    same), segments removed (while named); the patched document must then be refused."""
    mode = draw(st.sampled_from(["references kept", "any flag", "any segment", "removals"]))
    all_flags, all_segments = FLAG_KEYS + NEW_FLAG_KEYS, SEGMENT_KEYS + NEW_SEGMENT_KEYS
    flag_refs = all_flags if mode == "any flag" else FLAG_KEYS[:1]
    segment_refs = {"any segment": all_segments, "removals": []}.get(mode, SEGMENT_KEYS)
    segment = _segment(all_segments if mode == "any segment" else [])
    flags = draw(
        st.dictionaries(
            st.sampled_from(all_flags),
            st.none() | _flag(flag_refs, segment_refs),
            min_size=1,
            max_size=3,
        )
    )
    segments = draw(
        st.dictionaries(
            st.sampled_from(all_segments),
            st.none() | segment if mode == "removals" else segment,
            max_size=2,
        )
    )
    fields = draw(
        st.sampled_from([{}, {}, {}, {"bucketing": "v3"}, {"metadata": {"project": "q"}}])
    )
    return {"flags": flags, "segments": segments, "fields": fields}


contexts = st.fixed_dictionaries(
    {},
    optional={
        "targetingKey": st.sampled_from(USERS),
        "country": st.sampled_from(["NL", "DE", "US"]),
        "age": st.integers(0, 80),
        "email": st.sampled_from(["x@a.test", "y@b.test"]),
        "app": st.fixed_dictionaries({"version": st.sampled_from(["1.9.0", "2.1.0"])}),
        "org": st.fixed_dictionaries({"id": st.sampled_from(["o1", "o2"])}),
    },
)

# -- what a patch must recompile, from the JSON ---------------------------------------------------


def _segments_reached(data: Mapping[str, Any], entry: Mapping[str, Any]) -> set[str]:
    """The segments `entry` names in ``in_segment`` clauses, and those they name, and so on."""
    found: set[str] = set()
    pending = [entry]
    while pending:
        for rule in pending.pop().get("rules", []):
            for clause in rule["clauses"]:
                if clause["op"] == "in_segment":
                    for key in set(clause["values"]) - found:
                        found.add(key)
                        pending.append(data["segments"].get(key, {}))
    return found


def _must_recompile(data: Mapping[str, Any], patch: Mapping[str, Any], key: str) -> bool:
    if patch["fields"] or key in patch["flags"]:
        return True
    return bool(_segments_reached(data, data["flags"][key]) & set(patch["segments"]))


def _load(data: Mapping[str, Any]) -> fader_engine.Engine | ConfigurationError:
    try:
        return fader_engine.load(copy.deepcopy(data))
    except ConfigurationError as error:
        return error


# -- the properties ----------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    documents(),
    st.lists(patches(), min_size=1, max_size=3),
    st.lists(contexts, min_size=4, max_size=4),
)
def test_a_chain_of_patches_loads_as_each_patched_document_would_from_scratch(
    document: JSON, chain: list[JSON], users: list[JSON]
) -> None:
    loaded = LoadedDocument.load(document)
    for patch in chain:
        data = apply_patch(loaded.data, patch)
        expected = _load(data)
        if isinstance(expected, ConfigurationError):
            event("refused")
            with pytest.raises(ConfigurationError) as refused:
                loaded.patched(patch)
            assert refused.value.problems == expected.problems
            continue  # an SDK keeps what it had
        patched = loaded.patched(patch)
        assert patched.data == data
        assert list(patched.engine.flags) == list(expected.flags)
        for key in expected.flags:
            for user in users:
                assert patched.engine.evaluate(key, user) == expected.evaluate(key, user), key
        kept = {k for k in expected.flags if patched.engine.flags[k] is loaded.engine.flags.get(k)}
        reusable = {
            k
            for k in expected.flags
            if k in loaded.engine.flags and not _must_recompile(data, patch, k)
        }
        assert kept == reusable
        event(f"accepted, {len(kept)} flags reused")
        loaded = patched


@settings(max_examples=150, deadline=None)
@given(documents(), patches())
def test_a_patched_document_is_accepted_exactly_when_a_full_parse_accepts_it(
    document: JSON, patch: JSON
) -> None:
    """Only patches that change no top-level field take the incremental path; on it, nothing
    valid is sent to a full parse for want of a check, and nothing invalid gets through."""
    patch = {**patch, "fields": {}}
    previous = parse_whole(document)
    data = apply_patch(document, patch)
    parsed = parse_patched(previous, data, list(patch["flags"]), list(patch["segments"]))
    try:
        whole = parse_whole(data)
    except ConfigurationError:
        event("invalid")
        assert parsed is None
        return
    event("valid")
    assert parsed is not None
    assert parsed.document == whole.document == parse_document(data)
    assert list(parsed.document.flags) == list(whole.document.flags)
    assert parsed.entries_size == whole.entries_size
    assert parsed.references == whole.references


# -- direct cases ------------------------------------------------------------------------------


def _doc(flags: JSON, segments: JSON | None = None, **fields: Any) -> JSON:
    return {"format": "fader/v1", "flags": flags, "segments": segments or {}, **fields}


def _flag_json(variant: str = "on", **extra: Any) -> JSON:
    return {
        "type": "boolean",
        "variants": {"on": True, "off": False},
        "offVariant": "off",
        "default": {"variant": variant},
        **extra,
    }


def _in_segment(key: str) -> JSON:
    return {"rules": [{"clauses": [{"op": "in_segment", "values": [key]}], "variant": "on"}]}


def test_unchanged_flags_keep_their_compiled_objects_and_the_rest_is_rebuilt() -> None:
    loaded = LoadedDocument.load(
        _doc({"a": _flag_json(), "b": _flag_json(), "c": _flag_json(), "gone": _flag_json()})
    )
    patched = loaded.patched(
        {"flags": {"b": _flag_json("off"), "gone": None, "new": _flag_json("off")}}
    )
    before, after = loaded.engine.flags, patched.engine.flags
    assert list(after) == ["a", "b", "c", "new"]
    assert after["a"] is before["a"]
    assert after["c"] is before["c"]
    assert after["a"].evaluate is before["a"].evaluate
    assert after["b"] is not before["b"]
    assert patched.engine.evaluate("b", {}).value is False
    assert patched.engine.evaluate("new", {}).value is False
    assert loaded.engine.evaluate("b", {}).value is True  # the previous engine is untouched


def test_a_changed_segment_recompiles_every_flag_reaching_it_and_nothing_else() -> None:
    segments = {
        "base": {"included": ["u1"]},
        "outer": {"rules": [{"clauses": [{"op": "in_segment", "values": ["base"]}]}]},
        "other": {"included": ["u9"]},
    }
    flags = {
        "direct": _flag_json("off", **_in_segment("base")),
        "nested": _flag_json("off", **_in_segment("outer")),
        "elsewhere": _flag_json("off", **_in_segment("other")),
        "plain": _flag_json("off"),
    }
    loaded = LoadedDocument.load(_doc(flags, segments))
    patched = loaded.patched({"segments": {"base": {"included": ["u2"]}}})
    kept = {key for key in flags if patched.engine.flags[key] is loaded.engine.flags[key]}
    assert kept == {"elsewhere", "plain"}
    for key in ("direct", "nested"):
        assert patched.engine.evaluate(key, {"targetingKey": "u2"}).value is True
        assert patched.engine.evaluate(key, {"targetingKey": "u1"}).value is False


def test_a_flag_keeps_its_function_when_its_prerequisite_changes_and_sees_the_change() -> None:
    """Prerequisites are looked up in the evaluating engine, not bound at compile time."""
    doc = _doc(
        {
            "gate": _flag_json("on"),
            "feature": _flag_json("on", prerequisites=[{"flag": "gate", "variants": ["on"]}]),
        }
    )
    loaded = LoadedDocument.load(doc)
    patched = loaded.patched({"flags": {"gate": _flag_json("off")}})
    assert patched.engine.flags["feature"] is loaded.engine.flags["feature"]
    result = patched.engine.evaluate("feature", {})
    assert (result.value, result.reason) == (False, fader_engine.Reason.DISABLED)
    assert loaded.engine.evaluate("feature", {}).value is True


def test_a_top_level_change_recompiles_everything() -> None:
    split = {
        "split": {"weights": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]}
    }
    doc = _doc({"a": {**_flag_json(), "default": split}, "b": _flag_json()}, bucketing="v2")
    loaded = LoadedDocument.load(doc)
    patched = loaded.patched({"fields": {"bucketing": "v3"}})
    assert all(patched.engine.flags[k] is not loaded.engine.flags[k] for k in ("a", "b"))
    expected = fader_engine.load({**doc, "bucketing": "v3"})
    users = [{"targetingKey": f"user-{n}"} for n in range(200)]
    assert [patched.engine.evaluate("a", u) for u in users] == [
        expected.evaluate("a", u) for u in users
    ]
    assert [patched.engine.evaluate("a", u) for u in users] != [
        loaded.engine.evaluate("a", u) for u in users
    ]


@pytest.mark.parametrize(
    ("patch", "problem_at"),
    [
        ({"segments": {"s": None}}, "/flags/uses-s/rules/0/clauses/0/values/0"),
        (
            {
                "flags": {
                    "plain": _flag_json(prerequisites=[{"flag": "uses-s", "variants": ["on"]}])
                },
                "segments": {},
            },
            None,  # valid: a sanity case for the others
        ),
        (
            {
                "flags": {
                    "uses-s": _flag_json(prerequisites=[{"flag": "uses-s", "variants": ["on"]}])
                }
            },
            "/flags/uses-s/prerequisites",
        ),
        ({"flags": {"plain": {"type": "boolean"}}}, "/flags/plain/variants"),
        ({"flags": {"Bad Key": _flag_json()}}, "/flags/Bad Key"),
        ({"flags": {"plain": _flag_json(name="x\u0000")}}, "/flags/plain/name"),
    ],
)
def test_an_invalid_patched_document_is_refused_with_the_problems_of_a_full_load(
    patch: JSON, problem_at: str | None
) -> None:
    doc = _doc(
        {"uses-s": _flag_json(**_in_segment("s")), "plain": _flag_json()},
        {"s": {"included": ["u1"]}},
    )
    loaded = LoadedDocument.load(doc)
    data = apply_patch(doc, patch)
    if problem_at is None:
        assert loaded.patched(patch).engine.evaluate("plain", {}).value is True
        return
    with pytest.raises(ConfigurationError) as full:
        parse_document(data)
    with pytest.raises(ConfigurationError) as refused:
        loaded.patched(patch)
    assert refused.value.problems == full.value.problems
    assert problem_at in [problem.path for problem in refused.value.problems]


def test_a_patch_that_makes_the_document_too_large_is_refused() -> None:
    """The size limit holds for the whole document, though only the new entry is walked."""
    long_keys = [f"{n:04}" + "k" * (MAX_STRING_LENGTH - 10) for n in range(80)]
    doc = _doc({"a": _flag_json()}, {"big": {"included": long_keys}})
    loaded = LoadedDocument.load(doc)
    assert MAX_DOCUMENT_SIZE // 2 < parse_whole(doc).entries_size < MAX_DOCUMENT_SIZE
    patch = {"segments": {"bigger": {"included": long_keys}}}
    with pytest.raises(ConfigurationError, match="larger than"):
        loaded.patched(patch)
    shrink = loaded.patched({"segments": {"big": {"included": long_keys[:40]}}})
    assert shrink.patched(patch).engine.evaluate("a", {}).value is True


def test_a_flagd_document_is_patched_by_loading_it_whole() -> None:
    doc = {
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "flags": {
            "a": {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "off",
                "targeting": {"if": [{"$ref": "pro"}, "on", "off"]},
            }
        },
        "$evaluators": {"pro": {"==": [{"var": "plan"}, "pro"]}},
    }
    loaded = LoadedDocument.load(doc)
    assert loaded.engine.evaluate("a", {"plan": "pro"}).value is True
    patched = loaded.patched({"fields": {"$evaluators": {"pro": {"==": [{"var": "plan"}, "max"]}}}})
    assert patched.engine.evaluate("a", {"plan": "pro"}).value is False
    assert patched.engine.evaluate("a", {"plan": "max"}).value is True


@pytest.mark.parametrize(("old", "new"), [(1, True), (1, 1.0), (0, False), ({"n": 1}, {"n": 1.0})])
def test_a_diff_tells_apart_values_python_holds_equal(old: Any, new: Any) -> None:
    """``1 == True == 1.0`` in Python, not in JSON: a variant value changed so must be sent."""
    flag = {
        "type": "object",
        "variants": {"v": old},
        "offVariant": "v",
        "default": {"variant": "v"},
    }
    changed = {**flag, "variants": {"v": new}}
    patch = diff_documents(_doc({"x": flag}), _doc({"x": changed}))
    assert patch["flags"] == {"x": changed}
    assert diff_documents(_doc({"x": flag}), _doc({"x": copy.deepcopy(flag)}))["flags"] == {}
