"""OFREP bodies assembled from per-flag encoded results (``delivery/ofrep.py``) are byte for byte
what encoding the whole payload at once gives: every kind of result (successes with each value
type, non-ASCII text, metadata, failures, arrays OFREP cannot carry, a flag without a value),
for server and client keys, with and without an event-stream URI, and after the per-flag tables
have filled and been emptied again."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import pytest

from fader_engine.evaluate import CompiledFlag, Engine
from fader_engine.result import ErrorCode, Reason, Resolution
from fader_server.delivery import ofrep
from fader_server.delivery.snapshots import EnvironmentRef, Snapshot

REF = EnvironmentRef(1, "shop-ünï", "production")
SPLIT = [{"variant": "on", "weight": 25}, {"variant": "off", "weight": 75}]
CONTEXTS: list[dict[str, Any]] = [
    {},
    {"targetingKey": "user-1"},
    {"targetingKey": "user-2", "country": "NL", "plan": "pro"},
    {"targetingKey": "ünï-3", "country": "DE"},
    *({"targetingKey": f"user-{n}", "plan": "free"} for n in range(40)),
]


def _flag(kind: str, variants: dict[str, Any], **fields: Any) -> dict[str, Any]:
    flag = {"type": kind, "variants": variants, "offVariant": next(iter(variants))}
    flag["default"] = {"variant": next(iter(variants))}
    return flag | fields


DOCUMENT: dict[str, Any] = {
    "format": "fader/v1",
    "flags": {
        "rollout": _flag(
            "boolean",
            {"on": True, "off": False},
            default={"split": {"weights": SPLIT}},
            metadata={"client_side": True, "owner_team": "growth"},
        ),
        "copy": _flag(
            "string",
            {"a": "Jetzt kaufen, ünï ✓", "b": 'say "hi"\n'},
            rules=[
                {
                    "clauses": [{"attribute": "country", "op": "in", "values": ["NL"]}],
                    "variant": "b",
                }
            ],
            metadata={"client_side": True},
        ),
        "discount": _flag(
            "number",
            {"low": 0.25, "high": 75, "huge": 1e300},
            rules=[
                {
                    "clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}],
                    "variant": "huge",
                }
            ],
        ),
        "theme": _flag("object", {"dark": {"bg": "#000", "ünï": [1, 2.5, None]}}, enabled=False),
        "regions": _flag("object", {"eu": ["NL", "DE"]}, metadata={"client_side": False}),
        "plain": _flag("boolean", {"off": False, "on": True}),
    },
}


def _snapshot() -> Snapshot:
    return Snapshot(REF, 7, DOCUMENT)


def _reference_flags(
    snapshot: Snapshot, context: Mapping[str, Any], *, client_only: bool, uri: str | None
) -> bytes:
    """The body as the whole payload, encoded at once (the implementation before fragments)."""
    engine = snapshot.engine
    payload: dict[str, Any] = {
        "flags": [
            ofrep.result(key, engine.evaluate(key, context))
            for key in engine
            if ofrep.visible(engine, key, client_only)
        ],
        "metadata": {"project": REF.project_key, "environment": REF.environment},
    }
    if uri is not None:
        payload["eventStreams"] = [{"type": "sse", "endpoint": {"requestUri": uri}}]
    return ofrep.encode(payload)


@pytest.mark.parametrize("client_only", [False, True])
@pytest.mark.parametrize("uri", [None, "/ofrep/v1/event-stream?grant=12.abc", '/ünï?g="x"'])
def test_bulk_bodies_are_the_whole_payload_encoded(client_only: bool, uri: str | None) -> None:
    snapshot = _snapshot()
    for _ in range(2):  # the second pass answers from the per-flag tables
        for context in CONTEXTS:
            expected = _reference_flags(snapshot, context, client_only=client_only, uri=uri)
            bulk = ofrep.evaluate_flags(
                snapshot, context, client_only=client_only, event_stream_uri=uri
            )
            assert bulk.body == expected
            assert bulk.etag == '"' + hashlib.blake2b(expected, digest_size=16).hexdigest() + '"'
    keys = [key for key in snapshot.engine if not client_only or key in ("rollout", "copy")]
    assert [f["key"] for f in ofrep.json.loads(bulk.body)["flags"]] == keys


@pytest.mark.parametrize("client_only", [False, True])
def test_single_answers_are_the_result_encoded(client_only: bool) -> None:
    snapshot = _snapshot()
    engine = snapshot.engine
    for _ in range(2):
        for context in CONTEXTS:
            for key in [*engine, "no-such-flag"]:
                status, body = ofrep.evaluate_flag(snapshot, key, context, client_only=client_only)
                if not ofrep.visible(engine, key, client_only):
                    assert (status, body) == (404, ofrep.encode(ofrep.not_found(key)))
                    continue
                expected = ofrep.result(key, engine.evaluate(key, context))
                assert body == ofrep.encode(expected)
                assert status == (400 if "errorCode" in expected else 200)
    # the split without a targeting key, and the array OFREP cannot carry, fail
    assert ofrep.evaluate_flag(snapshot, "rollout", {}, client_only=client_only)[0] == 400
    if not client_only:
        assert ofrep.evaluate_flag(snapshot, "regions", {}, client_only=False)[0] == 400


def _fresh_results(context: Mapping[str, Any], env: Any) -> Resolution:
    """A flag that builds a new resolution on every evaluation (as an evaluation failure does,
    with its message): its table fills, is emptied, and every answer is still right."""
    key = context.get("targetingKey", "")
    if key.endswith("0"):
        return Resolution(None, None, Reason.ERROR, ErrorCode.GENERAL, f"failed for {key}")
    return Resolution({"for": key}, "v", Reason.TARGETING_MATCH, None, None, {"n": len(key)})


class _WithEngine(Snapshot):
    """A snapshot whose engine is given rather than compiled from its document."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(REF, 1, {})
        self._given = engine

    @property  # type: ignore[override]
    def engine(self) -> Engine:
        return self._given


def test_results_built_per_evaluation_are_encoded_each_time() -> None:
    engine = Engine({"fresh": CompiledFlag("fresh", None, _fresh_results)})
    snapshot = _WithEngine(engine)
    contexts = [{"targetingKey": f"user-{n}"} for n in range(3 * ofrep.FRAGMENTS_PER_FLAG)]
    for context in contexts * 2:
        expected = _reference_flags(snapshot, context, client_only=False, uri=None)
        assert (
            ofrep.evaluate_flags(snapshot, context, client_only=False, event_stream_uri=None).body
            == expected
        )
        status, body = ofrep.evaluate_flag(snapshot, "fresh", context, client_only=False)
        assert body == ofrep.encode(ofrep.result("fresh", engine.evaluate("fresh", context)))
        assert status == (400 if context["targetingKey"].endswith("0") else 200)
