"""The rollout API over HTTP, on SQLite and PostgreSQL: templates, plans and their commands,
problems for bad plans and invalid transitions, incidents, webhooks.

The server runs in a thread with its scheduler off; tests that need a decision call the app's
scheduler themselves with a chosen `now` (a stage's minimum duration passes in one call). The
server reads a clock the tests move forward (`ServerClock`), so a summary can be received in a
whole minute of a plan's window without waiting for one.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ADMIN_PASSWORD, OUTBOUND_ALLOW, LogSink, _serve
from server_api import BOOLEAN_FLAG, unique
from server_clock import ServerClock, clocked_services

from fader_server.settings import Settings

PROBLEM = "application/problem+json"
STAGES = [
    {"name": "internal", "min_duration": 60, "segment": "internal"},
    {"name": "5%", "min_duration": 60, "percent": 5},
    {"name": "100%", "min_duration": 60, "percent": 100},
]
GATES = [{"kind": "error_rate", "event": "error", "min_samples": 20}]


@dataclass
class Deployment:
    url: str
    token: str
    app: Any
    clock: ServerClock

    def client(self, token: str | None = None) -> httpx.Client:
        bearer = token or self.token
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {bearer}"}, timeout=30
        )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    database_url = (
        request.getfixturevalue("module_postgres_url") if request.param != "sqlite" else None
    )
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("rollout-api"),
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        admin_token=token,
        rollout_tick_seconds=0,
        outbound_allow=OUTBOUND_ALLOW,
    )
    clock = ServerClock()
    services = clocked_services(settings, clock)
    uv_server, thread, url, app = _serve(settings, LogSink(), services=services)
    try:
        yield Deployment(url, token, app, clock)
    finally:
        uv_server.should_exit = True
        thread.join(timeout=10)
        app.state.scheduler.close()
        app.state.services.store.close()


@dataclass
class Project:
    key: str
    api: httpx.Client

    @property
    def base(self) -> str:
        return f"/api/v1/projects/{self.key}"

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return self.api.post(self.base + path, json=body)

    def get(self, path: str) -> httpx.Response:
        return self.api.get(self.base + path)


@pytest.fixture
def project(deployment: Deployment) -> Iterator[Project]:
    """A project with an internal-users segment and a boolean flag on in development."""
    key = unique("ra")
    with deployment.client() as api:
        assert api.post("/api/v1/projects", json={"key": key, "name": "R"}).status_code == 201
        found = Project(key, api)
        segment = {"key": "internal", "included": ["staff-1"]}
        assert found.post("/segments", segment).status_code == 201
        assert found.post("/flags", {"key": "new-checkout", **BOOLEAN_FLAG}).status_code == 201
        config = {"enabled": True, "offVariant": "off", "default": {"variant": "off"}}
        response = api.put(
            found.base + "/environments/development/flags/new-checkout",
            json=config,
            headers={"If-Match": '"0"'},
        )
        assert response.status_code == 200, response.text
        yield found


def plan(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "flag": "new-checkout",
        "environment": "development",
        "control": "off",
        "treatment": "on",
        "stages": STAGES,
        "gates": GATES,
    }
    body.update(overrides)
    return body


def problem_paths(response: httpx.Response) -> set[str]:
    assert response.headers["content-type"] == PROBLEM, response.text
    body = response.json()
    assert body["category"] == "user_fixable"
    return {e["path"] for e in body.get("errors") or []}


# ------------------------------------------------------------------ templates
def test_templates_are_saved_listed_and_used_to_create_plans(project: Project) -> None:
    template = {"key": "standard", "name": "Standard", "stages": STAGES, "gates": GATES}
    created = project.post("/rollout-templates", template)
    assert created.status_code == 201, created.text
    assert created.json()["gates"][0]["alpha"] == 0.01  # defaults are filled in and shown
    duplicate = project.post("/rollout-templates", template)
    assert (duplicate.status_code, duplicate.json()["type"]) == (
        409,
        "urn:fader:problem:already-exists",
    )
    assert [t["key"] for t in project.get("/rollout-templates").json()["items"]] == ["standard"]

    body = {k: v for k, v in plan(template="standard").items() if k not in ("stages", "gates")}
    made = project.post("/rollouts", body)
    assert made.status_code == 201, made.text
    assert made.json()["template"] == "standard"
    assert [s["name"] for s in made.json()["stages"]] == ["internal", "5%", "100%"]
    assert made.json()["status"] == "pending"

    deleted = project.api.delete(project.base + "/rollout-templates/standard")
    assert deleted.status_code == 204
    assert project.get("/rollout-templates/standard").status_code == 404
    kept = project.get(f"/rollouts/{made.json()['id']}").json()
    assert len(kept["stages"]) == 3  # a plan keeps its own copy


def test_templates_are_checked_against_the_project(project: Project) -> None:
    stages = [
        {"name": "a", "min_duration": 1, "segment": "ghosts"},
        {"name": "b", "min_duration": 1, "percent": 50},
        {"name": "b", "min_duration": 1, "percent": 10},
    ]
    response = project.post("/rollout-templates", {"key": "t", "name": "T", "stages": stages})
    assert response.status_code == 422
    assert problem_paths(response) == {
        "/body/stages/0/segment",
        "/body/stages/2/name",
        "/body/stages/2/percent",
    }


# ---------------------------------------------------------------------- plans
@pytest.mark.parametrize(
    ("overrides", "paths"),
    [
        ({"control": "nope"}, {"/body/control"}),
        ({"treatment": "off"}, {"/body/treatment"}),
        ({"flag": "missing"}, {"/body/flag"}),
        ({"environment": "moon"}, {"/body/environment"}),
        ({"stages": None}, {"/body/stages"}),
        ({"template": "nope", "stages": None, "gates": None}, {"/body/template"}),
        ({"template": "x"}, {"/body/template"}),
        (
            {"stages": [{"name": "a", "min_duration": 1, "percent": 5, "segment": "internal"}]},
            {"/body/stages/0"},
        ),
        (
            {
                "gates": [
                    {"kind": "prometheus", "url": "http://prometheus.example:9090", "query": "up"}
                ]
            },
            {"/body/gates/0"},
        ),
        (
            {"gates": [{"kind": "http_check", "url": "ftp://x/health"}]},
            {"/body/gates/0/url"},
        ),
        ({"gates": [{"kind": "latency"}]}, {"/body/gates/0/latency/event"}),
        (
            {"stages": [{"name": "a", "min_duration": 1, "percent": 150}]},
            {"/body/stages/0/percent"},
        ),
        (
            {"gates": [{"kind": "error_rate", "event": "e", "trust": ["browser"]}]},
            {"/body/gates/0/error_rate/trust/0"},
        ),
        (
            {"gates": [{"kind": "error_rate", "event": "e", "trust": ["server", "server"]}]},
            {"/body/gates/0/error_rate/trust"},
        ),
        (
            {"gates": [{"kind": "latency", "event": "e", "trust": []}]},
            {"/body/gates/0/latency/trust"},
        ),
    ],
)
def test_bad_plans_are_refused_naming_the_field(
    project: Project, overrides: dict[str, Any], paths: set[str]
) -> None:
    response = project.post("/rollouts", plan(**overrides))
    assert response.status_code == 422, response.text
    assert problem_paths(response) == paths


def test_commands_that_do_not_apply_are_409_problems(project: Project) -> None:
    plan_id = project.post("/rollouts", plan()).json()["id"]
    refused = project.post(f"/rollouts/{plan_id}/resume")
    assert refused.status_code == 409
    assert refused.headers["content-type"] == PROBLEM
    body = refused.json()
    assert body["type"] == "urn:fader:problem:invalid-state"
    assert "pending" in body["detail"]
    assert project.post(f"/rollouts/{plan_id}/start", {"comment": "go"}).status_code == 200
    again = project.post(f"/rollouts/{plan_id}/start")
    assert (again.status_code, again.json()["type"]) == (409, "urn:fader:problem:invalid-state")
    assert project.post("/rollouts/999999/start").status_code == 404


def test_one_unfinished_plan_per_flag_and_environment(project: Project) -> None:
    first = project.post("/rollouts", plan(start=True))
    assert first.status_code == 201
    second = project.post("/rollouts", plan())
    assert (second.status_code, second.json()["type"]) == (409, "urn:fader:problem:already-exists")
    aborted = project.post(f"/rollouts/{first.json()['id']}/abort", {"comment": "later"})
    assert aborted.json()["status"] == "aborted"
    config = project.get("/environments/development/flags/new-checkout").json()
    assert config["default"] == {"variant": "off"}
    assert config["rules"] == []
    assert project.post("/rollouts", plan()).status_code == 201
    listed = project.get("/rollouts?status=aborted").json()["items"]
    assert [p["id"] for p in listed] == [first.json()["id"]]


def test_status_shows_the_stage_its_time_and_the_latest_gate_results(
    deployment: Deployment, project: Project
) -> None:
    started = project.post("/rollouts", plan(start=True)).json()
    assert (started["status"], started["stage_name"]) == ("running", "internal")
    config = project.get("/environments/development/flags/new-checkout").json()
    assert config["rules"][0]["variant"] == "on"
    deployment.app.state.scheduler.tick(deployment.clock.now() + 120)
    status = project.get(f"/rollouts/{started['id']}").json()
    assert status["stage"] == 0  # the stage is long enough, but there is no traffic yet
    assert status["time_in_stage"] >= 0
    evaluation = status["last_evaluation"]
    assert evaluation["action"] == "wait"
    assert evaluation["gates"][0]["status"] == "insufficient_data"
    assert "20 more treatment and 20 more control samples needed" in evaluation["reason"]


def test_a_regression_opens_an_incident_listed_by_plan(
    deployment: Deployment, project: Project
) -> None:
    started = project.post("/rollouts", plan(start=True, stages=STAGES[1:])).json()
    with deployment.client() as admin:
        key = admin.post(
            "/api/v1/tokens",
            json={
                "kind": "server",
                "name": "s",
                "project": project.key,
                "environment": "development",
            },
        ).json()["token"]
    now = deployment.clock.next_minute()  # a whole minute of the stage's window
    summary = {
        "start": now - 5,
        "end": now,
        "evaluations": [
            {"flag": "new-checkout", "variant": v, "reason": "SPLIT", "count": 300}
            for v in ("off", "on")
        ],
        "metrics": [
            {"name": "error", "flag": "new-checkout", "variant": "on", "count": 90, "sum": 90.0,
             "sum_squares": 90.0}
        ],
    }  # fmt: skip
    with deployment.client(key) as sdk:
        assert sdk.post("/api/v1/sdk/summaries", json=summary).status_code == 202
    steps = deployment.app.state.scheduler.tick(now + 2)
    assert [s.action.value for s in steps if s.plan_id == started["id"]] == ["rollback"]
    status = project.get(f"/rollouts/{started['id']}").json()
    assert status["status"] == "rolled_back"
    incidents = project.get(f"/incidents?rollout={started['id']}").json()["items"]
    assert [i["id"] for i in incidents] == [status["incident"]]
    incident = project.get(f"/incidents/{status['incident']}").json()
    assert incident["stage_name"] == "5%"
    assert incident["evidence"][0]["evidence"]["treatment"] == pytest.approx(0.3)
    assert [i["action"] for i in incident["timeline"]][-2:] == ["rollback", "rollback"]
    assert (incident["state"], incident["severity"]) == ("open", "major")
    assert incident["title"] == "Automatic rollback of new-checkout in development"
    opened = incident["events"][-1]
    assert (opened["action"], opened["actor"]) == ("opened", f"rollout:{started['id']}")
    assert project.get("/incidents/999999").status_code == 404


def test_an_editor_cannot_run_a_plan_in_a_protected_environment(
    deployment: Deployment, project: Project
) -> None:
    name, password = unique("ed"), "pw-" + secrets.token_hex(8)
    project.api.post("/api/v1/users", json={"username": name, "password": password})
    project.api.put(f"{project.base}/members/{name}", json={"role": "editor"})
    with httpx.Client(base_url=deployment.url) as anonymous:
        login = anonymous.post("/api/v1/auth/login", json={"username": name, "password": password})
    assert login.status_code == 201, login.text
    with deployment.client(login.json()["token"]) as editor:
        base = project.base + "/rollouts"
        refused = editor.post(base, json=plan(environment="production"))
        assert refused.status_code == 403
        allowed = editor.post(base, json=plan())
        assert allowed.status_code == 201, allowed.text
        assert (
            editor.post(project.base + "/webhooks", json={"url": "https://h.example"}).status_code
            == 403
        )


# ------------------------------------------------------------------- webhooks
def test_a_webhook_secret_is_shown_once(project: Project) -> None:
    created = project.post("/webhooks", {"url": "https://hooks.example/a", "description": "ops"})
    assert created.status_code == 201, created.text
    assert created.json()["secret"].startswith("whsec_")
    chosen = project.post("/webhooks", {"url": "https://hooks.example/b", "secret": "x" * 20})
    assert chosen.json()["secret"] == "x" * 20
    listed = project.get("/webhooks").json()["items"]
    assert [w["url"] for w in listed] == ["https://hooks.example/a", "https://hooks.example/b"]
    assert all("secret" not in w for w in listed)
    assert project.post("/webhooks", {"url": "https://hooks.example/a"}).status_code == 409
    assert problem_paths(project.post("/webhooks", {"url": "gopher://x"})) == {"/body/url"}
    hook = created.json()["id"]
    assert project.api.delete(f"{project.base}/webhooks/{hook}").status_code == 204
    assert project.api.delete(f"{project.base}/webhooks/{hook}").status_code == 404


def test_the_log_never_holds_a_webhook_secret(tmp_path: Path) -> None:
    """Creating and listing webhooks through a server with its own log sink."""
    sink, token = LogSink(), "fdr_admin_" + secrets.token_urlsafe(32)
    settings = Settings(
        data_dir=tmp_path,
        admin_password=ADMIN_PASSWORD,
        admin_token=token,
        rollout_tick_seconds=0,
        outbound_allow=OUTBOUND_ALLOW,
    )
    uv_server, thread, url, app = _serve(settings, sink)
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
            api.post("/api/v1/projects", json={"key": "p", "name": "P"})
            secret = api.post("/api/v1/projects/p/webhooks", json={"url": "https://h.example/x"})
            api.get("/api/v1/projects/p/webhooks")
    finally:
        uv_server.should_exit = True
        thread.join(timeout=10)
        app.state.scheduler.close()
        app.state.services.store.close()
    assert secret.json()["secret"] not in sink.text()
    assert "h.example/x" not in sink.text()


def test_a_plan_that_would_rebucket_users_is_refused_naming_split_by(project: Project) -> None:
    """The flag already splits by organisation: a plan splitting by another attribute would
    move users between buckets and take the treatment from some of them."""
    config = {
        "enabled": True,
        "offVariant": "off",
        "default": {
            "split": {
                "by": "org",
                "weights": [{"variant": "on", "weight": 10}, {"variant": "off", "weight": 90}],
            }
        },
    }
    path = project.base + "/environments/development/flags/new-checkout"
    version = project.api.get(path).json()["version"]
    written = project.api.put(path, json=config, headers={"If-Match": f'"{version}"'})
    assert written.status_code == 200, written.text
    refused = project.post("/rollouts", plan(split_by="accountId"))
    assert refused.status_code == 422
    assert problem_paths(refused) == {"/body/split_by"}
    kept = project.post("/rollouts", plan(stages=STAGES[1:], start=True))  # inherits "org"
    assert kept.status_code == 201, kept.text
    assert kept.json()["served_percents"] == [10, 100]
    served = project.get("/environments/development/flags/new-checkout").json()["default"]
    assert served == config["default"]  # 5% is below the 10% served: nothing changes yet
