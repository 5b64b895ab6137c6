"""Flags and configurations through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
from server_api import BOOLEAN_FLAG, create_flag


def test_created_flag_reads_back_with_etag(admin: httpx.Client, project: str) -> None:
    create_flag(admin, project)
    response = admin.get(f"/api/v1/projects/{project}/flags/new-checkout")
    assert response.status_code == 200
    assert response.headers["ETag"] == '"1"'
    body = response.json()
    assert body["variants"] == {"on": True, "off": False}
    assert body["owner_team"] == "payments"


def test_update_without_if_match_is_428(admin: httpx.Client, project: str) -> None:
    create_flag(admin, project)
    response = admin.put(f"/api/v1/projects/{project}/flags/new-checkout", json=BOOLEAN_FLAG)
    assert response.status_code == 428
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["category"] == "user_fixable"


def test_stale_if_match_is_412_and_current_one_wins(admin: httpx.Client, project: str) -> None:
    create_flag(admin, project)
    url = f"/api/v1/projects/{project}/flags/new-checkout"
    renamed = {**BOOLEAN_FLAG, "name": "Checkout v2"}
    ok = admin.put(url, json=renamed, headers={"If-Match": '"1"'})
    assert ok.status_code == 200, ok.text
    assert ok.headers["ETag"] == '"2"'
    stale = admin.put(url, json=BOOLEAN_FLAG, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert admin.get(url).json()["name"] == "Checkout v2"


def test_unknown_field_is_rejected_naming_it(admin: httpx.Client, project: str) -> None:
    response = admin.post(
        f"/api/v1/projects/{project}/flags",
        json={"key": "x", **BOOLEAN_FLAG, "colour": "blue"},
    )
    assert response.status_code == 422
    paths = [e["path"] for e in response.json()["errors"]]
    assert "/body/colour" in paths


def test_invalid_configuration_lists_every_engine_problem(
    admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project)
    response = admin.put(
        f"/api/v1/projects/{project}/environments/development/flags/new-checkout",
        json={
            "enabled": True,
            "offVariant": "nope",
            "default": {"variant": "missing"},
            "rules": [
                {
                    "clauses": [{"attribute": "plan", "op": "bogus", "values": ["x"]}],
                    "variant": "on",
                }
            ],
        },
        headers={"If-Match": '"0"'},
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["category"] == "user_fixable"
    paths = {e["path"] for e in problem["errors"]}
    assert "/flags/new-checkout/offVariant" in paths
    assert "/flags/new-checkout/default/variant" in paths
    assert any("/rules/0" in p for p in paths)


def test_configuration_starts_off_and_toggle_is_the_kill_switch(
    admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project)
    url = f"/api/v1/projects/{project}/environments/development/flags/new-checkout"
    initial = admin.get(url)
    assert initial.json()["enabled"] is False
    assert initial.headers["ETag"] == '"0"'
    on = admin.post(url + "/toggle", json={"enabled": True, "comment": "launch"})
    assert on.status_code == 200, on.text
    assert on.json()["enabled"] is True
    flipped = admin.post(url + "/toggle")
    assert flipped.json()["enabled"] is False
    assert flipped.json()["version"] == 2


def test_revert_restores_an_old_configuration_as_a_new_version(
    admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project)
    url = f"/api/v1/projects/{project}/environments/staging/flags/new-checkout"
    rollout = {
        "enabled": True,
        "offVariant": "off",
        "default": {
            "split": {
                "weights": [{"variant": "on", "weight": 25}, {"variant": "off", "weight": 75}]
            }
        },
    }
    assert admin.put(url, json=rollout, headers={"If-Match": '"0"'}).status_code == 200
    full = {**rollout, "default": {"variant": "on"}}
    assert admin.put(url, json=full, headers={"If-Match": '"1"'}).status_code == 200
    reverted = admin.post(url + "/revert", json={"version": 1, "comment": "errors up"})
    assert reverted.status_code == 200, reverted.text
    assert reverted.json()["version"] == 3
    assert reverted.json()["default"] == rollout["default"]
    versions = admin.get(url + "/versions").json()
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert versions[0]["comment"] == "errors up"


def test_every_write_is_audited_with_actor_and_diff(admin: httpx.Client, project: str) -> None:
    create_flag(admin, project)
    url = f"/api/v1/projects/{project}/environments/development/flags/new-checkout"
    admin.post(url + "/toggle", json={"enabled": True, "comment": "go"})
    history = admin.get(f"/api/v1/projects/{project}/flags/new-checkout/history").json()
    actions = [(e["entity_type"], e["action"]) for e in history["items"]]
    assert actions == [("config", "enable"), ("flag", "create")]
    toggle = history["items"][0]
    assert toggle["actor"].startswith("token:")
    assert toggle["comment"] == "go"
    assert toggle["environment"] == "development"
    assert toggle["diff"]


def test_toggling_to_the_current_state_writes_nothing(admin: httpx.Client, project: str) -> None:
    create_flag(admin, project)
    url = f"/api/v1/projects/{project}/environments/development/flags/new-checkout"
    off = admin.post(url + "/toggle", json={"enabled": False})
    assert off.status_code == 200
    assert off.json()["version"] == 0  # never configured, and already off
    assert admin.post(url + "/toggle", json={"enabled": True}).json()["version"] == 1
    again = admin.post(url + "/toggle", json={"enabled": True, "comment": "make sure"})
    assert again.json()["enabled"] is True
    assert again.json()["version"] == 1
    history = admin.get(f"/api/v1/projects/{project}/flags/new-checkout/history").json()
    assert [e["action"] for e in history["items"]] == ["enable", "create"]


def test_revoking_a_token_twice_is_audited_once(admin: httpx.Client, project: str) -> None:
    created = admin.post(
        "/api/v1/tokens",
        json={"kind": "server", "name": "k", "project": project, "environment": "production"},
    ).json()
    for _ in range(2):
        assert admin.delete(f"/api/v1/tokens/{created['id']}").status_code == 204
    audit = admin.get(f"/api/v1/projects/{project}/audit").json()["items"]
    revocations = [e for e in audit if e["entity_type"] == "token" and e["action"] == "revoke"]
    assert len(revocations) == 1


def test_deleting_a_prerequisite_in_use_is_refused(admin: httpx.Client, project: str) -> None:
    create_flag(admin, project, key="new-cart")
    create_flag(admin, project, key="new-checkout")
    url = f"/api/v1/projects/{project}/environments/development/flags/new-checkout"
    config = {
        "enabled": True,
        "offVariant": "off",
        "default": {"variant": "on"},
        "prerequisites": [{"flag": "new-cart", "variants": ["on"]}],
    }
    assert admin.put(url, json=config, headers={"If-Match": '"0"'}).status_code == 200
    response = admin.delete(
        f"/api/v1/projects/{project}/flags/new-cart", headers={"If-Match": '"1"'}
    )
    assert response.status_code == 422, response.text


def test_full_text_search_and_pagination(admin: httpx.Client, project: str) -> None:
    for i in range(5):
        create_flag(admin, project, key=f"flag-{i}", name=f"Flag number {i}")
    create_flag(
        admin,
        project,
        key="dark-mode",
        name="Dark mode",
        tags=["ui"],
        description="Night theme for the dashboard",
    )
    base = f"/api/v1/projects/{project}/flags"
    found = admin.get(base, params={"q": "dashboard"}).json()["items"]
    assert [f["key"] for f in found] == ["dark-mode"]
    keys: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = admin.get(base, params=params).json()
        keys.extend(f["key"] for f in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert keys == sorted(keys)
    assert len(keys) == 6


def test_deprecated_owner_field_still_works_and_is_announced(
    admin: httpx.Client, project: str
) -> None:
    body = {k: v for k, v in BOOLEAN_FLAG.items() if k != "owner_team"}
    response = admin.post(
        f"/api/v1/projects/{project}/flags", json={"key": "old-client", **body, "owner": "growth"}
    )
    assert response.status_code == 201
    assert response.json()["owner_team"] == "growth"
    assert response.headers["Deprecation"].startswith("@")
    assert "2027" in response.headers["Sunset"]
    assert "owner_team" in response.headers["Warning"]


def test_environment_document_is_what_the_engine_loads(admin: httpx.Client, project: str) -> None:
    from fader_engine.parse import parse_document

    create_flag(admin, project)
    segment = {
        "key": "internal-users",
        "name": "Internal users",
        "rules": [
            {"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@example.com"]}]}
        ],
    }
    assert admin.post(f"/api/v1/projects/{project}/segments", json=segment).status_code == 201
    url = f"/api/v1/projects/{project}/environments/development/flags/new-checkout"
    config = {
        "enabled": True,
        "offVariant": "off",
        "default": {"variant": "off"},
        "rules": [
            {"clauses": [{"op": "in_segment", "values": ["internal-users"]}], "variant": "on"}
        ],
    }
    assert admin.put(url, json=config, headers={"If-Match": '"0"'}).status_code == 200
    doc = admin.get(f"/api/v1/projects/{project}/environments/development/document").json()
    parse_document(doc)
    assert doc["flags"]["new-checkout"]["rules"][0]["variant"] == "on"
    assert "internal-users" in doc["segments"]


def test_a_split_keeps_a_vendors_bucketing_through_the_api(
    admin: httpx.Client, project: str
) -> None:
    """A split authored with LaunchDarkly's bucketing (docs/bucketing.md) is stored, served in
    the environment document and places each user where LaunchDarkly's hash does; a malformed
    bucketing is refused naming the field."""
    import hashlib

    import fader_engine

    create_flag(admin, project)
    url = f"/api/v1/projects/{project}/environments/development/flags/new-checkout"
    bucketing = {"algorithm": "launchdarkly", "prefix": "new-checkout.8f1c2e"}
    split = {
        "weights": [{"variant": "on", "weight": 30}, {"variant": "off", "weight": 70}],
        "bucketing": bucketing,
    }
    config = {"enabled": True, "offVariant": "off", "default": {"split": split}}
    bad = {**config, "default": {"split": {**split, "bucketing": {"algorithm": "md5"}}}}
    refused = admin.put(url, json=bad, headers={"If-Match": '"0"'})
    assert refused.status_code == 422, refused.text
    assert any("bucketing" in e["path"] for e in refused.json()["errors"]), refused.json()

    written = admin.put(url, json=config, headers={"If-Match": '"0"'})
    assert written.status_code == 200, written.text
    assert admin.get(url).json()["default"]["split"]["bucketing"] == bucketing
    document = admin.get(f"/api/v1/projects/{project}/environments/development/document").json()
    engine = fader_engine.load(document)
    for n in range(200):
        key = f"user-{n}"
        digest = hashlib.sha1(f"{bucketing['prefix']}.{key}".encode()).hexdigest()[:15]
        expected = "on" if int(digest, 16) / 0xFFFFFFFFFFFFFFF < 0.30 else "off"
        assert engine.evaluate("new-checkout", {"targetingKey": key}).variant == expected, key
