"""Protected environments are protected from every side (docs/security.md): an editor cannot
change what production serves through project-wide flags and segments, nor through a release
plan, and every refusal names the environment and why. Changes that production does not
evaluate (descriptions, unused segments, variants nothing serves, new dark flags) stay open to
editors. Real server, SQLite and PostgreSQL.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import Server
from server_api import BOOLEAN_FLAG, create_flag, unique

PROBLEM = "application/problem+json"
SERVING_OFF = {"enabled": True, "offVariant": "off", "default": {"variant": "off"}}
CONFIGURED = {
    "enabled": True,
    "offVariant": "off",
    "rules": [
        {"id": "staff", "clauses": [{"op": "in_segment", "values": ["staff"]}], "variant": "on"}
    ],
    "default": {"variant": "off"},
    "prerequisites": [],
}


@dataclass
class Team:
    """A project with an admin and an editor (API clients), closed at the end."""

    key: str
    admin: httpx.Client
    editor: httpx.Client

    @property
    def base(self) -> str:
        return f"/api/v1/projects/{self.key}"

    def flag(self, key: str) -> dict[str, Any]:
        response = self.admin.get(f"{self.base}/flags/{key}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def configure(self, env: str, flag: str, config: dict[str, Any]) -> None:
        path = f"{self.base}/environments/{env}/flags/{flag}"
        current = self.admin.get(path)
        etag = current.headers.get("etag", '"0"')
        response = self.admin.put(path, json=config, headers={"If-Match": etag})
        assert response.status_code == 200, response.text

    def segment(self, key: str, **data: Any) -> None:
        response = self.admin.post(f"{self.base}/segments", json={"key": key, **data})
        assert response.status_code == 201, response.text


def login(server: Server, admin: httpx.Client, project: str, role: str) -> httpx.Client:
    name, password = unique(role), "pw-" + secrets.token_hex(8)
    created = admin.post("/api/v1/users", json={"username": name, "password": password})
    assert created.status_code == 201, created.text
    member = admin.put(f"/api/v1/projects/{project}/members/{name}", json={"role": role})
    assert member.status_code == 200, member.text
    with server.client() as anonymous:
        token = anonymous.post("/api/v1/auth/login", json={"username": name, "password": password})
    assert token.status_code == 201, token.text
    return server.client(token.json()["token"])


@pytest.fixture
def team(server: Server, admin: httpx.Client, project: str) -> Iterator[Team]:
    with login(server, admin, project, "editor") as editor:
        yield Team(project, admin, editor)


def refused(response: httpx.Response, *needles: str) -> str:
    """Assert a 403 problem naming the protected environment and `needles`; its detail."""
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == PROBLEM
    detail = str(response.json()["detail"])
    for needle in ("'production'", "admin role", *needles):
        assert needle in detail, detail
    return detail


def put(client: httpx.Client, path: str, body: dict[str, Any], version: int) -> httpx.Response:
    return client.put(path, json=body, headers={"If-Match": f'"{version}"'})


# ------------------------------------------------------------------------- flags
def test_an_editor_cannot_change_a_value_production_serves(team: Team) -> None:
    """A flag never configured in production still serves its off variant there: turning
    `off` into `true` changes production, as does marking it client_side."""
    create_flag(team.editor, team.key, "gate")
    path = f"{team.base}/flags/gate"
    flipped = {**BOOLEAN_FLAG, "variants": {"on": True, "off": True}}
    detail = refused(put(team.editor, path, flipped, 1), "variant 'off'", "flag 'gate'")
    assert detail.startswith("changing flag 'gate' changes what protected environment")
    refused(put(team.editor, path, {**BOOLEAN_FLAG, "client_side": True}, 1), "client_side")
    assert team.flag("gate")["variants"] == {"on": True, "off": False}
    assert team.flag("gate")["client_side"] is False

    # What production does not evaluate stays open to editors.
    described = {**BOOLEAN_FLAG, "name": "Gate", "description": "d", "tags": ["x"]}
    assert put(team.editor, path, {**described, "owner_team": "ops"}, 1).status_code == 200
    unserved = {**described, "variants": {"on": True, "off": False, "beta": True}}
    assert put(team.editor, path, unserved, 2).status_code == 200
    # The admin may make the change the editor could not.
    assert put(team.admin, path, {**unserved, "variants": {"on": True, "off": True}}, 3).is_success


def test_a_served_variant_of_a_configured_flag_is_protected(team: Team) -> None:
    create_flag(team.admin, team.key, "gate")
    team.segment("staff", included=["u1"])
    team.configure("production", "gate", CONFIGURED)
    path = f"{team.base}/flags/gate"
    changed = {**BOOLEAN_FLAG, "variants": {"on": False, "off": False}}
    refused(put(team.editor, path, changed, 1), "variant 'on'")
    assert team.flag("gate")["variants"] == {"on": True, "off": False}


def test_deleting_and_recreating_a_flag_configured_in_production(team: Team) -> None:
    create_flag(team.admin, team.key, "live")
    team.segment("staff", included=["u1"])
    team.configure("production", "live", CONFIGURED)
    gone = team.editor.delete(f"{team.base}/flags/live", headers={"If-Match": '"1"'})
    refused(gone, "flag 'live', configured there, would be deleted")
    assert team.flag("live")["version"] == 1

    # A flag never configured in production is dark there: created and deleted by editors.
    create_flag(team.editor, team.key, "dark")
    assert (
        team.editor.delete(f"{team.base}/flags/dark", headers={"If-Match": '"1"'}).status_code
        == 204
    )

    # Deleted by an admin, the production configuration stays stored: bringing the flag back
    # would serve it again, so that is the admin's call too.
    assert team.admin.delete(f"{team.base}/flags/live", headers={"If-Match": '"1"'}).is_success
    again = team.editor.post(f"{team.base}/flags", json={"key": "live", **BOOLEAN_FLAG})
    refused(again, "come back")
    assert team.admin.post(f"{team.base}/flags", json={"key": "live", **BOOLEAN_FLAG}).is_success


def test_restoring_a_flag_version_that_changes_production(team: Team) -> None:
    create_flag(team.admin, team.key, "gate")
    path = f"{team.base}/flags/gate"
    flipped = {**BOOLEAN_FLAG, "variants": {"on": True, "off": True}}
    assert put(team.admin, path, flipped, 1).status_code == 200
    restore = team.editor.post(f"{path}/revert", json={"version": 1})
    refused(restore, "restoring version 1 of flag 'gate'", "variant 'off'")
    assert team.flag("gate")["version"] == 2
    assert team.admin.post(f"{path}/revert", json={"version": 1}).status_code == 200


# ---------------------------------------------------------------------- segments
def test_an_editor_cannot_widen_a_segment_production_uses(team: Team) -> None:
    create_flag(team.admin, team.key, "gate")
    team.segment("staff", included=["u1"])
    team.segment("inner", included=["u2"])
    team.segment("outer", rules=[{"clauses": [{"op": "in_segment", "values": ["inner"]}]}])
    team.configure("production", "gate", CONFIGURED)
    segments = f"{team.base}/segments"
    wider = {"included": ["u1", "attacker"]}
    detail = refused(put(team.editor, f"{segments}/staff", wider, 1), "segment 'staff'")
    assert "flag 'gate'" in detail
    # Its description is not evaluated.
    described = {"included": ["u1"], "description": "employees"}
    assert put(team.editor, f"{segments}/staff", described, 1).status_code == 200
    # A segment production does not use is free; once used (through another segment) it is not.
    assert put(team.editor, f"{segments}/inner", {"included": ["u3"]}, 1).status_code == 200
    uses_outer = {**CONFIGURED, "rules": [{**CONFIGURED["rules"][0], "clauses": [
        {"op": "in_segment", "values": ["outer"]}]}]}  # fmt: skip
    team.configure("production", "gate", uses_outer)
    refused(put(team.editor, f"{segments}/inner", wider, 2), "segment 'inner'")
    deleted = team.editor.delete(f"{segments}/outer", headers={"If-Match": '"1"'})
    assert deleted.status_code in (403, 422), deleted.text  # in use: invalid or refused
    restore = team.editor.post(f"{segments}/inner/revert", json={"version": 1})
    refused(restore, "segment 'inner'")
    assert team.admin.put(f"{segments}/inner", json=wider, headers={"If-Match": '"2"'}).is_success


def test_a_release_plan_protects_the_segments_and_variants_it_will_serve(team: Team) -> None:
    """A plan created in production (not started yet) will serve its treatment to the segment
    of its first stage: widening that segment, or changing the treatment's value, changes
    what production will serve, so it is refused to editors before the plan starts."""
    create_flag(team.admin, team.key, "gate")
    team.configure("production", "gate", SERVING_OFF)  # on, serving "off" to everyone
    path = f"{team.base}/flags/gate"
    team.segment("beta", included=["u1"])
    plan = team.admin.post(
        f"{team.base}/rollouts",
        json={
            "flag": "gate",
            "environment": "production",
            "control": "off",
            "treatment": "on",
            "stages": [
                {"name": "beta", "min_duration": 3600, "segment": "beta"},
                {"name": "all", "min_duration": 3600, "percent": 100},
            ],
        },
    )
    assert plan.status_code == 201, plan.text
    plan_id = plan.json()["id"]
    detail = refused(
        put(team.editor, f"{team.base}/segments/beta", {"included": ["u1", "u2"]}, 1),
        "segment 'beta'",
    )
    assert f"release plan {plan_id}" in detail
    treatment = {**BOOLEAN_FLAG, "variants": {"on": False, "off": False}}
    refused(put(team.editor, path, treatment, 1), "variant 'on'")
    assert team.admin.post(f"{team.base}/rollouts/{plan_id}/abort").status_code == 200
    assert put(team.editor, f"{team.base}/segments/beta", {"included": ["u2"]}, 1).is_success


# ---------------------------------------------------------------------- rollouts
def test_an_editor_cannot_start_a_release_in_production_by_any_path(team: Team) -> None:
    """Already refused before this change (the role check runs on the plan's environment at
    creation and at every command, and a template carries no environment); pinned here, with
    the refusal now naming the environment."""
    create_flag(team.admin, team.key, "gate")
    for env in ("production", "staging"):
        team.configure(env, "gate", SERVING_OFF)
    rollouts = f"{team.base}/rollouts"
    stages = [{"name": "all", "min_duration": 3600, "percent": 100}]
    plan = {"flag": "gate", "environment": "production", "control": "off", "treatment": "on"}
    template = team.editor.post(
        f"{team.base}/rollout-templates", json={"key": "fast", "name": "Fast", "stages": stages}
    )
    assert template.status_code == 201, template.text
    for body in (
        {**plan, "stages": stages},
        {**plan, "stages": stages, "start": True},
        {**plan, "template": "fast", "start": True},
    ):
        refused(team.editor.post(rollouts, json=body), "environment 'production' is protected")
    pending = team.admin.post(rollouts, json={**plan, "stages": stages})
    assert pending.status_code == 201, pending.text
    plan_id = pending.json()["id"]
    for command in ("start", "pause", "resume", "advance", "abort"):
        refused(team.editor.post(f"{rollouts}/{plan_id}/{command}"), "release plan")
    assert team.admin.get(f"{rollouts}/{plan_id}").json()["status"] == "pending"
    # The same editor runs plans where nothing is protected.
    own = team.editor.post(rollouts, json={**plan, "environment": "staging", "template": "fast"})
    assert own.status_code == 201, own.text
    assert team.editor.post(f"{rollouts}/{own.json()['id']}/start").status_code == 200


def test_configuration_refusals_name_the_environment(team: Team) -> None:
    create_flag(team.admin, team.key, "gate")
    flag = f"{team.base}/environments/production/flags/gate"
    config = {**CONFIGURED, "rules": []}
    refused(put(team.editor, flag, config, 0), "environment 'production' is protected")
    refused(team.editor.post(f"{flag}/toggle", json={"enabled": True}), "turning 'gate' on")
