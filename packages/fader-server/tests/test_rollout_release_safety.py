"""Guarded rollouts against a real server (uvicorn in a thread, SQLite and PostgreSQL), driven
over HTTP as a person, an SDK and a webhook receiver would:

- the README's own example (the demo's `new-checkout` in production, 5% on, released with the
  `staged-release` template) never takes the treatment from anyone, as the SDK snapshots of
  every stage show, and completes into the configuration a person would write;
- a plan does not turn on a flag that is off unless asked to;
- people's commands reach the project's webhooks like the scheduler's decisions;
- SDK summaries count in the window the server received them in, in whole minutes, from the
  keys the gate trusts.

The scheduler is off; tests tick it with a chosen `now`. The server reads a clock the tests move
forward (`ServerClock`): a summary sent after `next_minute()` lands in a whole minute of the
plan's window without waiting for the wall clock to get there.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from conftest import ADMIN_PASSWORD, LogSink, _serve, dedicated_postgres_database
from server_api import BOOLEAN_FLAG, unique
from server_clock import ServerClock, clocked_services
from typer.testing import CliRunner

import fader_engine
from fader_server.cli.main import app as cli
from fader_server.rollout_logic.notifications import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from fader_server.services import demo
from fader_server.settings import Settings

FLAG = "new-checkout"


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

    def sdk_key(self, project: str, environment: str, kind: str = "server") -> str:
        with self.client() as admin:
            made = admin.post(
                "/api/v1/tokens",
                json={"kind": kind, "name": "k", "project": project, "environment": environment},
            )
        assert made.status_code == 201, made.text
        return str(made.json()["token"])

    def tick(self, now: float) -> list[Any]:
        return list(self.app.state.scheduler.tick(now))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """A server of this module's own, with the demo project seeded as `fader serve --demo`
    does, and webhooks to this machine allowed (the receiver below listens on loopback)."""
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    with ExitStack() as stack:
        database_url = None
        if request.param == "postgresql":
            database_url = stack.enter_context(dedicated_postgres_database())
        settings = Settings(
            data_dir=tmp_path_factory.mktemp("release-safety"),
            database_url=database_url,
            admin_password=ADMIN_PASSWORD,
            admin_token=token,
            rollout_tick_seconds=0,
            outbound_allow=("127.0.0.1/32",),
        )
        clock = ServerClock()
        services = clocked_services(settings, clock)
        uv_server, thread, url, app = _serve(settings, LogSink(), services=services)
        app.state.webhooks.start(poll=0.1)  # as `fader serve` starts it
        try:
            demo.seed(app.state.services)
            yield Deployment(url, token, app, clock)
        finally:
            uv_server.should_exit = True
            thread.join(timeout=10)
            app.state.webhooks.close()
            app.state.scheduler.close()
            app.state.services.store.close()


@dataclass
class Project:
    key: str
    api: httpx.Client

    @property
    def base(self) -> str:
        return f"/api/v1/projects/{self.key}"

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        response = self.api.request(method, self.base + path, json=body)
        assert response.status_code == expect, response.text
        return response.json() if response.content else None

    def config(self, environment: str = "development") -> dict[str, Any]:
        found: dict[str, Any] = self.call("GET", f"/environments/{environment}/flags/{FLAG}")
        return found


@pytest.fixture
def project(deployment: Deployment) -> Iterator[Project]:
    """A fresh project with the new-checkout flag (client-side) and nothing configured."""
    key = unique("rs")
    with deployment.client() as api:
        assert api.post("/api/v1/projects", json={"key": key, "name": "R"}).status_code == 201
        found = Project(key, api)
        found.call("POST", "/flags", {"key": FLAG, **BOOLEAN_FLAG, "client_side": True}, 201)
        yield found


def configure(project: Project, config: dict[str, Any]) -> None:
    version = project.config()["version"]
    response = project.api.put(
        f"{project.base}/environments/development/flags/{FLAG}",
        json=config,
        headers={"If-Match": f'"{version}"'},
    )
    assert response.status_code == 200, response.text


ON = {"enabled": True, "offVariant": "off", "default": {"variant": "off"}}


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# ------------------------------------------------------------------ the README's example
def contexts() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [{"targetingKey": "qa-bot"}]
    for i in range(3000):
        domain = "example.com" if i % 25 == 0 else "shop.test"
        found.append({"targetingKey": f"user-{i}", "email": f"user{i}@{domain}"})
    return found


def test_the_readme_release_never_takes_the_treatment_away(deployment: Deployment) -> None:
    """What SDKs are served at every stage, evaluated by the engine as they would: whoever had
    `on` before the plan, or at a stage, has it at every later stage and after completion."""
    users = contexts()
    key = deployment.sdk_key(demo.DEMO_PROJECT, "production")

    def treated() -> set[str]:
        with deployment.client(key) as sdk:
            snapshot = sdk.get("/api/v1/sdk/flags")
        assert snapshot.status_code == 200, snapshot.text
        engine = fader_engine.load(snapshot.json()["document"])
        return {u["targetingKey"] for u in users if engine.evaluate(FLAG, u).variant == "on"}

    with deployment.client() as api:
        shop = Project(demo.DEMO_PROJECT, api)
        history = [treated()]
        assert 0.05 < len(history[0]) / len(users) < 0.15  # 5%, plus the employees
        plan = shop.call(
            "POST",
            "/rollouts",
            {"flag": FLAG, "environment": "production", "control": "off", "treatment": "on",
             "template": "staged-release", "start": True},
            201,
        )  # fmt: skip
        assert plan["served_before"] == 5
        assert plan["served_percents"] == [5, 5, 5, 25, 50, 100]
        while plan["status"] != "completed":
            now = treated()
            lost = history[-1] - now
            assert not lost, f"stage {plan['stage_name']} took 'on' from {len(lost)} users"
            history.append(now)
            plan = shop.call("POST", f"/rollouts/{plan['id']}/advance", {"comment": "next"})
        history.append(treated())
        assert history[-2] <= history[-1]
        assert len(history[-1]) == len(users)
        final = shop.config("production")
        assert {k: final[k] for k in ("enabled", "default", "rules")} == {
            "enabled": True,
            "default": {"variant": "on"},
            "rules": demo._CONFIGS[("production", FLAG)]["rules"],
        }
        shown = CliRunner().invoke(
            cli,
            ["rollouts", "status", str(plan["id"]), "-p", demo.DEMO_PROJECT],
            env={"FADER_URL": deployment.url, "FADER_TOKEN": deployment.token},
        )
        assert shown.exit_code == 0, shown.stderr
        assert "1% (serves 5%, as the flag did before the plan)" in shown.stdout
        assert "summaries from server keys, received in whole minutes of each stage" in shown.stdout


# ------------------------------------------------------------------------ a flag that is off
def test_a_plan_does_not_turn_a_disabled_flag_on_unless_asked(
    deployment: Deployment, project: Project
) -> None:
    stages = [{"name": "10%", "min_duration": 60, "percent": 10}]
    body = {"flag": FLAG, "environment": "development", "control": "off", "treatment": "on",
            "stages": stages}  # fmt: skip
    assert project.config()["enabled"] is False  # never configured: a new flag is dark
    for start in (True, False):
        refused = project.api.post(project.base + "/rollouts", json={**body, "start": start})
        assert refused.status_code == 409, refused.text
        problem = refused.json()
        assert problem["type"] == "urn:fader:problem:invalid-state"
        assert "is off in 'development'" in problem["detail"]
        assert '"enable": true' in problem["detail"]
    assert project.config()["version"] == 0  # nothing was written

    plan = project.call("POST", "/rollouts", {**body, "start": True, "enable": True}, 201)
    assert plan["enable"] is True
    assert project.config()["enabled"] is True
    project.call("POST", f"/rollouts/{plan['id']}/abort")
    assert project.config()["enabled"] is False  # the abort restores it off

    # a plan created while the flag was on, started after someone turned it off
    configure(project, ON)
    pending = project.call("POST", "/rollouts", body, 201)
    configure(project, {**ON, "enabled": False})
    refused = project.api.post(f"{project.base}/rollouts/{pending['id']}/start")
    assert refused.status_code == 409
    env = {"FADER_URL": deployment.url, "FADER_TOKEN": deployment.token}
    started = CliRunner().invoke(
        cli, ["rollouts", "start", str(pending["id"]), "-p", project.key, "--enable"], env=env
    )
    assert started.exit_code == 0, started.stderr
    assert project.config()["enabled"] is True


# ----------------------------------------------------------------------------- webhooks
class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server: Any = self.server
        server.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def receiver() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_peoples_commands_are_announced_to_the_webhooks(
    deployment: Deployment, project: Project
) -> None:
    configure(project, ON)
    stages = [
        {"name": "10%", "min_duration": 3600, "percent": 10},
        {"name": "50%", "min_duration": 3600, "percent": 50},
    ]
    with receiver() as hooks:
        url = f"http://127.0.0.1:{hooks.server_port}/fader"
        secret = project.call("POST", "/webhooks", {"url": url}, 201)["secret"]
        body = {
            "flag": FLAG,
            "environment": "development",
            "control": "off",
            "treatment": "on",
            "stages": stages,
            "start": True,
            "comment": "ship it",
        }
        plan_id = project.call("POST", "/rollouts", body, 201)["id"]
        for verb in ("pause", "resume", "advance", "abort"):
            project.call("POST", f"/rollouts/{plan_id}/{verb}", {"comment": f"{verb} now"})

        def all_six() -> list[dict[str, Any]] | None:
            if len(hooks.received) < 6:
                return None
            return [json.loads(body) for _, body in hooks.received]

        messages = wait_for("six deliveries", all_six)
    actions = [m["fader"]["action"] for m in messages]
    assert sorted(actions) == sorted(["create", "start", "pause", "resume", "advance", "abort"])
    by_action = {m["fader"]["action"]: m for m in messages}
    audit = project.call("GET", f"/audit?entity_type=rollout&entity_key={plan_id}")["items"]
    person = audit[0]["actor"]
    assert all(m["fader"]["actor"] == person for m in messages)
    assert all(m["fader"]["event"] == "rollout" for m in messages)
    assert all(m["fader"]["rollout"]["plan"] == plan_id for m in messages)
    assert by_action["start"]["fader"]["comment"] == "ship it"
    assert by_action["advance"]["fader"]["rollout"]["stage"] == "50%"
    assert by_action["abort"]["fader"]["rollout"]["status"] == "aborted"
    assert "abort" in by_action["abort"]["text"]
    for headers, raw in hooks.received:
        assert verify(secret, headers[TIMESTAMP_HEADER], raw, headers[SIGNATURE_HEADER])


# ---------------------------------------------------------------------- what gates count
def summary(variant: str, evaluations: int, errors: int, claimed: float) -> dict[str, Any]:
    """What an SDK sends for `evaluations` of `variant` and `errors` errors, over an interval
    its clock says ended at `claimed`."""
    return {
        "start": claimed - 5,
        "end": claimed,
        "evaluations": [{"flag": FLAG, "variant": variant, "reason": "SPLIT",
                         "count": evaluations}],
        "metrics": [{"name": "error", "flag": FLAG, "variant": variant, "count": errors,
                     "sum": float(errors), "sum_squares": float(errors)}] if errors else [],
    }  # fmt: skip


def report(deployment: Deployment, key: str, *summaries: dict[str, Any]) -> None:
    with deployment.client(key) as sdk:
        for body in summaries:
            sent = sdk.post("/api/v1/sdk/summaries", json=body)
            assert sent.status_code == 202, sent.text
            assert sent.json()["refused"] == []


def gate(project: Project, plan_id: int) -> dict[str, Any]:
    plan = project.call("GET", f"/rollouts/{plan_id}")
    found: dict[str, Any] = plan["last_evaluation"]["gates"][0]
    return found


def test_summaries_count_where_the_server_received_them_whatever_time_they_claim(
    deployment: Deployment, project: Project
) -> None:
    """Errors received before the plan, claiming a time after its start, do not count; errors
    received during it, claiming a time before its start, do."""
    configure(project, ON)
    key = deployment.sdk_key(project.key, "development")
    later = deployment.clock.now() + 3600
    report(deployment, key, summary("off", 300, 3, later), summary("on", 300, 150, later))
    stages = [{"name": "50%", "min_duration": 3600, "percent": 50}]
    body = {"flag": FLAG, "environment": "development", "control": "off", "treatment": "on",
            "stages": stages, "start": True,
            "gates": [{"kind": "error_rate", "event": "error", "min_samples": 50}]}  # fmt: skip
    plan_id = project.call("POST", "/rollouts", body, 201)["id"]
    deployment.tick(deployment.clock.next_minute())
    seen = gate(project, plan_id)
    assert seen["status"] == "insufficient_data"
    assert seen["evidence"]["treatment_samples"] == 0

    earlier = deployment.clock.now() - 86400
    report(deployment, key, summary("off", 300, 3, earlier), summary("on", 300, 150, earlier))
    deployment.tick(deployment.clock.now() + 2)
    assert project.call("GET", f"/rollouts/{plan_id}")["status"] == "rolled_back"


def test_summaries_from_client_keys_do_not_count_by_default(
    deployment: Deployment, project: Project
) -> None:
    """A client key ships in every browser: anyone can report errors with it. The default
    gate counts only server-key reports, so a flood of forged errors cannot roll a healthy
    plan back (nor forged successes hide a regression)."""
    configure(project, ON)
    server_key = deployment.sdk_key(project.key, "development")
    client_key = deployment.sdk_key(project.key, "development", kind="client")
    stages = [{"name": "50%", "min_duration": 3600, "percent": 50}]
    body = {"flag": FLAG, "environment": "development", "control": "off", "treatment": "on",
            "stages": stages, "start": True,
            "gates": [{"kind": "error_rate", "event": "error", "min_samples": 50}]}  # fmt: skip
    plan = project.call("POST", "/rollouts", body, 201)
    assert plan["gates"][0]["trust"] == ["server"]
    now = deployment.clock.next_minute()
    report(deployment, server_key, summary("off", 200, 2, now), summary("on", 200, 2, now))
    report(deployment, client_key, summary("on", 200, 190, now))
    deployment.tick(deployment.clock.now() + 1)
    assert project.call("GET", f"/rollouts/{plan['id']}")["status"] == "running"
    seen = gate(project, plan["id"])
    assert seen["status"] == "healthy"
    assert seen["evidence"]["treatment_samples"] == 200  # the server key's only

    refused = project.api.post(
        project.base + "/rollouts",
        json={**body, "flag": FLAG, "gates": [{"kind": "error_rate", "event": "error",
              "trust": ["browser"]}]},
    )  # fmt: skip
    assert refused.status_code == 422
