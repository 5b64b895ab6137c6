"""Two writers that each pass validation alone must never commit an invalid environment together.

Every cross-resource rule is raced: two requests released at once by a barrier, each from its
own client, for many rounds (each in a fresh project), on SQLite and on PostgreSQL. A write
validates the environment documents it changes by reading *other* resources (the segment a
rule names, the flag a prerequisite names, the variants a rule serves); under PostgreSQL's
READ COMMITTED those reads do not see a concurrent writer's uncommitted change, so without the
per-project write lock (docs/adr/0005-project-write-lock.md) both writers passed and the stored
environment no longer parsed. After each round: exactly one of the conflicting writes won, and
every environment's document is one the engine loads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from barrier_race import Racers, Request, broken_documents, call, racers, repeat, statuses
from conftest import Server
from server_api import BOOLEAN_FLAG, create_flag, unique

ROUNDS = 30
STAGES = [
    {"name": "5%", "min_duration": 3600, "percent": 5},
    {"name": "100%", "min_duration": 3600, "percent": 100},
]
GATES = [{"kind": "error_rate", "event": "error", "min_samples": 20}]
ANY = {"If-Match": "*"}
ACTIVE = ("running", "paused", "awaiting_approval")


@pytest.fixture
def racing(server: Server) -> Iterator[Racers]:
    with racers(server) as found:
        yield found


def _new_project(admin: httpx.Client) -> str:
    key = unique("cw")
    response = admin.post("/api/v1/projects", json={"key": key, "name": "Concurrent writes"})
    assert response.status_code == 201, response.text
    return key


def _config(**fields: Any) -> dict[str, Any]:
    return {"enabled": True, "offVariant": "off", "default": {"variant": "off"}, **fields}


def _config_url(project: str, flag: str) -> str:
    return f"/api/v1/projects/{project}/environments/development/flags/{flag}"


def _put_config(project: str, flag: str, body: dict[str, Any]) -> Request:
    return call("PUT", _config_url(project, flag), json=body, headers=ANY)


def _outcome(responses: list[httpx.Response], *allowed: list[int]) -> list[str]:
    """Empty when the status codes are one of the `allowed` outcomes (one write won, the other
    was refused with a problem), else what happened."""
    codes = statuses(responses)
    return [] if codes in allowed else [f"statuses {codes}: {[r.text for r in responses]}"]


def test_deleting_a_segment_races_a_rule_that_uses_it(admin: httpx.Client, racing: Racers) -> None:
    def play() -> list[str]:
        project = _new_project(admin)
        create_flag(admin, project, key="checkout")
        base = f"/api/v1/projects/{project}/segments"
        assert admin.post(base, json={"key": "internal", "included": ["u1"]}).status_code == 201
        rule = {"clauses": [{"op": "in_segment", "values": ["internal"]}], "variant": "on"}
        responses = racing.race(
            call("DELETE", f"{base}/internal", headers={"If-Match": '"1"'}),
            _put_config(project, "checkout", _config(rules=[rule])),
        )
        return _outcome(responses, [204, 422], [422, 200]) + broken_documents(admin, project)

    repeat(ROUNDS, play)


def test_deleting_a_prerequisite_races_a_configuration_that_gains_it(
    admin: httpx.Client, racing: Racers
) -> None:
    def play() -> list[str]:
        project = _new_project(admin)
        create_flag(admin, project, key="checkout")
        create_flag(admin, project, key="cart")
        needs = [{"flag": "cart", "variants": ["on"]}]
        responses = racing.race(
            call("DELETE", f"/api/v1/projects/{project}/flags/cart", headers={"If-Match": '"1"'}),
            _put_config(project, "checkout", _config(prerequisites=needs)),
        )
        return _outcome(responses, [204, 422], [422, 200]) + broken_documents(admin, project)

    repeat(ROUNDS, play)


def test_removing_a_variant_races_a_rule_that_serves_it(
    admin: httpx.Client, racing: Racers
) -> None:
    three = {**BOOLEAN_FLAG, "type": "string", "variants": {"off": "a", "on": "b", "beta": "c"}}
    two = {**three, "variants": {"off": "a", "on": "b"}}

    def play() -> list[str]:
        project = _new_project(admin)
        created = admin.post(f"/api/v1/projects/{project}/flags", json={"key": "layout", **three})
        assert created.status_code == 201, created.text
        responses = racing.race(
            call(
                "PUT",
                f"/api/v1/projects/{project}/flags/layout",
                json=two,
                headers={"If-Match": '"1"'},
            ),
            _put_config(project, "layout", _config(rules=[{"clauses": [], "variant": "beta"}])),
        )
        return _outcome(responses, [200, 422], [422, 200]) + broken_documents(admin, project)

    repeat(ROUNDS, play)


def _plans_of(admin: httpx.Client, project: str, flag: str) -> list[dict[str, Any]]:
    listed = admin.get(f"/api/v1/projects/{project}/rollouts", params={"flag": flag})
    assert listed.status_code == 200, listed.text
    return [p for p in listed.json()["items"] if p["status"] in ACTIVE]


def _plan_body(flag: str) -> dict[str, Any]:
    return {
        "flag": flag,
        "environment": "development",
        "control": "off",
        "treatment": "on",
        "stages": STAGES,
        "gates": GATES,
        "start": True,
    }


def test_deleting_a_flag_races_starting_its_release_plan(
    admin: httpx.Client, racing: Racers
) -> None:
    """The rule: a flag with an active plan cannot be deleted (409, abort the plan first), and a
    plan cannot start on a deleted flag; so in either order no plan runs on a deleted flag."""

    def play() -> list[str]:
        project = _new_project(admin)
        create_flag(admin, project, key="guarded")
        assert admin.put(_config_url(project, "guarded"), json=_config(), headers=ANY).is_success
        deleted, started = racing.race(
            call("DELETE", f"/api/v1/projects/{project}/flags/guarded", headers=ANY),
            call("POST", f"/api/v1/projects/{project}/rollouts", json=_plan_body("guarded")),
        )
        found = _outcome([deleted, started], [204, 422], [409, 201])
        exists = admin.get(f"/api/v1/projects/{project}/flags/guarded").status_code == 200
        running = _plans_of(admin, project, "guarded")
        if running and not exists:
            found.append(f"release plan {running[0]['id']} runs on a deleted flag")
        refusal = deleted.json()["type"] if deleted.status_code == 409 else None
        if refusal not in (None, "urn:fader:problem:invalid-state"):
            found.append(f"refused as {refusal}")
        for plan in running:  # stop it: the scheduler need not look at it again
            admin.post(f"/api/v1/projects/{project}/rollouts/{plan['id']}/abort")
        return found + broken_documents(admin, project)

    repeat(ROUNDS, play)


def test_a_flag_with_an_active_plan_is_deleted_only_after_the_plan_is_aborted(
    admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project, key="guarded")
    assert admin.put(_config_url(project, "guarded"), json=_config(), headers=ANY).is_success
    started = admin.post(f"/api/v1/projects/{project}/rollouts", json=_plan_body("guarded"))
    assert started.status_code == 201, started.text
    plan = started.json()["id"]
    url = f"/api/v1/projects/{project}/flags/guarded"
    refused = admin.delete(url, headers=ANY)
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"] == "urn:fader:problem:invalid-state"
    assert f"abort release plan {plan}" in refused.json()["detail"]
    assert admin.post(f"/api/v1/projects/{project}/rollouts/{plan}/pause").status_code == 200
    assert admin.delete(url, headers=ANY).status_code == 409  # paused is still active
    reverted = admin.post(url + "/revert", json={"version": 1}, headers=ANY)
    assert reverted.status_code == 200  # a revert to a live version is no delete
    assert admin.post(f"/api/v1/projects/{project}/rollouts/{plan}/abort").status_code == 200
    assert admin.delete(url, headers=ANY).status_code == 204
    assert broken_documents(admin, project) == []
