"""Metric gates count per stage window, in whole minutes of the server's receive time, from
trusted keys only; and when a stage waits for data, it says how much, as a real estimate.

The pure tests run the gate's statistics directly. The database tests use the simulated world
of ``test_rollout_scheduler`` (SQLite and PostgreSQL): summaries are added at chosen receive
times and key kinds, and the scheduler decides. A minute counts in a window when the window
started at or before it and the next one starts at or after its end (docs/events.md, section
4); the SQL store's query must agree with :func:`minute_window` everywhere.
"""

from __future__ import annotations

import random
import re
from datetime import timedelta
from typing import Any

import pytest
import test_rollout_scheduler as simulated
from test_rollout_scheduler import ADMIN, World, started

from fader_server.rollout_logic import decide
from fader_server.rollout_logic.decide import Action, GateStatus
from fader_server.rollout_logic.gates import gate_result, metric_results, stage_alphas
from fader_server.rollout_logic.minute_windows import MINUTE, floor_minute, minute_window
from fader_server.rollout_logic.plan import MetricGate, Plan
from fader_server.rollout_logic.stage_tests import rate_windows
from fader_server.rollout_logic.stats import RateCounts, samples_to_detect
from fader_server.services import demo
from fader_server.storage.ports import EventTotals, VariantTotals
from fader_server.storage.ports.usage import EVALUATIONS, UsageCount

# the simulated world's fixtures (a database per test, SQLite and PostgreSQL)
database_url = simulated.database_url
world = simulated.world

DEMO_ERROR_GATE = MetricGate(**demo._STAGED_RELEASE["gates"][0])
STAGED = Plan.from_dict(
    {
        "flag": "new-checkout",
        "environment": "production",
        "control": "off",
        "treatment": "on",
        **demo._STAGED_RELEASE,
    }
)


def needs(summary: str) -> tuple[int, int]:
    """(treatment, control) samples a summary says are still needed."""
    found = {"treatment": 0, "control": 0}
    for number, arm in re.findall(r"([\d,]+) more (treatment|control)", summary):
        found[arm] = int(number.replace(",", ""))
    return found["treatment"], found["control"]


