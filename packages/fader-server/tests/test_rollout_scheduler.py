"""The rollout scheduler and the plan use cases in simulated time, on SQLite and PostgreSQL.

Nothing here waits for the wall clock: the services and the scheduler share a simulated clock,
SDK summaries are added to the rollups at simulated receive times, and Prometheus, HTTP checks
and webhook receivers are ``httpx.MockTransport`` handlers (the one seam the readers and the
notifier have). Gates count whole minutes of a stage (docs/events.md, section 4); the traffic
helpers report in the minute the clock is in, which the stages here always contain.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import dedicated_postgres_database
from server_api import BOOLEAN_FLAG, unique

from fader_engine.sketches import DistinctSketch
from fader_server.errors import AlreadyExistsError, InvalidInputError, InvalidStateError
from fader_server.rollout_logic.decide import Action
from fader_server.rollout_logic.notifications import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from fader_server.runtime.gate_reader import GateReader
from fader_server.runtime.scheduler import Scheduler
from fader_server.runtime.webhook_delivery import DeliveryWorker
from fader_server.services import Services
from fader_server.services.access import Principal
from fader_server.services.outbound_policy import OutboundPolicy
from fader_server.storage.ports.usage import EVALUATIONS, UsageCount
from fader_server.storage.sql.store import SqlStore

ADMIN = Principal("user:owner", instance_admin=True)
START = 1_900_000_000.0
# The mock endpoints' names: creating a gate or a webhook checks where its URL leads.
OUTBOUND = OutboundPolicy.parse(["prom.test", "app.test", "hooks.example"])
INTERNAL = {
    "name": "Internal",
    "rules": [{"clauses": [{"attribute": "internal", "op": "in", "values": [True]}]}],
}


class SimClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Received:
    """What a mock endpoint was sent, and what it answers."""

    requests: list[httpx.Request] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            status = self.answers.pop(0) if self.answers else 200
        return httpx.Response(status, json={})


@dataclass
class World:
    store: SqlStore
    services: Services
    clock: SimClock
    project: str
    project_id: int
    hooks: Received
    probes: dict[str, Callable[[httpx.Request], httpx.Response]]
    schedulers: list[Scheduler] = field(default_factory=list)

    def scheduler(self, store: SqlStore | None = None) -> Scheduler:
        def route(request: httpx.Request) -> httpx.Response:
            return self.probes[request.url.host](request)

        store = store or self.store
        services = (
            self.services
            if store is self.store
            else Services.over(store, self.clock.datetime, OUTBOUND)
        )
        scheduler = Scheduler(
            store,
            services.rollouts,
            clock=self.clock,
            reader=GateReader(httpx.Client(transport=httpx.MockTransport(route))),
        )
        self.schedulers.append(scheduler)
        return scheduler

    def deliver(self) -> int:
        """Post the webhook deliveries the outbox holds now (what the delivery worker of
        `fader serve` does by itself)."""
        worker = DeliveryWorker(
            self.services.deliveries,
            public_url="https://fader.example",
            clock=self.clock.datetime,
            http=httpx.Client(transport=httpx.MockTransport(self.hooks.handler)),
        )
        try:
            return worker.run_once()
        finally:
            worker.close()

    def traffic(
        self,
        variant: str,
        exposures: int,
        errors: int = 0,
        latency: float | None = None,
        key_kind: str = "server",
    ) -> None:
        """A summary received at the current simulated time: `exposures` evaluations of
        `variant` (by as many users), `errors` error measurements, and a latency of `latency`
        for every evaluation."""
        counts = [
            UsageCount(
                "new-checkout",
                EVALUATIONS,
                variant,
                exposures,
                contexts=DistinctSketch().update(f"u{i}" for i in range(exposures)).to_bytes(),
            )
        ] if exposures else []  # fmt: skip
        if errors:
            counts.append(UsageCount("new-checkout", "error", variant, errors, errors, errors))
        if latency is not None and exposures:
            counts.append(
                UsageCount(
                    "new-checkout", "latency", variant, exposures, latency * exposures,
                    latency * latency * exposures,
                )
            )  # fmt: skip
        with self.store.transaction() as tx:
            tx.add_usage(self.project_id, "development", key_kind, counts, self.clock.datetime())

    def status(self, plan_id: int) -> Any:
        return self.services.rollouts.get(ADMIN, self.project, plan_id)

    def config(self) -> dict[str, Any]:
        return self.services.flags.get_config(
            ADMIN, self.project, "development", "new-checkout"
        ).data

    def audit(self, entity_type: str, key: str) -> list[Any]:
        entries = self.services.projects.audit(
            ADMIN, self.project, limit=500, before_id=None, entity_types=(entity_type,),
            entity_key=key,
        )  # fmt: skip
        return list(reversed(entries))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of the test's own: the scheduler looks at every plan in it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rollouts.db'}"
        return
    with dedicated_postgres_database() as url:
        yield url


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    store = SqlStore.open(database_url)
    clock = SimClock()
    services = Services.over(store, clock.datetime, OUTBOUND)
    key = unique("r")
    project = services.projects.create(ADMIN, key, "Rollouts")
    services.segments.create(ADMIN, key, "internal", INTERNAL, None)
    services.flags.create(ADMIN, key, "new-checkout", dict(BOOLEAN_FLAG), None)
    base = {"enabled": True, "offVariant": "off", "default": {"variant": "off"}}
    services.flags.put_config(ADMIN, key, "development", "new-checkout", base, 0, None)
    clock.advance(1)
    world = World(store, services, clock, key, project.id, Received(), {})
    yield world
    for scheduler in world.schedulers:
        scheduler.close()
    store.close()


def plan_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "flag": "new-checkout",
        "environment": "development",
        "control": "off",
        "treatment": "on",
        "stages": [
            {"name": "internal", "min_duration": 60, "segment": "internal"},
            {"name": "10%", "min_duration": 60, "percent": 10},
            {"name": "100%", "min_duration": 60, "percent": 100},
        ],
        "gates": [{"kind": "error_rate", "event": "error", "min_samples": 100}],
    }
    body.update(overrides)
    return body


def started(world: World, **overrides: Any) -> int:
    view = world.services.rollouts.create(ADMIN, world.project, plan_body(**overrides, start=True))
    return view.stored.id


def run_minutes(
    world: World, scheduler: Scheduler, minutes: int, treatment_errors: int = 1
) -> list[Action]:
    """Each simulated minute: 200 exposures per arm (2 errors for control), then a tick."""
    actions = []
    for _ in range(minutes):
        world.clock.advance(60)
        world.traffic("off", 200, errors=2)
        world.traffic("on", 200, errors=treatment_errors)
        actions += [s.action for s in scheduler.tick()]
    return actions


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# ------------------------------------------------------------------ aggregation
def test_event_totals_are_aggregated_per_variant_by_the_database(world: World) -> None:
    world.traffic("off", 5, errors=2, latency=10.0)
    world.clock.advance(60)
    since = world.clock.datetime().replace(second=0)
    world.traffic("off", 3, errors=1, latency=20.0)
    world.traffic("on", 4, latency=30.0)
    with world.store.read() as tx:
        totals = tx.event_totals(world.project_id, "development", "new-checkout", since)
        other = tx.event_totals(world.project_id, "production", "new-checkout", since)
    assert other == {}
    assert totals["off"].exposures == 3
    assert totals["off"].events["error"].count == 1
    assert totals["off"].events["latency"].count == 3
    assert totals["off"].events["latency"].total == pytest.approx(60.0)
    assert totals["off"].events["latency"].total_squares == pytest.approx(1200.0)
    assert totals["on"].exposures == 4
    assert "error" not in totals["on"].events


# ------------------------------------------------------------------- advancing
def test_a_healthy_plan_advances_stage_by_stage_and_completes(world: World) -> None:
    plan_id = started(world)
    scheduler = world.scheduler()
    config = world.config()
    assert config["rules"][0]["clauses"] == [{"op": "in_segment", "values": ["internal"]}]
    assert config["default"] == {"variant": "off"}

    actions = run_minutes(world, scheduler, 1)
    assert world.status(plan_id).state.stage == 1
    assert world.config()["default"]["split"]["weights"][0] == {"variant": "on", "weight": 10}
    actions += run_minutes(world, scheduler, 2)

    assert [a for a in actions if a is not Action.WAIT] == [
        Action.ADVANCE,
        Action.ADVANCE,
        Action.COMPLETE,
    ]
    view = world.status(plan_id)
    assert view.state.status.value == "completed"
    # the segment rule is subsumed by the treatment default: completion removes it
    assert world.config() == {
        "enabled": True, "offVariant": "off", "default": {"variant": "on"}, "rules": []
    }  # fmt: skip
    writes = [e for e in world.audit("config", "new-checkout") if e.actor == f"rollout:{plan_id}"]
    assert [e.action for e in writes] == ["rollout advance", "rollout advance", "rollout complete"]
    transitions = [e.action for e in world.audit("rollout", str(plan_id))]
    assert transitions == ["create", "start", "advance", "advance", "complete"]
    evidence = next(
        d for d in world.audit("rollout", str(plan_id))[2].diff if d["path"] == "/evidence"
    )
    assert evidence["after"][0]["status"] == "healthy"


def test_too_little_traffic_holds_the_stage(world: World) -> None:
    plan_id = started(world)
    scheduler = world.scheduler()
    world.clock.advance(600)
    world.traffic("off", 500)
    world.traffic("on", 20)
    assert [s.action for s in scheduler.tick()] == [Action.WAIT]
    view = world.status(plan_id)
    assert view.state.stage == 0
    assert "80 more treatment samples needed" in view.stored.last_evaluation["reason"]
    assert view.time_in_stage == pytest.approx(600)


def test_a_stage_waiting_for_approval_moves_only_when_a_person_advances_it(world: World) -> None:
    stages = [
        {"name": "10%", "min_duration": 60, "percent": 10, "approval": True},
        {"name": "50%", "min_duration": 60, "percent": 50},
    ]
    plan_id = started(world, stages=stages)
    scheduler = world.scheduler()
    assert Action.AWAIT_APPROVAL in run_minutes(world, scheduler, 2)
    run_minutes(world, scheduler, 2)
    assert world.status(plan_id).state.status.value == "awaiting_approval"
    approver = Principal("user:approver", instance_admin=True)
    view = world.services.rollouts.advance(approver, world.project, plan_id, "looks good")
    assert (view.state.stage, view.state.status.value) == (1, "running")
    assert world.audit("rollout", str(plan_id))[-1].actor == "user:approver"


def test_paused_time_does_not_count_but_a_paused_plan_still_rolls_back(world: World) -> None:
    plan_id = started(world)
    scheduler = world.scheduler()
    world.clock.advance(30)
    world.services.rollouts.pause(ADMIN, world.project, plan_id)
    run_minutes(world, scheduler, 3)
    assert world.status(plan_id).state.stage == 0
    world.services.rollouts.resume(ADMIN, world.project, plan_id)
    world.clock.advance(20)
    assert [s.action for s in scheduler.tick()] == [Action.WAIT]  # 50 s of 60 run so far
    world.services.rollouts.pause(ADMIN, world.project, plan_id)
    actions = run_minutes(world, scheduler, 3, treatment_errors=40)
    assert actions[-1] is Action.ROLLBACK
    assert world.status(plan_id).state.status.value == "rolled_back"


# -------------------------------------------------------------------- rollback
def test_a_regression_rolls_back_with_an_incident_an_audit_entry_and_a_signed_webhook(
    world: World,
) -> None:
    secret = "s3cret-for-signing-0123456789"
    world.services.webhooks.create(ADMIN, world.project, "https://hooks.example/x", "", secret)
    base = world.config()
    plan_id = started(world)
    scheduler = world.scheduler()
    run_minutes(world, scheduler, 1)  # healthy: moves to 10%
    editor = Principal("user:meddler", instance_admin=True)
    current = world.services.flags.get_config(ADMIN, world.project, "development", "new-checkout")
    world.services.flags.put_config(
        editor, world.project, "development", "new-checkout",
        {**current.data, "offVariant": "off"}, current.version, "tweak",
    )  # fmt: skip
    # the stage's one whole minute before its minimum duration is up: 60% errors against 1%
    actions = run_minutes(world, scheduler, 1, treatment_errors=120)
    assert actions[-1] is Action.ROLLBACK

    assert world.config() == base
    view = world.status(plan_id)
    assert view.state.status.value == "rolled_back"
    incident = world.services.rollouts.incident(ADMIN, world.project, view.stored.incident_id)
    assert (incident.stage, incident.stage_name) == (1, "10%")
    assert incident.metric.startswith("error_rate (gate 0): regression: error rate")
    assert incident.evidence[0]["evidence"]["treatment_samples"] >= 100
    steps = [(i["entity"], i["actor"], i["action"]) for i in incident.timeline]
    assert steps[0] == ("rollout", "user:owner", "create")
    assert ("config", "user:meddler", "update") in steps
    assert steps[-2:] == [
        ("config", f"rollout:{plan_id}", "rollback"),
        ("rollout", f"rollout:{plan_id}", "rollback"),
    ]
    rollback = world.audit("rollout", str(plan_id))[-1]
    evidence = next(d for d in rollback.diff if d["path"] == "/evidence")["after"]
    assert evidence[0]["status"] == "regression"
    assert evidence[0]["evidence"]["treatment"] > evidence[0]["evidence"]["control"]

    world.deliver()
    sent = next(r for r in world.hooks.requests if b"rolled_back" in r.content)
    assert verify(
        secret, sent.headers[TIMESTAMP_HEADER], sent.content, sent.headers[SIGNATURE_HEADER]
    )
    stamp, signature = sent.headers[TIMESTAMP_HEADER], sent.headers[SIGNATURE_HEADER]
    assert not verify("wrong-secret-0123456789", stamp, sent.content, signature)
    assert not verify(secret, str(int(stamp) + 1), sent.content, signature)
    body = json.loads(sent.content)
    assert f"Release plan #{plan_id} in development: rollback" in body["blocks"][0]["text"]["text"]
    assert body["fader"]["rollout"]["status"] == "rolled_back"
    assert body["fader"]["rollout"]["gates"][0]["status"] == "regression"
    assert (
        body["fader"]["url"] == f"https://fader.example/projects/{world.project}/rollouts/{plan_id}"
    )
    assert f"<{body['fader']['url']}|Open in Fader>" in body["text"]


def test_a_latency_regression_rolls_back(world: World) -> None:
    gates = [{"kind": "latency", "event": "latency", "min_samples": 50}]
    plan_id = started(
        world, gates=gates, stages=[{"name": "50%", "min_duration": 600, "percent": 50}]
    )
    scheduler = world.scheduler()
    for minute in range(5):
        world.clock.advance(60)
        world.traffic("off", 100, latency=100.0 + minute)
        world.traffic("off", 100, latency=110.0)
        world.traffic("on", 100, latency=300.0)
        world.traffic("on", 100, latency=320.0)
        scheduler.tick()
    assert world.status(plan_id).state.status.value == "rolled_back"


# ------------------------------------------------------------- threshold gates
def prometheus_answers(values: list[float | None]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query"
        value = values.pop(0) if len(values) > 1 else values[0]
        if value is None:
            return httpx.Response(503, json={"status": "error", "error": "overloaded"})
        result = [{"metric": {}, "value": [START, str(value)]}]
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "vector", "result": result}}
        )

    return answer


def test_a_prometheus_gate_rolls_back_after_consecutive_bad_readings_only(world: World) -> None:
    world.probes["prom.test"] = prometheus_answers([0.01, 0.5, 0.01, None, 0.5, 0.01])
    gates = [{"kind": "prometheus", "url": "http://prom.test", "query": "err", "max_value": 0.1}]
    plan_id = started(
        world, gates=gates, stages=[{"name": "5%", "min_duration": 3600, "percent": 5}]
    )
    scheduler = world.scheduler()
    seen = []
    for _ in range(6):
        world.clock.advance(5)
        seen += [s.action for s in scheduler.tick()]
    assert seen == [Action.WAIT] * 4 + [Action.ROLLBACK]
    status = world.status(plan_id)
    assert status.state.status.value == "rolled_back"
    incident = world.services.rollouts.incident(ADMIN, world.project, status.stored.incident_id)
    assert incident.evidence[0]["evidence"]["value"] == 0.5
    assert incident.evidence[0]["evidence"]["strikes"] == 2


def test_an_http_check_runs_no_more_often_than_its_interval(world: World) -> None:
    checks = Received()
    world.probes["app.test"] = checks.handler
    gates = [
        {"kind": "http_check", "url": "http://app.test/health", "interval": 10, "trip_after": 2}
    ]
    plan_id = started(
        world, gates=gates, stages=[{"name": "5%", "min_duration": 3600, "percent": 5}]
    )
    scheduler = world.scheduler()
    for _ in range(30):
        world.clock.advance(1)
        scheduler.tick()
    assert len(checks.requests) == 3
    checks.answers = [500, 500]
    for _ in range(25):
        world.clock.advance(1)
        scheduler.tick()
    assert len(checks.requests) == 5
    assert world.status(plan_id).state.status.value == "rolled_back"


# ------------------------------------------------------------ human commands
def test_commands_that_do_not_apply_are_refused_with_the_status(world: World) -> None:
    plan_id = world.services.rollouts.create(ADMIN, world.project, plan_body()).stored.id
    for command in (world.services.rollouts.pause, world.services.rollouts.resume):
        with pytest.raises(InvalidStateError, match="pending"):
            command(ADMIN, world.project, plan_id)
    world.services.rollouts.start(ADMIN, world.project, plan_id)
    with pytest.raises(InvalidStateError, match="running; only a pending plan starts"):
        world.services.rollouts.start(ADMIN, world.project, plan_id)
    with pytest.raises(AlreadyExistsError, match="unfinished release plan"):
        world.services.rollouts.create(ADMIN, world.project, plan_body())


def test_abort_restores_the_base_configuration(world: World) -> None:
    base = world.config()
    plan_id = started(world)
    assert world.config() != base
    world.services.rollouts.abort(ADMIN, world.project, plan_id, "not today")
    assert world.config() == base
    assert world.status(plan_id).state.status.value == "aborted"
    # a finished plan frees the flag for the next one
    world.services.rollouts.create(ADMIN, world.project, plan_body())


def test_a_flag_a_plan_is_moving_is_deleted_only_after_the_plan_is_aborted(world: World) -> None:
    """docs/adr/0005-project-write-lock.md: deleting the flag under a running plan would leave
    a plan that can neither advance nor restore anything."""
    plan_id = started(world, gates=[])
    flag = world.services.flags.get(ADMIN, world.project, "new-checkout")
    with pytest.raises(InvalidStateError, match=f"abort release plan {plan_id} first"):
        world.services.flags.delete(ADMIN, world.project, "new-checkout", flag.version, "gone")
    aborted = world.services.rollouts.abort(ADMIN, world.project, plan_id)
    assert aborted.state.status.value == "aborted"
    flag = world.services.flags.get(ADMIN, world.project, "new-checkout")
    world.services.flags.delete(ADMIN, world.project, "new-checkout", flag.version, "gone")


def test_bad_plans_name_the_field(world: World) -> None:
    body = plan_body(
        treatment="maybe",
        stages=[
            {"name": "a", "min_duration": 1, "segment": "nobody"},
            {"name": "b", "min_duration": 1, "percent": 50},
            {"name": "c", "min_duration": 1, "percent": 20},
            {"name": "d", "min_duration": 1},
        ],
    )
    with pytest.raises(InvalidInputError) as raised:
        world.services.rollouts.create(ADMIN, world.project, body)
    paths = {p.path for p in raised.value.problems}
    assert paths == {
        "/body/treatment",
        "/body/stages/0/segment",
        "/body/stages/2/percent",
        "/body/stages/3",
    }


# ------------------------------------------------------------------- replicas
def test_two_schedulers_apply_each_decision_once(world: World, tmp_path: Path) -> None:
    """Two replicas (each its own engine and pool) tick the same plan at the same instants."""
    plan_id = started(world, gates=[])
    other = SqlStore.open(world.store.engine.url.render_as_string(hide_password=False))
    schedulers = [world.scheduler(), world.scheduler(other)]
    try:
        for _ in range(4):
            world.clock.advance(61)
            barrier = threading.Barrier(2)

            def tick(scheduler: Scheduler, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                scheduler.tick()

            threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        schedulers[1].close()
        other.close()
    transitions = [e.action for e in world.audit("rollout", str(plan_id))]
    assert transitions == ["create", "start", "advance", "advance", "complete"]
    writes = [e for e in world.audit("config", "new-checkout") if e.actor == f"rollout:{plan_id}"]
    assert [e.action for e in writes] == ["rollout advance", "rollout advance", "rollout complete"]


def test_a_step_for_a_plan_that_moved_since_it_was_read_is_skipped(world: World) -> None:
    plan_id = started(world, gates=[])
    with world.store.read() as tx:
        (seen,) = tx.active_plans()
    world.services.rollouts.pause(ADMIN, world.project, plan_id, "hold on")
    world.clock.advance(120)
    assert world.services.rollouts.step(seen, {}, world.clock()) is None
    assert world.status(plan_id).state.status.value == "paused"


def test_a_reopened_store_resumes_the_plan_where_it_was(world: World) -> None:
    plan_id = started(world, gates=[])
    world.clock.advance(61)
    world.scheduler().tick()
    url = world.store.engine.url.render_as_string(hide_password=False)
    reopened = SqlStore.open(url)
    try:
        services = Services.over(reopened, world.clock.datetime, OUTBOUND)
        assert services.rollouts.get(ADMIN, world.project, plan_id).state.stage == 1
        scheduler = world.scheduler(reopened)
        world.clock.advance(30)
        assert [s.action for s in scheduler.tick()] == [Action.WAIT]
        world.clock.advance(31)
        assert [s.action for s in scheduler.tick()] == [Action.ADVANCE]
    finally:
        world.schedulers.remove(scheduler)
        scheduler.close()
        reopened.close()
