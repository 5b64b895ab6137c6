"""The routes flags and segments share (api/definitions.py), through the HTTP API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from server_api import BOOLEAN_FLAG

SEGMENT = {"name": "Beta", "included": ["user-1"]}
DEFINITIONS = [
    pytest.param("flag", "flags", BOOLEAN_FLAG, {"name": "Checkout v2"}, id="flag"),
    pytest.param("segment", "segments", SEGMENT, {"name": "Beta testers"}, id="segment"),
]


@pytest.mark.parametrize(("entity", "collection", "fields", "change"), DEFINITIONS)
def test_stored_definition_holds_no_key_so_an_update_changes_only_what_changed(
    admin: httpx.Client,
    project: str,
    entity: str,
    collection: str,
    fields: dict[str, Any],
    change: dict[str, Any],
) -> None:
    url = f"/api/v1/projects/{project}/{collection}"
    assert admin.post(url, json={"key": "beta", **fields}).status_code == 201
    updated = admin.put(f"{url}/beta", json={**fields, **change}, headers={"If-Match": '"1"'})
    assert updated.status_code == 200, updated.text
    versions = admin.get(f"{url}/beta/versions").json()
    assert [v["version"] for v in versions] == [2, 1]
    assert all("key" not in v["data"] for v in versions)
    audit = admin.get(
        f"/api/v1/projects/{project}/audit", params={"entity_type": entity, "entity_key": "beta"}
    ).json()["items"]
    assert [e["action"] for e in audit] == ["update", "create"]
    assert [d["path"] for d in audit[0]["diff"]] == ["/name"]


@pytest.mark.parametrize(("entity", "collection", "fields", "change"), DEFINITIONS)
def test_definition_goes_through_its_whole_life_with_etags(
    admin: httpx.Client,
    project: str,
    entity: str,
    collection: str,
    fields: dict[str, Any],
    change: dict[str, Any],
) -> None:
    url = f"/api/v1/projects/{project}/{collection}"
    created = admin.post(url, json={"key": "beta", **fields})
    assert created.headers["ETag"] == '"1"'
    assert admin.post(url, json={"key": "beta", **fields}).status_code == 409
    assert admin.put(f"{url}/beta", json={**fields, **change}).status_code == 428
    assert admin.delete(f"{url}/beta", headers={"If-Match": '"1"'}).status_code == 204
    assert admin.get(f"{url}/beta").status_code == 404
    restored = admin.post(f"{url}/beta/revert", json={"version": 1, "comment": "undo"})
    assert restored.status_code == 200, restored.text
    assert restored.headers["ETag"] == '"3"'
    assert restored.json()["name"] == fields["name"]
    assert admin.get(f"{url}/beta").json()["version"] == 3
