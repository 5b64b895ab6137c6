"""The LaunchDarkly SDK evaluator: contexts by the convention, offline, cleaned up after."""

from __future__ import annotations

import builtins
import os
from typing import Any

import pytest

from fader_server.migration.launchdarkly import SOURCE
from fader_server.migration.launchdarkly.sdk import UnsupportedContextError, ld_context
from fader_server.migration.model import Answer, SourceDocumentError, SourceSDKMissingError

ldclient_context = pytest.importorskip("ldclient.context", reason="the migrate extra is absent")

DATA = {
    "flags": {
        "f": {
            "key": "f",
            "version": 1,
            "on": True,
            "variations": ["a", "b"],
            "offVariation": 1,
            "rules": [
                {"clauses": [{"attribute": "name", "op": "in", "values": ["Ada"]}], "variation": 0}
            ],
            "fallthrough": {"variation": 1},
        },
    },
    "segments": {},
}


def test_a_fader_context_is_one_launchdarkly_context_of_its_kind() -> None:
    context = ld_context(
        {
            "targetingKey": "k",
            "kind": "org",
            "name": "Ada",
            "anonymous": True,
            "key": "x",
            "tier": "gold",
        },
        ldclient_context.Context,
    )
    assert (context.kind, context.key, context.name, context.anonymous) == ("org", "k", "Ada", True)
    assert context.get("tier") == "gold"
    assert ld_context({"targetingKey": "k"}, ldclient_context.Context).kind == "user"


@pytest.mark.parametrize(
    ("ctx", "message"),
    [
        ({"targetingKey": "k", "kind": "multi"}, "multi-kind"),
        ({"kind": "user"}, "targetingKey"),
        ({"targetingKey": ""}, "targetingKey"),
        ({"targetingKey": "k", "kind": 3}, "context kind"),
        ({"targetingKey": "k", "kind": "bad kind!"}, "not a valid"),
    ],
)
def test_contexts_outside_the_convention_are_refused(ctx: dict[str, Any], message: str) -> None:
    with pytest.raises(UnsupportedContextError, match=message):
        ld_context(ctx, ldclient_context.Context)


def test_the_evaluator_answers_offline_and_removes_its_copy() -> None:
    evaluator = SOURCE.evaluator(DATA)
    path = evaluator._path  # type: ignore[attr-defined]
    assert path is not None
    assert os.path.exists(path)
    try:
        assert evaluator.answer("f", {"targetingKey": "k", "name": "Ada"}).agrees(Answer("a", "0"))
        assert evaluator.answer("f", {"targetingKey": "k"}).agrees(Answer("b", "1"))
        assert evaluator.answer("missing", {"targetingKey": "k"}) == Answer(
            None, None, '{"errorKind": "FLAG_NOT_FOUND", "kind": "ERROR"}'
        )
    finally:
        evaluator.close()
    assert not os.path.exists(path)


def test_data_the_sdk_cannot_load_is_a_document_error() -> None:
    bad = {"flags": {"f": {**DATA["flags"]["f"], "variations": "not a list"}}}
    with pytest.raises(SourceDocumentError):
        SOURCE.evaluator(bad)


def test_without_the_sdk_the_evaluator_says_which_package_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = builtins.__import__

    def no_ldclient(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ldclient" or name.startswith("ldclient."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ldclient)
    with pytest.raises(SourceSDKMissingError, match="launchdarkly-server-sdk"):
        SOURCE.evaluator(DATA)
