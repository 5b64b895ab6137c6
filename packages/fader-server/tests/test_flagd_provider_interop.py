"""An environment exported over HTTP as a flagd document and loaded into the PyPI flagd provider
(in-process, file mode) gives every generated context the same value and variant as Fader.

The provider (openfeature-provider-flagd 0.6) buckets with flagd's fractional v3, so the
environment is created with `"bucketing": "v3"`; a v2 environment's splits would put some users
in other buckets under that provider, which is why bucketing is an environment setting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from flagd_sync_support import FLAGS, SEGMENT, contexts
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext

from fader_engine.formats import load

CONTEXTS = 3000
"""Generated contexts per flag (the flags and the segment: the same as the flag-sync tests')."""


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
        for context in contexts(seed=20261129, count=CONTEXTS):
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
    assert served["page-size"] == {10, 25, 50}