# ------------------------------------------------------------- the estimate
def test_a_waiting_stage_gives_a_real_estimate_never_the_search_cap() -> None:
    """The demo's error gate (detect +2 points) on 300 exposures and 3 errors per arm: the
    old search kept the control at its current 300 samples, could never reach the power and
    printed its cap, "10000000 more samples needed". Both arms grow in the estimate, and
    growing them to it does give the verdict."""
    windows = [(RateCounts(300, 3), RateCounts(300, 3))]
    plan_alpha, stage_alpha = stage_alphas(STAGED, DEMO_ERROR_GATE)
    result = decide.metric_result(
        0, DEMO_ERROR_GATE, windows, plan_alpha=plan_alpha, stage_alpha=stage_alpha
    )
    assert result.status is GateStatus.INSUFFICIENT
    assert "10000000" not in result.summary
    assert "10,000,000" not in result.summary
    more_treatment, more_control = needs(result.summary)
    assert 100 < more_treatment < 100_000
    assert more_control == more_treatment  # one to one so far, so one to one in the estimate

    def verdict(treatment: int, control: int) -> GateStatus:
        grown = [(RateCounts(control, control // 100), RateCounts(treatment, treatment // 100))]
        return decide.metric_result(
            0, DEMO_ERROR_GATE, grown, plan_alpha=plan_alpha, stage_alpha=stage_alpha
        ).status

    assert verdict(300 + more_treatment, 300 + more_control) is GateStatus.HEALTHY
    assert verdict(300 + more_treatment * 8 // 10, 300 + more_control * 8 // 10) is (
        GateStatus.INSUFFICIENT
    )


def test_the_estimate_follows_the_traffic_split() -> None:
    """At a 5% stage the control grows 19 times faster than the treatment: the estimate asks
    for the treatment samples that, with the control grown in proportion, give the power."""
    windows = [(RateCounts(19_000, 190), RateCounts(1000, 10))]
    result = decide.metric_result(0, DEMO_ERROR_GATE, windows, plan_alpha=0.005, stage_alpha=0.001)
    more_treatment, more_control = needs(result.summary)
    assert more_control == pytest.approx(19 * more_treatment, rel=0.01)


def test_a_need_beyond_the_search_range_is_said_to_be_beyond_it() -> None:
    need = samples_to_detect(0.01, 1000, 0.01, 1e-6, alpha=0.01, tau=1e-6, limit=10_000)
    assert need.beyond_limit
    assert need.treatment == 10_000
    comparison_text = decide.missing_samples(
        rate_windows(
            [(RateCounts(1000, 10), RateCounts(1000, 10))],
            plan_alpha=0.005, stage_alpha=0.005, min_samples=10, detect=1e-9,
        )
    )  # fmt: skip
    assert comparison_text.startswith("more than")


# ------------------------------------------------------------- the windows
def windows_of(*pairs: tuple[tuple[int, int], tuple[int, int]]) -> list[Any]:
    return [(RateCounts(*c), RateCounts(*t)) for c, t in pairs]


def test_a_shift_in_traffic_between_stages_is_not_a_regression() -> None:
    """Both arms fail 1% at the 1% stage and 5% at the 50% stage (evening traffic): pooled,
    the treatment (mostly late) looks five times worse than the control (mostly early);
    compared within each stage, they are the same."""
    early = ((99_000, 990), (1000, 10))
    late = ((10_000, 500), (10_000, 500))
    pooled = decide.metric_result(
        0, DEMO_ERROR_GATE, windows_of(((109_000, 1490), (11_000, 510))),
        plan_alpha=0.01, stage_alpha=0.01,
    )  # fmt: skip
    assert pooled.status is GateStatus.REGRESSION  # what comparing since the start did
    staged = gate_result(STAGED, 4, 0, DEMO_ERROR_GATE, windows_of(early, late))
    assert staged.status is not GateStatus.REGRESSION
    assert staged.evidence["plan_difference"] == pytest.approx(0.0, abs=1e-9)


def test_a_regression_that_only_shows_at_a_late_stage_is_measured_undiluted() -> None:
    quiet = [((50_000, 500), (2000, 20))] * 3  # three calm stages
    loaded = ((7_500, 75), (2_500, 125))  # 5% errors from the 25% stage on
    result = gate_result(STAGED, 3, 0, DEMO_ERROR_GATE, windows_of(*quiet, loaded))
    assert result.status is GateStatus.REGRESSION
    assert result.evidence["treatment"] == pytest.approx(0.05)  # this stage's own figure
    assert "this stage's own test" in result.summary


def test_the_gate_alpha_is_shared_between_the_tests_of_a_plan() -> None:
    # staged-release compares at 5 stages (not at 100%): half the alpha for the plan-wide
    # test, the other half split between the 5 stages' own tests
    assert stage_alphas(STAGED, DEMO_ERROR_GATE) == (0.005, 0.001)


def test_a_stage_that_serves_everyone_has_no_control_to_compare_with() -> None:
    windows = windows_of(*[((1000, 10), (1000, 10))] * 5, ((0, 0), (5000, 4000)))
    result = gate_result(STAGED, 5, 0, DEMO_ERROR_GATE, windows)
    assert result.status is GateStatus.HEALTHY
    assert result.evidence["verdict"] == "not_compared"
    assert "no control arm" in result.summary


def test_gates_read_the_windows_of_the_key_kinds_they_trust() -> None:
    server = [{"off": VariantTotals(1000, {}), "on": VariantTotals(1000, {})}]
    client = [
        {
            "off": VariantTotals(1000, {}),
            "on": VariantTotals(1000, {"error": EventTotals(900, 900.0, 900.0)}),
        }
    ]
    trusting = MetricGate("error_rate", "error", min_samples=100, trust=("client", "server"))
    plan = Plan(
        "f", "e", "off", "on", STAGED.stages, (MetricGate("error_rate", "error", 0.01, 100),
        trusting),
    )  # fmt: skip
    results = metric_results(
        plan, lambda gate: client if "client" in gate.trust else server, stage=1
    )
    assert [r.status for r in results] == [GateStatus.HEALTHY, GateStatus.REGRESSION]


# --------------------------------------------------- the database and the scheduler
def insert(
    world: World,
    variant: str,
    count: int,
    *,
    name: str | None = None,
    received: float = 0.0,
    key_kind: str = "server",
) -> None:
    """A summary item of `count` evaluations (or `name` measurements of 1.0) received
    `received` seconds from the world's clock."""
    if name is None:
        item = UsageCount("new-checkout", EVALUATIONS, variant, count)
    else:
        item = UsageCount("new-checkout", name, variant, count, float(count), float(count))
    at = world.clock.datetime() + timedelta(seconds=received)
    with world.store.transaction() as tx:
        tx.add_usage(world.project_id, "development", key_kind, [item], at)


def test_event_windows_count_whole_minutes_by_receive_time_and_key_kind(world: World) -> None:
    start = world.clock.datetime()  # 41 s into a minute
    assert start.second == 41
    later = start + timedelta(seconds=100)  # 21 s into the minute after next
    insert(world, "on", 5, received=-10)  # the minute the first window began in: no window's
    insert(world, "on", 3, received=+25)  # the next minute, whole in the first window
    insert(world, "on", 2, received=+90)  # the minute the second window began in: nowhere
    insert(world, "on", 4, received=+150)  # whole in the second window
    insert(world, "on", 6, received=+20, key_kind="client")
    with world.store.read() as tx:
        server = tx.event_windows(world.project_id, "development", "new-checkout", [start, later])
        both = tx.event_windows(
            world.project_id, "development", "new-checkout", [start, later], ("client", "server")
        )
        since = tx.event_totals(world.project_id, "development", "new-checkout", start)
    assert [w["on"].exposures for w in server] == [3, 4]
    assert [w["on"].exposures for w in both] == [9, 4]
    assert since["on"].exposures == 9  # one window, open-ended: every minute from its start


def test_the_database_places_minutes_in_windows_as_the_pure_rule_does(world: World) -> None:
    """Random window starts (on and off minute boundaries, two in one minute) over 40 minutes
    of traffic, one row per minute with a count of its own: every window's total from the
    database equals the sum of the minutes :func:`minute_window` gives it."""
    rng = random.Random(13)
    base = floor_minute(world.clock.datetime())
    counts = {base + i * MINUTE: rng.randrange(1, 1000) for i in range(40)}
    with world.store.transaction() as tx:
        for minute, count in counts.items():
            at = minute + timedelta(seconds=rng.randrange(60))
            item = UsageCount("new-checkout", EVALUATIONS, "on", count)
            tx.add_usage(world.project_id, "development", "server", [item], at)
    for _ in range(20):
        # half the starts exactly on a minute, where `<` and `<=` would differ
        offsets = sorted(
            rng.randrange(-2, 42) * 60 + (0 if rng.random() < 0.5 else rng.randrange(1, 60))
            for _ in range(rng.randrange(1, 6))
        )
        if rng.random() < 0.3:
            offsets.append(offsets[-1] + rng.randrange(1, 30))  # two starts in one minute
        starts = [base + timedelta(seconds=s) for s in offsets]
        expected = [0] * len(starts)
        for minute, count in counts.items():
            index = minute_window(minute, starts)
            if index is not None:
                expected[index] += count
        with world.store.read() as tx:
            found = tx.event_windows(world.project_id, "development", "new-checkout", starts)
        assert [w["on"].exposures if "on" in w else 0 for w in found] == expected, offsets


def test_a_traffic_shift_after_a_stage_does_not_roll_a_healthy_plan_back(world: World) -> None:
    """Both arms fail 1% at the first stage and 6% at the second: the treatment is as good as
    the control throughout. Pooled since the plan started, the treatment (mostly second-stage
    traffic) looked far worse and the plan was rolled back."""
    stages = [
        {"name": "5%", "min_duration": 600, "percent": 5},
        {"name": "50%", "min_duration": 3600, "percent": 50},
    ]
    plan_id = started(world, stages=stages)
    scheduler = world.scheduler()
    for _ in range(10):
        world.clock.advance(59)
        world.traffic("off", 1900, errors=19)
        world.traffic("on", 100, errors=1)
        world.clock.advance(1)
        scheduler.tick()
    assert world.status(plan_id).state.stage == 1
    actions = []
    for _ in range(10):
        world.clock.advance(59)
        world.traffic("off", 1000, errors=60)
        world.traffic("on", 1000, errors=60)
        world.clock.advance(1)
        actions += [s.action for s in scheduler.tick()]
    assert Action.ROLLBACK not in actions
    evidence = world.status(plan_id).stored.last_evaluation["gates"][0]["evidence"]
    assert evidence["treatment_samples"] == 10_000  # the second stage's window
    assert evidence["stages"] == 2


def test_events_from_keys_a_gate_does_not_trust_do_not_count(world: World) -> None:
    """A flood of errors reported with a (public) client key for the treatment: the default
    gate, which trusts server keys only, does not roll back; a gate trusting client keys
    does, and events received before the plan started count in neither."""
    gates = [
        {"kind": "error_rate", "event": "error", "min_samples": 100},
        {"kind": "error_rate", "event": "error", "min_samples": 100,
         "trust": ["server", "client"]},
    ]  # fmt: skip
    stages = [{"name": "50%", "min_duration": 3600, "percent": 50}]
    insert(world, "on", 5000, name="error", received=-5)  # before the plan
    plan_id = started(world, stages=stages, gates=gates)
    scheduler = world.scheduler()
    world.clock.advance(60)
    world.traffic("off", 500, errors=5)
    world.traffic("on", 500, errors=5)
    assert [s.action for s in scheduler.tick()] == [Action.WAIT]
    results = world.status(plan_id).stored.last_evaluation["gates"]
    assert [r["status"] for r in results] == ["healthy", "healthy"]
    insert(world, "on", 400, name="error", received=0, key_kind="client")
    world.clock.advance(5)
    steps = scheduler.tick()
    assert [s.action for s in steps] == [Action.ROLLBACK]
    incident = world.services.rollouts.incident(
        ADMIN, world.project, world.status(plan_id).stored.incident_id
    )
    assert [e["status"] for e in incident.evidence] == ["healthy", "regression"]
