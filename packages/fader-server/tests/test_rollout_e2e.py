"""Guarded rollouts end to end: real servers, real SDK clients evaluating the flag and tracking
errors, their summaries flowing to the server, a real Prometheus scraping an exporter, HTTP
servers standing in for a synthetic-check target and a webhook receiver. The scheduler ticks
every 0.2 s by itself; every wait polls a condition against a deadline.

Metric gates count whole minutes of the server's receive time (docs/events.md, section 4), so
the tests with SDK traffic run the server in this process (uvicorn with the protocol `fader
serve` uses, SQLite and PostgreSQL) over a clock the test moves forward (`ServerClock`): a stage
of a minute passes at once, and the summaries sent after the move land in its whole minutes.
Nothing sleeps for minutes. The other tests run `fader serve` processes on the wall clock,
with stages of a second or two.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from conftest import ADMIN_PASSWORD, LogSink, _serve, dedicated_postgres_database
from processes import wait_ready
from server_api import BOOLEAN_FLAG, unique
from server_clock import ServerClock, clocked_services
from typer.testing import CliRunner

from fader_sdk import FaderClient
from fader_server.cli.main import app as cli
from fader_server.http_protocol import TransportExposingProtocol
from fader_server.settings import Settings

TICK = "0.2"
PROMETHEUS = Path("/usr/bin/prometheus")
FLAG = "new-checkout"
INTERNAL = {
    "name": "Internal users",
    "rules": [{"clauses": [{"attribute": "internal", "op": "in", "values": [True]}]}],
}
T = TypeVar("T")


def free_port() -> int:
    """A free port below the ephemeral range, so no client socket can be handed it meanwhile."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20_000, 32_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Fader:
    """One `fader serve` process (output to a file: a full pipe would block the server)."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def fader(data_dir: Path, token: str, database_url: str | None = None) -> Iterator[Fader]:
    port = free_port()
    log = data_dir / f"serve-{port}.log"
    env = {
        **os.environ,
        "FADER_ADMIN_TOKEN": token,
        "FADER_ADMIN_PASSWORD": "pw-" + token[-16:],
        "FADER_ROLLOUT_TICK_SECONDS": TICK,
        "FADER_SSE_HEARTBEAT_SECONDS": "1",
        "FADER_OUTBOUND_ALLOW": "127.0.0.1/32",  # the local Prometheus, target and receiver
    }
    args = ["serve", "--data-dir", str(data_dir), "--port", str(port)]
    if database_url:
        args += ["--database-url", database_url]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "from fader_server.cli.main import main; main()", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Fader(f"http://127.0.0.1:{port}", process, log)
    try:
        assert wait_ready(server.url, process, 90), log.read_text()
        yield server
    finally:
        server.stop(signal.SIGKILL)


@dataclass
class Clocked:
    """A server in this process over a clock the test moves (`fader serve`'s HTTP protocol,
    its scheduler ticking every 0.2 s in its own thread)."""

    url: str
    clock: ServerClock
    log: LogSink


@contextmanager
def clocked_fader(backend: str, data_dir: Path, token: str) -> Iterator[Clocked]:
    with contextlib.ExitStack() as stack:
        database_url = None
        if backend == "postgresql":
            database_url = stack.enter_context(dedicated_postgres_database())
        settings = Settings(
            data_dir=data_dir,
            database_url=database_url,
            admin_password=ADMIN_PASSWORD,
            admin_token=token,
            rollout_tick_seconds=0,  # started below, as `fader serve` starts it
            sse_heartbeat_seconds=1.0,
            outbound_allow=("127.0.0.1/32",),
        )
        clock, sink = ServerClock(), LogSink()
        services = clocked_services(settings, clock)
        uv_server, thread, url, app = _serve(
            settings, sink, http=TransportExposingProtocol, services=services
        )
        app.state.scheduler.start(float(TICK))
        app.state.webhooks.start(poll=0.1)
        try:
            yield Clocked(url, clock, sink)
        finally:
            uv_server.should_exit = True
            thread.join(timeout=10)
            app.state.webhooks.close()
            app.state.scheduler.close()
            services.store.close()


_OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


class Api:
    def __init__(self, url: str, token: str, project: str) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        _OPEN.append(self.http)
        self.project = project
        self.base = f"/api/v1/projects/{project}"

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        response = self.http.request(method, self.base + path, json=body)
        assert response.status_code == expect, response.text
        return response.json() if response.content else None

    def plan(self, plan_id: int) -> dict[str, Any]:
        return self.call("GET", f"/rollouts/{plan_id}")

    def config(self) -> dict[str, Any]:
        return self.call("GET", f"/environments/development/flags/{FLAG}")

    def transitions(self, plan_id: int) -> list[str]:
        page = self.call("GET", f"/audit?entity_type=rollout&entity_key={plan_id}&limit=500")
        return [e["action"] for e in reversed(page["items"])]

    def status_is(self, plan_id: int, *statuses: str) -> dict[str, Any] | None:
        plan = self.plan(plan_id)
        return plan if plan["status"] in statuses else None


def setup_project(url: str, token: str) -> tuple[Api, str]:
    """A project with the internal-users segment and a boolean flag that is on and serving
    `off` in development; returns the API and a server SDK key for development."""
    project = unique("ro")
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as admin:
        assert admin.post("/api/v1/projects", json={"key": project, "name": "R"}).status_code == 201
        key = admin.post(
            "/api/v1/tokens",
            json={
                "kind": "server",
                "name": "sdk",
                "project": project,
                "environment": "development",
            },
        ).json()["token"]
    api = Api(url, token, project)
    api.call("POST", "/segments", {"key": "internal", **INTERNAL}, expect=201)
    api.call("POST", "/flags", {"key": FLAG, **BOOLEAN_FLAG}, expect=201)
    base = {"enabled": True, "offVariant": "off", "default": {"variant": "off"}}
    response = api.http.put(
        f"{api.base}/environments/development/flags/{FLAG}", json=base, headers={"If-Match": '"0"'}
    )
    assert response.status_code == 200, response.text
    return api, key


@dataclass
class Traffic:
    """An SDK client evaluating the flag for a stream of users; a user served a variant fails
    with that variant's error rate and reports it with ``track("error", ...)``. The client
    counts both and sends a summary every 0.1 s."""

    url: str
    sdk_key: str
    error_rates: dict[str, float]
    internal_share: float = 0.2
    stop: threading.Event = field(default_factory=threading.Event)
    served: dict[str, int] = field(default_factory=dict)

    def __enter__(self) -> Traffic:
        self.client = FaderClient(
            self.sdk_key, base_url=self.url, event_flush_interval=0.1, init_timeout=10
        )
        assert self.client.is_ready
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        rng = random.Random(7)
        while not self.stop.is_set():
            for _ in range(20):
                user = {
                    "targetingKey": f"user-{rng.randrange(1_000_000)}",
                    "internal": rng.random() < self.internal_share,
                }
                variant = self.client.boolean_details(FLAG, user, False).variant or "?"
                self.served[variant] = self.served.get(variant, 0) + 1
                if rng.random() < self.error_rates.get(variant, 0.0):
                    self.client.track("error", user, 1, flag=FLAG, variant=variant)
            self.stop.wait(0.02)

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.client.close()


class Recorder(BaseHTTPRequestHandler):
    """Records every request; answers with the status the server's `answer` attribute holds."""

    def do_GET(self) -> None:
        self._answer(b"")

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers.get("Content-Length", 0))))

    def _answer(self, body: bytes) -> None:
        server: Any = self.server
        server.received.append((self.path, dict(self.headers), body))
        payload = server.payload().encode()
        self.send_response(server.answer)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def http_server(payload: Callable[[], str] = lambda: "ok") -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.received, server.answer, server.payload = [], 200, payload
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def plan_body(stages: list[dict[str, Any]], gates: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "flag": FLAG,
        "environment": "development",
        "control": "off",
        "treatment": "on",
        "stages": stages,
        "gates": gates,
        "start": True,
    }


