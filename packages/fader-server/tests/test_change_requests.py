"""Change requests and scheduled changes end to end (docs/change-control.md): a real server on
SQLite and PostgreSQL, real users with real roles; scheduled changes over a clock the test
moves, with two replicas on one database, and two `fader serve` processes on one PostgreSQL
database applying each due request exactly once.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ADMIN_PASSWORD, LogSink, Server, _serve, dedicated_postgres_database
from outbound_targets import wait_for
from processes import FaderProcess, free_port
from server_api import create_flag, unique
from server_clock import ServerClock, clocked_services
from test_protected_environments import login

from fader_server.settings import Settings

PROBLEM = "application/problem+json"
ON = {"enabled": True, "offVariant": "off", "default": {"variant": "on"}}
PROPOSAL = {
    "problem": "the old checkout loses carts",
    "change": "serve the new checkout",
    "alternatives": "fix the old one",
    "rollback": "turn the flag off",
}
POLICY = {"required": True, "approvals": 1, "approver_roles": ["admin"]}


@dataclass
class Team:
    """A project whose production requires change requests (one admin approval), with an
    editor who proposes, another editor, and an admin who reviews."""

    key: str
    root: httpx.Client
    editor: httpx.Client
    other_editor: httpx.Client
    admin: httpx.Client

    @property
    def base(self) -> str:
        return f"/api/v1/projects/{self.key}"

    def propose(self, client: httpx.Client, *ops: dict[str, Any], **extra: Any) -> httpx.Response:
        body = {"title": "New checkout", "proposal": PROPOSAL, "operations": list(ops), **extra}
        return client.post(f"{self.base}/change-requests", json=body)

    def act(self, client: httpx.Client, rid: int, verb: str, **body: Any) -> httpx.Response:
        return client.post(f"{self.base}/change-requests/{rid}/{verb}", json=body or None)

    def get(self, rid: int) -> dict[str, Any]:
        response = self.root.get(f"{self.base}/change-requests/{rid}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def config(self, env: str, flag: str = "checkout") -> dict[str, Any]:
        response = self.root.get(f"{self.base}/environments/{env}/flags/{flag}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def audit(self, entity_type: str) -> list[dict[str, Any]]:
        response = self.root.get(f"{self.base}/audit", params={"entity_type": entity_type})
        assert response.status_code == 200, response.text
        return list(response.json()["items"])


def require_requests(client: httpx.Client, project: str, env: str, policy: Any) -> httpx.Response:
    path = f"/api/v1/projects/{project}/environments/{env}"
    current = client.get(path)
    body = {"name": current.json()["name"], "protected": True, "change_requests": policy}
    return client.put(path, json=body, headers={"If-Match": current.headers["etag"]})


@pytest.fixture
def team(server: Server, admin: httpx.Client, project: str) -> Iterator[Team]:
    create_flag(admin, project, "checkout")
    assert require_requests(admin, project, "production", POLICY).status_code == 200
    with (
        login(server, admin, project, "editor") as editor,
        login(server, admin, project, "editor") as other,
        login(server, admin, project, "admin") as reviewer,
    ):
        yield Team(project, admin, editor, other, reviewer)


def config_op(env: str = "production", **how: Any) -> dict[str, Any]:
    return {
        "kind": "flag_config",
        "environment": env,
        "flag": "checkout",
        **(how or {"config": ON}),
    }


def refused(response: httpx.Response, status: int, *needles: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["category"] == "user_fixable"
    for needle in needles:
        assert needle in response.json()["detail"], response.json()["detail"]


# ------------------------------------------------------------------------------ policy
def test_the_policy_is_validated_and_shown(admin: httpx.Client, project: str) -> None:
    path = f"/api/v1/projects/{project}/environments"
    assert admin.get(f"{path}/production").json()["change_requests"]["required"] is False
    bad = require_requests(admin, project, "production", {**POLICY, "approvals": 6})
    refused(bad, 422)
    bad = require_requests(admin, project, "production", {**POLICY, "approver_roles": ["root"]})
    refused(bad, 422)
    current = admin.get(f"{path}/staging")
    unprotected = {"name": "Staging", "protected": False, "change_requests": POLICY}
    refused(
        admin.put(
            f"{path}/staging", json=unprotected, headers={"If-Match": current.headers["etag"]}
        ),
        422,
    )
    assert require_requests(admin, project, "production", POLICY).status_code == 200
    shown = admin.get(f"{path}/production").json()["change_requests"]
    assert shown == {**POLICY, "emergency_roles": ["admin"]}
    # Kept by an update that does not name it.
    current = admin.get(f"{path}/production")
    renamed = {"name": "Prod", "protected": True}
    headers = {"If-Match": current.headers["etag"]}
    assert admin.put(f"{path}/production", json=renamed, headers=headers).status_code == 200
    assert admin.get(f"{path}/production").json()["change_requests"]["required"] is True


# ------------------------------------------------------------------------------ flow
def test_propose_comment_approve_apply(team: Team) -> None:
    proposed = team.propose(team.editor, config_op(enabled=True))
    assert proposed.status_code == 201, proposed.text
    request = proposed.json()
    rid = request["id"]
    assert request["status"] == "open"
    assert request["operations"][0]["source"] == "toggle"
    assert request["operations"][0]["diff"] == [
        {"path": "/enabled", "before": False, "after": True}
    ]
    [requirement] = request["requirements"]
    assert (requirement["environment"], requirement["approvals"], requirement["met"]) == (
        "production",
        1,
        False,
    )
    refused(team.act(team.editor, rid, "approve"), 403, "someone else")
    refused(team.act(team.other_editor, rid, "approve"), 403, "admin role")
    refused(team.act(team.editor, rid, "apply"), 409, "not approved")
    assert team.act(team.admin, rid, "comments", body="why now?").status_code == 200
    approved = team.act(team.admin, rid, "approve", body="go")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    applied = team.act(team.editor, rid, "apply")
    assert applied.status_code == 200, applied.text
    assert applied.json()["status"] == "applied"
    assert team.config("production")["enabled"] is True
    shown = team.get(rid)
    assert [r["kind"] for r in shown["reviews"]] == ["comment", "approve"]
    actions = [e["action"] for e in team.audit("change_request")]
    assert actions == ["applied", "approved", "commented", "proposed"]
    [config_entry] = team.audit("config")
    assert config_entry["comment"] == f"change request #{rid}: New checkout"
    listed = team.root.get(f"{team.base}/change-requests", params={"status": "applied"})
    assert [r["id"] for r in listed.json()["items"]] == [rid]


def test_a_stale_base_needs_an_update(team: Team) -> None:
    first = team.propose(team.editor, config_op()).json()["id"]
    second = team.propose(team.editor, config_op(enabled=True)).json()["id"]
    for rid in (first, second):
        assert team.act(team.admin, rid, "approve").status_code == 200
    assert team.act(team.editor, first, "apply").status_code == 200
    refused(team.act(team.editor, second, "apply"), 409, "version 1, not 0", "update")
    stale = team.root.get(f"{team.base}/change-requests/{second}")
    assert stale.json()["status"] == "needs_update"
    assert "version 1, not 0" in stale.json()["failure"]
    assert team.config("production")["default"] == {"variant": "on"}  # the first one only
    assert team.audit("change_request")[0]["action"] == "apply_failed"
    path = f"{team.base}/change-requests/{second}"
    update = {"operations": [config_op(config={**ON, "default": {"variant": "off"}})]}
    refused(
        team.other_editor.put(path, json=update, headers={"If-Match": stale.headers["etag"]}), 403
    )
    updated = team.editor.put(path, json=update, headers={"If-Match": stale.headers["etag"]})
    assert updated.status_code == 200, updated.text
    assert updated.json()["status"] == "open"
    assert updated.json()["operations"][0]["base_version"] == 1
    assert team.act(team.admin, second, "approve").status_code == 200
    assert team.act(team.editor, second, "apply").status_code == 200
    assert team.config("production")["default"] == {"variant": "off"}


def test_reject_and_cancel(team: Team) -> None:
    rid = team.propose(team.editor, config_op()).json()["id"]
    rejected = team.act(team.admin, rid, "reject", body="not this week")
    assert rejected.json()["status"] == "rejected"
    refused(team.act(team.editor, rid, "apply"), 409)
    other = team.propose(team.editor, config_op()).json()["id"]
    refused(team.act(team.other_editor, other, "cancel"), 403, "author")
    assert team.act(team.editor, other, "cancel").json()["status"] == "cancelled"
    assert team.config("production")["version"] == 0


# ------------------------------------------------------------------------ direct writes
def test_direct_writes_are_refused_where_requests_are_required(team: Team) -> None:
    path = f"{team.base}/environments/production/flags/checkout"
    refused(
        team.root.put(path, json=ON, headers={"If-Match": '"0"'}),
        409,
        "change request",
        "fader change-requests propose",
    )
    assert team.root.put(path, json=ON, headers={"If-Match": '"0"'}).json()["type"] == (
        "urn:fader:problem:change-request-required"
    )
    refused(team.root.post(path + "/toggle", json={"enabled": True}), 409, "change request")
    flag = team.root.get(f"{team.base}/flags/checkout").json()
    flipped = {k: flag[k] for k in ("name", "type")} | {"variants": {"on": True, "off": True}}
    refused(
        team.root.put(f"{team.base}/flags/checkout", json=flipped, headers={"If-Match": '"1"'}),
        409,
        "production",
    )
    staging = f"{team.base}/environments/staging/flags/checkout"
    assert team.editor.put(staging, json=ON, headers={"If-Match": '"0"'}).status_code == 200


def test_the_kill_switch_stays_one_action_and_is_audited(team: Team) -> None:
    rid = team.propose(team.editor, config_op()).json()["id"]
    team.act(team.admin, rid, "approve")
    assert team.act(team.editor, rid, "apply").status_code == 200
    toggle = f"{team.base}/environments/production/flags/checkout/toggle"
    refused(team.editor.post(toggle, json={"enabled": False}), 403)
    off = team.admin.post(toggle, json={"enabled": False, "comment": "checkout errors"})
    assert off.status_code == 200, off.text
    assert off.json()["enabled"] is False
    entry = team.audit("config")[0]
    assert (entry["action"], entry["comment"]) == (
        "emergency disable",
        "emergency: checkout errors",
    )
    refused(team.admin.post(toggle, json={"enabled": True}), 409, "change request")


# ------------------------------------------------------------------------------ impact
def test_the_impact_preview_counts_who_changes_variant(team: Team) -> None:
    french = {
        **ON,
        "default": {"variant": "off"},
        "rules": [
            {"clauses": [{"attribute": "country", "op": "in", "values": ["fr"]}], "variant": "on"}
        ],
    }
    contexts = [
        {"targetingKey": f"u{i}", "country": "fr" if i % 3 == 0 else "de"} for i in range(30)
    ]
    proposed = team.propose(team.editor, config_op(config=french), contexts=contexts)
    assert proposed.status_code == 201, proposed.text
    shown = team.get(proposed.json()["id"])
    impact = shown["impact"]
    assert (impact["source"], impact["contexts"]) == ("uploaded", 30)
    [flag] = impact["flags"]
    assert (flag["environment"], flag["flag"], flag["evaluated"], flag["changed"]) == (
        "production",
        "checkout",
        30,
        10,
    )
    assert [e["key"] for e in flag["examples"]] == [
        "u0",
        "u3",
        "u6",
        "u9",
        "u12",
        "u15",
        "u18",
        "u21",
        "u24",
        "u27",
    ]
    assert all((e["before"], e["after"]) == ("off", "on") for e in flag["examples"])
    too_many = [{"targetingKey": "x" * 100}] * 1001
    refused(team.propose(team.editor, config_op(), contexts=too_many), 422)


def test_another_project_cannot_see_or_review(team: Team, server: Server) -> None:
    rid = team.propose(team.editor, config_op()).json()["id"]
    other = unique("other")
    assert team.root.post("/api/v1/projects", json={"key": other, "name": other}).status_code == 201
    with login(server, team.root, other, "admin") as stranger:
        refused(stranger.get(f"{team.base}/change-requests/{rid}"), 404)
        refused(team.act(stranger, rid, "approve"), 404)
        refused(stranger.get(f"/api/v1/projects/{other}/change-requests/{rid}"), 404)
    assert team.get(rid)["reviews"] == []


# ------------------------------------------------------------------- scheduled changes
@dataclass
class Replica:
    url: str
    client: httpx.Client


@contextlib.contextmanager
def replicas(
    backend: str, data_dir: Path, clock: ServerClock, count: int
) -> Iterator[list[Replica]]:
    """`count` servers in this process over one database and one clock the test moves, each
    with its scheduled-changes runner ticking every 0.2 s (as `fader serve` starts it)."""
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    with contextlib.ExitStack() as stack:
        database_url = None
        if backend == "postgresql":
            database_url = stack.enter_context(dedicated_postgres_database())
        settings = Settings(
            data_dir=data_dir,
            database_url=database_url,
            admin_password=ADMIN_PASSWORD,
            admin_token=token,
            rollout_tick_seconds=0,
        )
        started: list[Replica] = []
        for _ in range(count):
            services = clocked_services(settings, clock)
            uv_server, thread, url, app = _serve(settings, LogSink(), services=services)
            app.state.scheduled_changes.start(0.2)

            def stop(uv_server: Any = uv_server, thread: Any = thread, app: Any = app) -> None:
                uv_server.should_exit = True
                thread.join(timeout=10)
                app.state.scheduled_changes.close()
                app.state.services.store.close()

            stack.callback(stop)
            client = stack.enter_context(
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            )
            started.append(Replica(url, client))
        yield started


def _status(client: httpx.Client, project: str, rid: int) -> str:
    response = client.get(f"/api/v1/projects/{project}/change-requests/{rid}?impact=false")
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_scheduled_changes_apply_once_at_the_injected_time(backend: str, tmp_path: Path) -> None:
    clock = ServerClock()
    with replicas(backend, tmp_path, clock, 2) as (one, two):
        project = unique("sched")
        assert one.client.post("/api/v1/projects", json={"key": project, "name": "S"}).is_success
        base = f"/api/v1/projects/{project}"
        flags = [f"f{i}" for i in range(5)]
        for key in flags:
            create_flag(one.client, project, key)
        at = clock() + timedelta(hours=2)
        ids = []
        for key in flags:
            op = {"kind": "flag_config", "environment": "development", "flag": key, "enabled": True}
            body = {
                "title": f"on {key}",
                "proposal": PROPOSAL,
                "operations": [op],
                "apply_at": at.isoformat(),
            }
            created = one.client.post(f"{base}/change-requests", json=body)
            assert created.status_code == 201, created.text
            assert created.json()["status"] == "approved"  # no policy governs development
            ids.append(created.json()["id"])
        cancelled = ids.pop()
        assert two.client.post(f"{base}/change-requests/{cancelled}/cancel").is_success
        scheduled = two.client.get(f"{base}/scheduled-changes").json()["items"]
        assert sorted(r["id"] for r in scheduled) == sorted(ids)
        on_flag = two.client.get(f"{base}/flags/f0/scheduled-changes").json()
        assert [r["id"] for r in on_flag] == [ids[0]]
        clock.advance(3600)  # an hour early: nothing happens
        with pytest.raises(AssertionError):
            wait_for(
                "an early apply", lambda: _status(one.client, project, ids[0]) == "applied", 1.5
            )
        clock.advance(3601)
        for rid in ids:
            wait_for(
                f"request {rid} applied",
                lambda rid=rid: _status(two.client, project, rid) == "applied",
                60,
            )
        assert _status(one.client, project, cancelled) == "cancelled"
        audit = one.client.get(f"{base}/audit", params={"limit": 200}).json()["items"]
        applied = [e["entity_key"] for e in audit if e["action"] == "applied"]
        assert sorted(applied) == sorted(str(r) for r in ids)  # each once, by one replica
        for key in flags[:-1]:
            config = one.client.get(f"{base}/environments/development/flags/{key}").json()
            assert (config["enabled"], config["version"]) == (True, 1)
        untouched = one.client.get(f"{base}/environments/development/flags/{flags[-1]}").json()
        assert untouched["version"] == 0
        assert two.client.get(f"{base}/scheduled-changes").json()["items"] == []


def test_a_conflict_at_apply_time_is_reported_not_forced(tmp_path: Path) -> None:
    clock = ServerClock()
    with replicas("sqlite", tmp_path, clock, 1) as (one,):
        project = unique("conflict")
        assert one.client.post("/api/v1/projects", json={"key": project, "name": "C"}).is_success
        base = f"/api/v1/projects/{project}"
        create_flag(one.client, project, "checkout")
        at = clock() + timedelta(hours=1)
        body = {
            "title": "on",
            "proposal": PROPOSAL,
            "operations": [config_op("development")],
            "apply_at": at.isoformat(),
        }
        rid = one.client.post(f"{base}/change-requests", json=body).json()["id"]
        path = f"{base}/environments/development/flags/checkout"
        half = {**ON, "default": {"variant": "off"}}
        assert one.client.put(path, json=half, headers={"If-Match": '"0"'}).status_code == 200
        clock.advance(3601)
        wait_for("the failure", lambda: _status(one.client, project, rid) == "apply_failed", 60)
        failed = one.client.get(f"{base}/change-requests/{rid}").json()
        assert "version 1, not 0" in failed["failure"]
        assert one.client.get(path).json()["default"] == {"variant": "off"}  # not forced
        entry = one.client.get(f"{base}/audit", params={"entity_type": "change_request"}).json()[
            "items"
        ][0]
        assert (entry["action"], entry["actor"]) == ("apply_failed", f"change-request:{rid}")


def test_two_fader_serve_processes_apply_each_request_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real `fader serve` processes on one PostgreSQL database, ticking every 0.2 s on the
    wall clock: every request due at the same moment is applied by exactly one of them."""
    monkeypatch.setenv("FADER_SCHEDULED_CHANGES_TICK_SECONDS", "0.2")
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    with dedicated_postgres_database() as url, contextlib.ExitStack() as stack:
        processes = []
        for name in ("a", "b"):
            process = FaderProcess(
                port=free_port(),
                admin_token=token,
                log_path=tmp_path / f"{name}.log",
                data_dir=tmp_path / name,
                database_url=url,
            )
            process.start()
            stack.callback(process.kill)
            processes.append(process)
        client = stack.enter_context(processes[0].admin())
        project = unique("replicas")
        assert client.post("/api/v1/projects", json={"key": project, "name": "R"}).is_success
        base = f"/api/v1/projects/{project}"
        keys = [f"f{i}" for i in range(8)]
        for key in keys:
            create_flag(client, project, key)
        at = datetime.now(UTC) + timedelta(seconds=8)
        ids = []
        for key in keys:
            op = {"kind": "flag_config", "environment": "development", "flag": key, "enabled": True}
            body = {
                "title": key,
                "proposal": PROPOSAL,
                "operations": [op],
                "apply_at": at.isoformat(),
            }
            created = client.post(f"{base}/change-requests", json=body)
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        for rid in ids:
            wait_for(
                f"request {rid}", lambda rid=rid: _status(client, project, rid) == "applied", 60
            )
        audit = client.get(f"{base}/audit", params={"limit": 200}).json()["items"]
        applied = [e["entity_key"] for e in audit if e["action"] == "applied"]
        assert sorted(applied) == sorted(str(r) for r in ids)
        enabled = [e for e in audit if e["entity_type"] == "config"]
        assert sorted(e["entity_key"] for e in enabled) == keys  # one write per flag
        for process in processes:
            assert process.errors() == [], process.output()
