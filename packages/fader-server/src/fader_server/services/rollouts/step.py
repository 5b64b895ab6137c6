"""The scheduler's step: one automatic decision for one release plan, applied.

:class:`~fader_server.runtime.scheduler.Scheduler` reads a plan's threshold gates over HTTP
outside any transaction, then calls :meth:`RolloutService.step
<fader_server.services.rollouts.commands.RolloutService.step>`, which lands here: the usage
rollups of the plan's stage windows are summed in a read transaction (whole minutes, by the
server's receive time), then the plan's row is locked, its version compared with the one
everything was observed for, and the decision taken and written in one transaction
(:mod:`.transitions`). Nothing is sent from inside it: the decision's audit entry is written
with its notification outbox rows, which the delivery worker posts after the commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fader_server.errors import VersionConflictError
from fader_server.rollout_logic import decide
from fader_server.rollout_logic.decide import Action, GateResult
from fader_server.rollout_logic.gates import Reading, metric_results, threshold_results
from fader_server.rollout_logic.plan import ACTIVE, KeyKind, MetricGate, Plan, State, Status
from fader_server.services.rollouts import records
from fader_server.services.rollouts.records import at
from fader_server.services.rollouts.transitions import RolloutTx, Transitions, system_actor
from fader_server.storage.ports import PlanUpdate, StoredPlan
from fader_server.storage.ports.store import Store


@dataclass(frozen=True, slots=True)
class Step:
    """What one scheduler step did to one plan."""

    plan_id: int
    action: Action
    reason: str


def take_step(
    store: Store[RolloutTx],
    transitions: Transitions,
    seen: StoredPlan,
    readings: Mapping[int, Reading],
    now: float,
) -> Step | None:
    """One automatic decision for the plan `seen` (as the scheduler read it), applied.

    The usage rollups are summed in a read transaction first, so the write transaction (on
    SQLite, the database's one write lock) lasts only as long as the writes. The decision
    is taken only if the plan is still at the version the totals and `readings` were
    gathered for; None when another replica holds the plan or moved it, or when it is no
    longer active (the next tick looks again)."""
    plan = Plan.from_dict(seen.plan)
    observed = State.from_dict(seen.state)
    results: list[GateResult] = []
    trusted = {_kinds(g.trust) for g in plan.gates if isinstance(g, MetricGate)}
    if trusted:
        starts = [at(t) for t in observed.windows] or [at(now)]
        with store.read() as tx:
            windows = {
                kinds: tx.event_windows(seen.project_id, plan.environment, plan.flag, starts, kinds)
                for kinds in sorted(trusted)
            }
        results.extend(
            metric_results(plan, lambda gate: windows[_kinds(gate.trust)], observed.stage)
        )
    with store.transaction() as tx:
        # The project's write lock first, as every API write takes it (load_project),
        # then the plan's row: one order everywhere, so no deadlock between the two.
        tx.lock_project(seen.project_id)
        stored = tx.lock_plan(seen.id, wait=False)
        if stored is None or stored.version != seen.version:
            return None
        if Status(stored.status) not in ACTIVE:
            return None
        plan_id = stored.id
        project = tx.get_project_by_id(stored.project_id)
        assert project is not None  # projects are never deleted
        state = State.from_dict(stored.state)
        thresholds, state = threshold_results(plan, state, readings, now)
        results.extend(thresholds)
        results.sort(key=lambda r: r.index)
        decision = decide.decide(plan, state, results, now)
        actor = system_actor(stored.id)
        evaluation = records.evaluation(now, decision.action.value, decision.reason, results)
        if decision.action is Action.WAIT:
            update = PlanUpdate(
                decision.state.to_dict(),
                decision.state.status.value,
                active=True,
                last_evaluation=evaluation,
            )
            if tx.update_plan(stored, update, at(now)) is None:
                raise VersionConflictError(f"release plan {plan_id} changed during its step")
            return Step(plan_id, decision.action, decision.reason)
        transitions.apply(
            tx, project, stored, plan, state, decision, actor, decision.reason, now, evaluation
        )
    return Step(plan_id, decision.action, decision.reason)


def record_failure(store: Store[RolloutTx], plan_id: int, detail: str, now: float) -> None:
    """Keep why a step could not be applied where the plan's status shows it."""
    with store.transaction() as tx:
        stored = tx.lock_plan(plan_id, wait=True)
        if stored is None or Status(stored.status) not in ACTIVE:
            return
        failure = records.evaluation(now, "error", detail, [])
        update = PlanUpdate(stored.state, stored.status, active=True, last_evaluation=failure)
        tx.update_plan(stored, update, at(now))


def _kinds(trust: tuple[KeyKind, ...]) -> tuple[KeyKind, ...]:
    return tuple(sorted(set(trust)))