ERROR_GATE = {"kind": "error_rate", "event": "error", "min_samples": 50}


# -------------------------------------------------------------------- the tests
BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])


@BACKENDS
def test_healthy_traffic_takes_a_plan_through_every_stage(backend: str, tmp_path: Path) -> None:
    """Stages of a minute: once a stage has begun, the clock moves 61 s on, so the stage may
    end and the summaries that follow count in a whole minute of it; the scheduler advances
    each stage when its gate has seen enough healthy traffic."""
    token = "fdr_admin_" + secrets.token_urlsafe(24)
    with clocked_fader(backend, tmp_path, token) as server:
        api, key = setup_project(server.url, token)
        with Traffic(server.url, key, {"off": 0.01, "on": 0.01}):
            stages = [
                {"name": "internal", "min_duration": 60, "segment": "internal"},
                {"name": "50%", "min_duration": 60, "percent": 50},
                {"name": "100%", "min_duration": 60, "percent": 100},
            ]
            plan = api.call("POST", "/rollouts", plan_body(stages, [ERROR_GATE]), expect=201)
            moved_for = -1
            began = time.monotonic()

            def completed() -> dict[str, Any] | None:
                nonlocal moved_for
                found = api.plan(plan["id"])
                if found["status"] == "completed":
                    return found
                if found["stage"] != moved_for:  # a stage began: let its minute pass
                    moved_for = found["stage"]
                    server.clock.advance(61)
                return None

            done = wait_for("completion", completed, timeout=120)
            took = time.monotonic() - began
        assert api.transitions(plan["id"]) == ["create", "start", "advance", "advance", "complete"]
        assert api.config()["default"] == {"variant": "on"}
        metrics = httpx.get(server.url + "/metrics").text
        assert 'fader_rollout_decisions_total{action="advance"} 2.0' in metrics
        # The gauge is read at each tick: the one after the completion shows no active plan.
        wait_for(
            "no active plan in /metrics",
            lambda: "fader_rollouts_active 0.0" in httpx.get(server.url + "/metrics").text,
        )
        gates = done["last_evaluation"]["gates"]
        assert gates[0]["status"] == "healthy"
        advanced = api.call("GET", f"/audit?entity_type=rollout&entity_key={plan['id']}")
        evidence = [
            d["after"][0]["evidence"]
            for e in advanced["items"]
            if e["action"] == "advance"
            for d in e["diff"]
            if d["path"] == "/evidence"
        ]
        assert all(e["treatment_samples"] >= 50 for e in evidence), evidence
        print(f"healthy plan ({backend}): 3 stages of a minute completed in {took:.1f} s")


