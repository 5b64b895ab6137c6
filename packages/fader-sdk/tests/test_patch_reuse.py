"""Patches compile only what changed: a flag set built from a stream `patch` event keeps the
compiled flags of the one it patches, except those the patch can have changed.

That the result always evaluates as the patched document loaded whole is proven on random
documents and chains of patches where the reuse is implemented
(``packages/fader-engine/tests/test_incremental.py``). Here is the SDK's side: flag sets, and
the streaming source swapping them in.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from sdk_doubles import (
    FakeClock,
    Recorder,
    Sleeper,
    event_stream,
    http_client,
    patch_event,
    sse_data,
)

import fader_engine
from fader_engine import ConfigurationError, Reason
from fader_engine.patch import apply_patch
from fader_sdk.backoff import Backoff
from fader_sdk.breaker import CircuitBreaker
from fader_sdk.flag_set import FlagSet, Origin
from fader_sdk.holder import FlagSetHolder
from fader_sdk.sources.polling import PollingSource
from fader_sdk.sources.streaming import Outcome, StreamingSource

JSON = dict[str, Any]
USERS: list[JSON] = [
    {},
    {"targetingKey": "u1"},
    {"targetingKey": "u2", "email": "b@corp.test", "country": "NL"},
    {"targetingKey": "u3", "email": "c@mail.test", "country": "DE"},
    *({"targetingKey": f"user-{n}"} for n in range(20)),
]


def _flag(default: str = "off", **extra: Any) -> JSON:
    return {
        "type": "boolean",
        "variants": {"on": True, "off": False},
        "offVariant": "off",
        "default": {"variant": default},
        **extra,
    }


def _in_segment(key: str, variant: str = "on") -> list[JSON]:
    return [{"clauses": [{"op": "in_segment", "values": [key]}], "variant": variant}]


def _half() -> JSON:
    return {
        "split": {"weights": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]}
    }


def environment(version: int) -> JSON:
    """A snapshot whose flags depend on each other in every way a flag can: segments named
    directly and through another segment, a prerequisite, a split, and none at all."""
    document = {
        "format": "fader/v1",
        "bucketing": "v2",
        "metadata": {"project": "demo", "environment": "production"},
        "segments": {
            "beta": {"included": ["u1"]},
            "staff": {
                "rules": [
                    {
                        "clauses": [
                            {"attribute": "email", "op": "ends_with", "values": ["@corp.test"]}
                        ]
                    }
                ]
            },
            "beta-or-staff": {
                "rules": [
                    {"clauses": [{"op": "in_segment", "values": ["beta"]}]},
                    {"clauses": [{"op": "in_segment", "values": ["staff"]}]},
                ]
            },
        },
        "flags": {
            "checkout": _flag(rules=_in_segment("beta")),
            "banner": _flag(rules=_in_segment("beta-or-staff")),
            "search": _flag("on"),
            "rollout": {**_flag(), "default": _half()},
            "export": _flag("on", prerequisites=[{"flag": "checkout", "variants": ["on"]}]),
            "eu": _flag(
                rules=[
                    {
                        "clauses": [{"attribute": "country", "op": "in", "values": ["NL", "DE"]}],
                        "variant": "on",
                    }
                ]
            ),
        },
    }
    return {
        "project": "demo",
        "environment": "production",
        "version": version,
        "document": document,
    }


def patch(base: int, **changes: JSON) -> JSON:
    """A `patch` payload from `base` to the next version."""
    return {
        "project": "demo",
        "environment": "production",
        "base": base,
        "version": base + 1,
        **changes,
    }


def patched_whole(flag_set: FlagSet, payload: JSON) -> FlagSet:
    """What the SDK would hold had it received the patched document as a snapshot."""
    document = apply_patch(copy.deepcopy(dict(flag_set.document)), payload)
    wire = {**flag_set.to_wire(), "version": payload["version"], "document": document}
    return FlagSet.from_wire(wire, Origin.SERVER)


def kept(before: FlagSet, after: FlagSet) -> set[str]:
    """The flags whose compiled object (and so function) `after` took over from `before`."""
    return {k for k, flag in after.engine.flags.items() if before.engine.flags.get(k) is flag}


def assert_same_answers(actual: FlagSet, expected: FlagSet) -> None:
    assert list(actual.engine.flags) == list(expected.engine.flags)
    for key in expected.engine.flags:
        for user in USERS:
            assert actual.engine.evaluate(key, user) == expected.engine.evaluate(key, user), key


def test_a_one_flag_patch_keeps_the_compiled_flags_of_every_other_flag() -> None:
    base = FlagSet.from_wire(environment(17), Origin.SERVER)
    payload = patch(17, flags={"search": _flag("off")})

    after = base.patched(payload)

    assert kept(base, after) == set(base.engine.flags) - {"search"}
    assert after.engine.flags["checkout"].evaluate is base.engine.flags["checkout"].evaluate
    assert after.engine.evaluate("search", {}).value is False
    assert base.engine.evaluate("search", {}).value is True  # still evaluated elsewhere
    assert_same_answers(after, patched_whole(base, payload))


def test_added_flags_are_compiled_and_removed_flags_go() -> None:
    base = FlagSet.from_wire(environment(17), Origin.SERVER)
    payload = patch(17, flags={"eu": None, "new": _flag("on", rules=_in_segment("staff", "off"))})

    after = base.patched(payload)

    assert list(after.engine.flags) == ["checkout", "banner", "search", "rollout", "export", "new"]
    assert kept(base, after) == set(base.engine.flags) - {"eu"}
    assert after.engine.evaluate("eu", {}).error_code is fader_engine.ErrorCode.FLAG_NOT_FOUND
    assert after.engine.evaluate("new", {"email": "a@corp.test"}).value is False
    assert_same_answers(after, patched_whole(base, payload))


@pytest.mark.parametrize(
    ("segment", "entry", "recompiled"),
    [
        ("beta", {"included": ["u3"]}, {"checkout", "banner"}),  # directly, and via beta-or-staff
        ("staff", {"included": ["u3"]}, {"banner"}),
        ("beta-or-staff", {"included": ["u2"]}, {"banner"}),
        ("unused", {"included": ["u2"]}, set()),  # added: nothing names it yet
    ],
)
def test_a_changed_segment_recompiles_every_flag_that_reaches_it(
    segment: str, entry: JSON, recompiled: set[str]
) -> None:
    base = FlagSet.from_wire(environment(17), Origin.SERVER)
    payload = patch(17, segments={segment: entry})

    after = base.patched(payload)

    assert kept(base, after) == set(base.engine.flags) - recompiled
    assert_same_answers(after, patched_whole(base, payload))


def test_a_changed_prerequisite_is_seen_by_the_flag_naming_it_which_is_not_recompiled() -> None:
    """Prerequisites are looked up in the evaluating engine, so `export` needs no new code."""
    base = FlagSet.from_wire(environment(17), Origin.SERVER)
    payload = patch(17, flags={"checkout": _flag("on")})

    after = base.patched(payload)

    assert after.engine.flags["export"] is base.engine.flags["export"]
    assert base.engine.evaluate("export", {}).reason is Reason.DISABLED  # checkout was off
    assert after.engine.evaluate("export", {}).value is True
    assert_same_answers(after, patched_whole(base, payload))


@pytest.mark.parametrize(
    "fields", [{"bucketing": "v3"}, {"metadata": {"project": "demo", "environment": "staging"}}]
)
def test_a_changed_document_field_recompiles_every_flag(fields: JSON) -> None:
    """Correctness first: top-level fields change rarely, and `bucketing` moves every split."""
    base = FlagSet.from_wire(environment(17), Origin.SERVER)
    payload = patch(17, fields=fields)

    after = base.patched(payload)

    assert kept(base, after) == set()
    assert_same_answers(after, patched_whole(base, payload))


def test_reuse_carries_through_a_chain_of_patches() -> None:
    flag_set = FlagSet.from_wire(environment(17), Origin.SERVER)
    first = flag_set
    chain = [
        {"flags": {"search": _flag("off")}},
        {"segments": {"staff": {"included": ["u9"]}}},
        {"flags": {"search": None, "later": _flag("on")}},
        {"flags": {"checkout": _flag("on")}},
    ]
    for version, changes in enumerate(chain, start=17):
        payload = patch(version, **changes)
        expected = patched_whole(flag_set, payload)
        flag_set = flag_set.patched(payload)
        assert_same_answers(flag_set, expected)

    assert flag_set.version == 21
    assert kept(first, flag_set) == {"rollout", "export", "eu"}


def test_a_patch_yielding_an_invalid_document_is_refused_as_a_snapshot_of_it_would_be() -> None:
    base = FlagSet.from_wire(environment(17), Origin.SERVER)
    payload = patch(17, segments={"beta": None})  # `checkout` and `beta-or-staff` still name it

    with pytest.raises(ConfigurationError) as refused:
        base.patched(payload)
    with pytest.raises(ConfigurationError) as whole:
        patched_whole(base, payload)
    assert refused.value.problems == whole.value.problems
    assert {p.path for p in refused.value.problems} == {
        "/segments/beta-or-staff/rules/0/clauses/0/values/0",
        "/flags/checkout/rules/0/clauses/0/values/0",
    }


def test_the_stream_keeps_the_previous_flag_set_when_a_patch_yields_an_invalid_document() -> None:
    """Then it reconnects from the version it holds, for a full snapshot (as for any unusable
    patch); the next valid patch is applied with reuse."""
    snapshot = environment(17)
    invalid = patch(17, segments={"beta": None})
    valid = patch(17, flags={"search": _flag("off")})

    def script(request: Any, n: int) -> Any:
        if n == 0:
            return event_stream(
                sse_data("snapshot", 17, json.dumps(snapshot)),
                sse_data("patch", 18, json.dumps(invalid)),
            )
        assert request.headers["Last-Event-ID"] == "17"
        return event_stream(patch_event(17, 18, flags=valid["flags"]))

    clock = FakeClock()
    http = http_client(Recorder(script))
    source = StreamingSource(
        http,
        backoff=Backoff(random=lambda: 0.5, clock=clock),
        breaker=CircuitBreaker(clock=clock),
        poller=PollingSource(http),
        sleep=Sleeper(clock),
    )
    holder = FlagSetHolder()
    assert source.connect_once(holder) is Outcome.DROPPED
    held = holder.current
    assert held is not None
    assert held.version == 17
    assert held.engine.evaluate("checkout", {"targetingKey": "u1"}).value is True

    assert source.connect_once(holder) is Outcome.DROPPED
    current = holder.current
    assert current is not None
    assert current.version == 18
    assert kept(held, current) == set(held.engine.flags) - {"search"}


def test_a_flag_set_built_around_a_ready_engine_is_patched_by_loading_the_result_whole() -> None:
    """Test data builds flag sets from an engine; their patches still work, without reuse."""
    document = environment(17)["document"]
    base = FlagSet(17, fader_engine.load(document), document, Origin.TEST)
    payload = patch(17, flags={"search": _flag("off")})

    after = base.patched(payload)

    assert kept(base, after) == set()
    assert after.loaded is not None  # the next patch reuses
    assert (
        after.patched(patch(18, flags={"eu": None})).engine.flags["banner"]
        is (after.engine.flags["banner"])
    )
    assert after.engine.evaluate("search", {}).value is False
