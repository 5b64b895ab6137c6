"""An environment exported over HTTP as a flagd document and loaded into the PyPI flagd provider
(in-process, file mode) gives every generated context the same value and variant as Fader.

The provider (openfeature-provider-flagd 0.6) buckets with flagd's fractional v3, so the
environment is created with `"bucketing": "v3"`; a v2 environment's splits would put some users
in other buckets under that provider, which is why bucketing is an environment setting.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext

from fader_engine.formats import load

CONTEXTS = 3000
SEGMENT = {
    "key": "internal",
    "name": "Internal users",
    "included": ["qa-bot"],
    "excluded": ["contractor-7"],
    "rules": [{"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@example.com"]}]}],
}
FLAGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "new-checkout": (
        {"type": "boolean", "variants": {"on": True, "off": False}},
        {
            "enabled": True,
            "offVariant": "off",
            "rules": [
                {"clauses": [{"op": "in_segment", "values": ["internal"]}], "variant": "on"},
                {
                    "clauses": [
                        {"attribute": "country", "op": "in", "values": ["NL", "DE"]},
                        {"attribute": "plan", "op": "in", "values": ["pro"], "negate": True},
                    ],
                    "split": {
                        "weights": [
                            {"variant": "on", "weight": 50},
                            {"variant": "off", "weight": 50},
                        ]
                    },
                },
            ],
            "default": {
                "split": {
                    "weights": [
                        {"variant": "on", "weight": 12.5},
                        {"variant": "off", "weight": 87.5},
                    ]
                }
            },
        },
    ),
    "search-ranking": (
        {
            "type": "string",
            "variants": {"classic": "classic", "bm25": "bm25", "learned": "learned"},
        },
        {
            "enabled": True,
            "offVariant": "classic",
            "rules": [
                {
                    "clauses": [
                        {"attribute": "appVersion", "op": "semver_lt", "values": ["2.0.0"]}
                    ],
                    "variant": "classic",
                },
                {
                    "clauses": [{"attribute": "email", "op": "starts_with", "values": ["beta-"]}],
                    "variant": "learned",
                },
            ],
            "default": {
                "split": {
                    "by": "orgId",
                    "weights": [
                        {"variant": "classic", "weight": 20},
                        {"variant": "bm25", "weight": 30},
                        {"variant": "learned", "weight": 50},
                    ],
                }
            },
        },
    ),
    "page-size": (
        {"type": "number", "variants": {"small": 10, "large": 50}},
        {
            "enabled": True,
            "offVariant": "small",
            "rules": [
                {
                    "clauses": [{"attribute": "screen", "op": "gte", "values": [1200]}],
                    "variant": "large",
                }
            ],
            "default": {"variant": "small"},
        },
    ),
    "legacy-banner": (
        {"type": "boolean", "variants": {"on": True, "off": False}},
        {"enabled": False, "offVariant": "off", "default": {"variant": "on"}},
    ),
}


def contexts(seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for i in range(CONTEXTS):
        context: dict[str, Any] = {"targetingKey": f"user-{rng.randrange(10**9)}"}
        if i % 97 == 0:
            context["targetingKey"] = rng.choice(["qa-bot", "contractor-7"])
        if rng.random() < 0.9:
            prefix = rng.choice(["", "", "beta-"])
            domain = rng.choice(["example.com", "mail.test", "example.org"])
            context["email"] = f"{prefix}u{i}@{domain}"
        if rng.random() < 0.8:
            context["country"] = rng.choice(["NL", "DE", "FR", "US", "BR"])
        if rng.random() < 0.7:
            context["plan"] = rng.choice(["free", "pro", "enterprise"])
        context["orgId"] = f"org-{rng.randrange(400)}"
        if rng.random() < 0.85:
            context["appVersion"] = rng.choice(["1.9.3", "2.0.0", "2.1.0-beta.1", "3.4.1"])
        if rng.random() < 0.8:
            context["screen"] = rng.choice([800, 1199, 1200, 1920])
        yield context


@pytest.fixture
def exported(admin: httpx.Client, project: str, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A v3 environment with the flags above; its flagd export on disk and its Fader snapshot."""
    created = admin.post(
        f"/api/v1/projects/{project}/environments",
        json={"key": "edge", "name": "Edge", "bucketing": "v3"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["bucketing"] == "v3"
    assert admin.post(f"/api/v1/projects/{project}/segments", json=SEGMENT).status_code == 201
    for key, (definition, config) in FLAGS.items():
        made = admin.post(
            f"/api/v1/projects/{project}/flags", json={"key": key, "name": key, **definition}
        )
        assert made.status_code == 201, made.text
        written = admin.put(
            f"/api/v1/projects/{project}/environments/edge/flags/{key}",
            json=config,
            headers={"If-Match": '"0"'},
        )
        assert written.status_code == 200, written.text
    key = admin.post(
        "/api/v1/tokens",
        json={"kind": "server", "name": "flagd", "project": project, "environment": "edge"},
    ).json()["token"]
    with httpx.Client(
        base_url=str(admin.base_url), headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as sdk:
        flagd = sdk.get("/api/v1/sdk/flagd")
        assert flagd.status_code == 200, flagd.text
        snapshot = sdk.get("/api/v1/sdk/flags").json()
    assert snapshot["document"]["bucketing"] == "v3"
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(flagd.json()))
    return path, snapshot["document"]


def test_the_flagd_provider_agrees_with_fader_on_every_context(
    exported: tuple[Path, dict[str, Any]], project: str
) -> None:
    path, document = exported
    fader = load(document)
    provider = FlagdProvider(
        resolver_type=ResolverType.FILE,
        offline_flag_source_path=str(path),
        deadline_ms=3_600_000,  # the file watcher's period: the file does not change here
    )
    domain = f"interop-{project}"
    api.set_provider_and_wait(provider, domain=domain)
    try:
        client = api.get_client(domain=domain)
        getters = {
            "boolean": client.get_boolean_details,
            "string": client.get_string_details,
            "number": client.get_integer_details,
        }
        defaults = {"boolean": False, "string": "", "number": -1}
        mismatches: list[str] = []
        served: dict[str, set[Any]] = {key: set() for key in FLAGS}
        for context in contexts(seed=20261129):
            attributes = {k: v for k, v in context.items() if k != "targetingKey"}
            evaluation = EvaluationContext(context["targetingKey"], attributes)
            for key, (definition, _) in FLAGS.items():
                kind = definition["type"]
                theirs = getters[kind](key, defaults[kind], evaluation)
                ours = fader.evaluate(key, context)
                served[key].add(ours.value)
                if (theirs.value, theirs.variant) != (ours.value, ours.variant):
                    mismatches.append(
                        f"{key} {context}: flagd {theirs.value!r}/{theirs.variant} "
                        f"({theirs.reason}, {theirs.error_code}), "
                        f"fader {ours.value!r}/{ours.variant} ({ours.reason})"
                    )
    finally:
        provider.shutdown()
    assert mismatches == [], f"{len(mismatches)} of {CONTEXTS * len(FLAGS)}:\n" + "\n".join(
        mismatches[:10]
    )
    # The contexts reach every variant, so agreement is not agreement on a constant.
    assert served["new-checkout"] == {True, False}
    assert served["search-ranking"] == {"classic", "bm25", "learned"}
    assert served["page-size"] == {10, 50}