@BACKENDS
def test_a_rising_error_rate_rolls_back_with_incident_audit_and_signed_webhook(
    backend: str, tmp_path: Path
) -> None:
    """Real SDK clients serve the treatment to half the users, who fail 40% of the time; the
    summaries they send reach the gate within a tick or two of the next minute, and the plan
    rolls back with its incident, audit entry and signed webhook."""
    token = "fdr_admin_" + secrets.token_urlsafe(24)
    with clocked_fader(backend, tmp_path, token) as server, http_server() as receiver:
        api, key = setup_project(server.url, token)
        base = api.config()
        hook = api.call(
            "POST", "/webhooks", {"url": f"http://127.0.0.1:{receiver.server_port}/hook"}, 201
        )
        assert api.call("GET", "/webhooks")["items"][0].get("secret") is None
        with Traffic(server.url, key, {"off": 0.01, "on": 0.4}) as traffic:
            stages = [
                {"name": "50%", "min_duration": 3600, "percent": 50},
                {"name": "100%", "min_duration": 3600, "percent": 100},
            ]
            plan = api.call("POST", "/rollouts", plan_body(stages, [ERROR_GATE]), expect=201)
            wait_for("the treatment served", lambda: traffic.served.get("on", 0) > 0)
            server.clock.next_minute()  # summaries from now on count in whole minutes
            began = time.monotonic()
            rolled = wait_for("rollback", lambda: api.status_is(plan["id"], "rolled_back"))
            took = time.monotonic() - began

        config = api.config()
        assert {k: config[k] for k in ("enabled", "default", "rules")} == {
            k: base[k] for k in ("enabled", "default", "rules")
        }
        assert config["version"] == base["version"] + 2  # the first stage, then the restore
        incident = api.call("GET", f"/incidents/{rolled['incident']}")
        assert incident["rollout"] == plan["id"]
        assert incident["stage_name"] == "50%"
        assert "error_rate" in incident["metric"]
        evidence = incident["evidence"][0]["evidence"]
        assert evidence["treatment"] > 0.2
        assert evidence["control"] < 0.05
        steps = [(i["entity"], i["action"]) for i in incident["timeline"]]
        assert steps == [
            ("rollout", "create"),
            ("config", "rollout start"),
            ("rollout", "start"),
            ("config", "rollback"),
            ("rollout", "rollback"),
        ]
        audit = api.call("GET", f"/audit?entity_type=rollout&entity_key={plan['id']}")["items"][0]
        assert (audit["action"], audit["actor"]) == ("rollback", f"rollout:{plan['id']}")
        proof = next(d for d in audit["diff"] if d["path"] == "/evidence")["after"]
        assert proof[0]["status"] == "regression"

        def delivered() -> tuple[dict[str, str], bytes] | None:
            for _, headers, body in receiver.received:
                if json.loads(body)["fader"]["rollout"]["status"] == "rolled_back":
                    return headers, body
            return None

        headers, body = wait_for("the webhook", delivered, timeout=10)
        signed = headers["X-Fader-Timestamp"].encode() + b"." + body
        digest = hmac.new(hook["secret"].encode(), signed, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Fader-Signature"], "sha256=" + digest)
        message = json.loads(body)
        assert f"Release plan #{plan['id']}" in message["text"]
        assert message["blocks"][0]["type"] == "section"
        assert message["fader"]["rollout"]["plan"] == plan["id"]
        assert message["fader"]["url"].endswith(f"/projects/{api.project}/rollouts/{plan['id']}")
        shown = CliRunner().invoke(
            cli,
            ["rollouts", "incident", str(incident["id"]), "-p", api.project],
            env={"FADER_URL": server.url, "FADER_TOKEN": token},
        )
        assert shown.exit_code == 0, shown.stderr
        assert "regression: error rate" in shown.stdout
        assert f"rollout:{plan['id']}" in shown.stdout
        log = server.log.text()
        assert hook["secret"] not in log
        assert "webhook_delivered" in log
        print(f"regression ({backend}): rolled back {took:.1f} s after the next minute began")


def test_a_restarted_server_resumes_the_plan_at_the_same_stage(tmp_path: Path) -> None:
    """SIGKILL while the plan waits for approval at its second stage: the restarted server
    shows the same stage with its clock still running, and its scheduler carries the plan on
    once approved."""
    token = "fdr_admin_" + secrets.token_urlsafe(24)
    stages = [
        {"name": "first", "min_duration": 0.5, "percent": 10},
        {"name": "second", "min_duration": 0.5, "percent": 50, "approval": True},
        {"name": "third", "min_duration": 1, "percent": 100},
    ]
    with fader(tmp_path, token) as server:
        api, _ = setup_project(server.url, token)
        plan = api.call("POST", "/rollouts", plan_body(stages, []), expect=201)
        waiting = wait_for("approval", lambda: api.status_is(plan["id"], "awaiting_approval"))
        server.stop(signal.SIGKILL)
    killed = time.monotonic()
    with fader(tmp_path, token) as server:
        api = Api(server.url, token, api.project)
        after = api.plan(plan["id"])
        assert (after["status"], after["stage_name"]) == ("awaiting_approval", "second")
        assert after["time_in_stage"] > waiting["time_in_stage"]  # the stage clock went on
        api.call("POST", f"/rollouts/{plan['id']}/advance", {"comment": "approved"})
        done = wait_for("completion", lambda: api.status_is(plan["id"], "completed"))
        resumed_for = time.monotonic() - killed
        assert api.transitions(plan["id"]) == [
            "create", "start", "advance", "await_approval", "advance", "complete",
        ]  # fmt: skip
    assert done["stage_name"] == "third"
    print(f"restart: plan completed {resumed_for:.1f} s after the kill")


@pytest.fixture
def shared_postgres() -> Iterator[str]:
    with dedicated_postgres_database() as url:
        yield url.replace("postgresql+psycopg://", "postgresql://")


def test_two_replicas_advance_each_stage_exactly_once(tmp_path: Path, shared_postgres: str) -> None:
    token = "fdr_admin_" + secrets.token_urlsafe(24)
    stages = [{"name": f"{p}%", "min_duration": 0.4, "percent": p} for p in (1, 5, 25, 50, 100)]
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        d.mkdir()
    with fader(dirs[0], token, shared_postgres) as one, fader(dirs[1], token, shared_postgres):
        api, _ = setup_project(one.url, token)
        plans = [api.call("POST", "/rollouts", plan_body(stages, []), expect=201)]
        api.call("POST", "/flags", {"key": "second-flag", **BOOLEAN_FLAG}, expect=201)
        plans.append(
            # never configured, so off: the plan may turn it on
            api.call(
                "POST",
                "/rollouts",
                {**plan_body(stages, []), "flag": "second-flag", "enable": True},
                201,
            )
        )
        for plan in plans:
            wait_for("completion", lambda plan=plan: api.status_is(plan["id"], "completed"))
        for plan in plans:
            expected = ["create", "start"] + ["advance"] * 4 + ["complete"]
            assert api.transitions(plan["id"]) == expected
        versions = api.call("GET", f"/environments/development/flags/{FLAG}/versions?limit=100")
        by_rollout = [v for v in versions if v["actor"] == f"rollout:{plans[0]['id']}"]
        assert len(by_rollout) == 4  # one configuration write per advance, never two


def test_a_bad_prometheus_reading_rolls_back(tmp_path: Path) -> None:
    if not PROMETHEUS.exists():
        pytest.fail("Prometheus is missing: `make system-packages` installs Debian's package")
    ratio = {"value": 0.01}
    with http_server(lambda: f"checkout_error_ratio {ratio['value']}\n") as exporter:
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: app\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{exporter.server_port}']\n"
        )
        port = free_port()
        with (tmp_path / "prometheus.log").open("wb") as out:
            prometheus = subprocess.Popen(
                [
                    str(PROMETHEUS),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        prom = f"http://127.0.0.1:{port}"
        try:

            def scraped() -> bool:
                try:
                    result = httpx.get(
                        prom + "/api/v1/query", params={"query": "checkout_error_ratio"}, timeout=1
                    ).json()["data"]["result"]
                except (httpx.TransportError, ValueError, KeyError):
                    return False
                return bool(result) and float(result[0]["value"][1]) == 0.01

            wait_for("Prometheus to scrape the exporter", scraped)
            token = "fdr_admin_" + secrets.token_urlsafe(24)
            with fader(tmp_path, token) as server:
                api, _ = setup_project(server.url, token)
                gate = {
                    "kind": "prometheus",
                    "url": prom,
                    "query": "checkout_error_ratio",
                    "max_value": 0.05,
                    "trip_after": 2,
                }
                stages = [{"name": "10%", "min_duration": 60, "percent": 10}]
                plan = api.call("POST", "/rollouts", plan_body(stages, [gate]), expect=201)

                def read_healthy() -> bool:
                    evaluation = api.plan(plan["id"])["last_evaluation"]
                    gates = (evaluation or {}).get("gates") or [{}]
                    return gates[0].get("evidence", {}).get("value") == 0.01

                wait_for("a healthy Prometheus reading", read_healthy)
                ratio["value"] = 0.5
                flipped = time.monotonic()
                rolled = wait_for("rollback", lambda: api.status_is(plan["id"], "rolled_back"))
                took = time.monotonic() - flipped
                incident = api.call("GET", f"/incidents/{rolled['incident']}")
        finally:
            prometheus.terminate()
            prometheus.wait(timeout=15)
    reading = incident["evidence"][0]["evidence"]
    assert (reading["value"], reading["strikes"]) == (0.5, 2)
    print(f"prometheus: rolled back {took:.1f} s after the metric went bad (scrape 1 s)")


def test_a_failing_synthetic_check_rolls_back(tmp_path: Path) -> None:
    token = "fdr_admin_" + secrets.token_urlsafe(24)
    with fader(tmp_path, token) as server, http_server() as target:
        api, _ = setup_project(server.url, token)
        gate = {
            "kind": "http_check",
            "url": f"http://127.0.0.1:{target.server_port}/health",
            "interval": 0.3,
            "max_latency_ms": 500,
            "trip_after": 2,
        }
        stages = [{"name": "10%", "min_duration": 60, "percent": 10}]
        plan = api.call("POST", "/rollouts", plan_body(stages, [gate]), expect=201)
        wait_for("two healthy checks", lambda: len(target.received) >= 2)
        assert api.plan(plan["id"])["status"] == "running"
        target.answer = 503
        flipped = time.monotonic()
        rolled = wait_for("rollback", lambda: api.status_is(plan["id"], "rolled_back"))
        took = time.monotonic() - flipped
        checks = len(target.received)
        incident = api.call("GET", f"/incidents/{rolled['incident']}")
    reading = incident["evidence"][0]["evidence"]
    assert (reading["status"], reading["strikes"]) == (503, 2)
    started = time.monotonic() - flipped
    assert checks <= started / 0.3 + 8  # at most one check per interval (plus the healthy ones)
    print(f"http check: rolled back {took:.1f} s after the target failed (interval 0.3 s)")
