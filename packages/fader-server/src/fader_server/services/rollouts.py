"""Use cases for release plans: create, start, pause, resume, advance, abort, read; and the
scheduler's step, which applies an automatic decision.

Every transition runs in one transaction that locks the plan's row, writes the flag
configuration the new stage serves (through :class:`FlagService`, so it is validated,
versioned and audited like any change, by ``rollout:<id>`` or by the person who acted), swaps
the plan's state (compare-and-swap on its version) and appends the plan's own audit entry. A
rollback also opens an incident in that transaction. Nothing is sent from inside a transaction:
:meth:`RolloutService.step` returns the deliveries, and the scheduler sends them after commit.

A plan's flag configuration at each stage comes from the configuration the flag had when the
plan started (its *base*, kept with the plan; see :mod:`fader_server.rollouts.apply`). Edits
made to the flag's configuration by hand while a plan runs are replaced at the next stage, and
a rollback or an abort restores the base.

People's commands are announced like the scheduler's decisions: a command's
:class:`PlanStatus` carries the webhook deliveries that say who started, paused, resumed,
advanced or aborted the plan, built in the command's transaction and sent by the caller (the
API, the console) after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from fader_server.errors import (
    InvalidStateError,
    NotFoundError,
    VersionConflictError,
)
from fader_server.outbound import DENY_INTERNAL, OutboundPolicy
from fader_server.rollouts import apply, decide
from fader_server.rollouts.decide import Action, GateResult, InvalidTransitionError
from fader_server.rollouts.gates import Reading, metric_results, threshold_results
from fader_server.rollouts.notify import Delivery, Notification, deliveries
from fader_server.rollouts.plan import KeyKind, MetricGate, Plan, State, Status
from fader_server.services import protected_environments, rollout_checks, rollout_records
from fader_server.services.access import Clock, Principal, Role, load_project
from fader_server.services.flags import FlagService
from fader_server.services.rollout_records import PlanStatus, at, stage_name
from fader_server.services.rollout_transitions import Transitions, system_actor, transition
from fader_server.storage.ports import (
    JSON,
    PROJECT_SCOPE,
    Incident,
    NewPlan,
    PlanUpdate,
    Project,
    ResourceType,
    Store,
    StoredPlan,
    Transaction,
)

ACTIVE = (Status.RUNNING, Status.PAUSED, Status.AWAITING_APPROVAL)
_T = TypeVar("_T")
_Command = Callable[[Transaction, Project, StoredPlan, Principal, "str | None", float], StoredPlan]
_NOTIFIED = {
    Action.ADVANCE: "advanced",
    Action.AWAIT_APPROVAL: "awaiting_approval",
    Action.COMPLETE: "completed",
    Action.ROLLBACK: "rolled_back",
}
_MOVED_BY_HAND = {  # the event a person's command is announced as, by the status it leads to
    Status.RUNNING: "resumed",
    Status.PAUSED: "paused",
    Status.COMPLETED: "completed",
    Status.ABORTED: "aborted",
}


@dataclass(frozen=True, slots=True)
class Step:
    """What one scheduler step did to one plan, and whom to tell."""

    plan_id: int
    action: Action
    reason: str
    deliveries: list[Delivery] = field(default_factory=list)


class RolloutService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        flags: FlagService,
        outbound: OutboundPolicy = DENY_INTERNAL,
    ) -> None:
        self.store = store
        self.clock = clock
        self.flags = flags
        self.outbound = outbound  # where gates may point (checked at creation)
        self.transitions = Transitions(flags)

    def _now(self) -> float:
        return self.clock().timestamp()

    # ------------------------------------------------------------------- reads
    def get(self, principal: Principal, project_key: str, plan_id: int) -> PlanStatus:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            return PlanStatus.of(_plan(tx, project, plan_id), self._now())

    def list(
        self,
        principal: Principal,
        project_key: str,
        *,
        limit: int,
        before_id: int | None,
        flag: str | None = None,
        status: str | None = None,
    ) -> list[PlanStatus]:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            found = tx.list_plans(
                project.id, limit=limit, before_id=before_id, flag=flag, status=status
            )
        now = self._now()
        return [PlanStatus.of(p, now) for p in found]

    def incidents(
        self,
        principal: Principal,
        project_key: str,
        *,
        limit: int,
        before_id: int | None,
        plan_id: int | None = None,
    ) -> list[Incident]:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            return tx.list_incidents(project.id, limit=limit, before_id=before_id, plan_id=plan_id)

    def incident(self, principal: Principal, project_key: str, incident_id: int) -> Incident:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            found = tx.get_incident(project.id, incident_id)
        if found is None:
            raise NotFoundError(f"incident {incident_id} does not exist in project '{project_key}'")
        return found

    # -------------------------------------------------------------- commands
    def create(
        self, principal: Principal, project_key: str, body: JSON, comment: str | None = None
    ) -> PlanStatus:
        """Create a plan from `body` (flag, environment, control, treatment, and either stages
        and gates or a template); with ``start: true`` it also starts, in the same transaction."""
        now = self._now()
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            _require_environment_role(tx, principal, project, body["environment"])
            merged = rollout_checks.with_template(tx, project, body)
            base = self.transitions.current_config(
                tx, project, merged["environment"], merged["flag"]
            )
            plan = rollout_checks.check_plan(tx, project, merged, base, self.outbound)
            if base is not None:
                rollout_checks.check_base(plan, base, creating=True)
            stored = tx.insert_plan(
                NewPlan(
                    project_id=project.id,
                    flag=plan.flag,
                    environment=plan.environment,
                    template=merged.get("template"),
                    plan=plan.to_dict(),
                    state=State().to_dict(),
                    status=Status.PENDING.value,
                    created_by=principal.actor,
                ),
                at(now),
            )
            rollout_records.audit_transition(
                tx, project, stored, plan, None, State(), action="create",
                actor=principal.actor, comment=comment, when=at(now),
            )  # fmt: skip
            if not body.get("start"):
                return PlanStatus.of(stored, now)
            pending = stored
            stored = self._start(tx, project, stored, principal, comment, now)
            announced = _announcement(tx, project, pending, stored, principal, comment, now)
            return replace(PlanStatus.of(stored, now), deliveries=announced)

    def start(
        self,
        principal: Principal,
        project_key: str,
        plan_id: int,
        comment: str | None = None,
        *,
        enable: bool = False,
    ) -> PlanStatus:
        """Record the flag's configuration as the base, and serve the first stage. A flag that
        is off in the environment is turned on only if the plan or this call says `enable`."""

        def run(
            tx: Transaction,
            project: Project,
            stored: StoredPlan,
            principal: Principal,
            comment: str | None,
            now: float,
        ) -> StoredPlan:
            return self._start(tx, project, stored, principal, comment, now, enable=enable)

        return self._command(principal, project_key, plan_id, comment, run)

    def pause(
        self, principal: Principal, project_key: str, plan_id: int, comment: str | None = None
    ) -> PlanStatus:
        """Stop advancing (gates still guard: a regression rolls back a paused plan too)."""
        return self._command(
            principal, project_key, plan_id, comment, _state_change("pause", decide.pause)
        )

    def resume(
        self, principal: Principal, project_key: str, plan_id: int, comment: str | None = None
    ) -> PlanStatus:
        """Run again; the time spent paused does not count toward the stage's duration."""
        return self._command(
            principal, project_key, plan_id, comment, _state_change("resume", decide.resume)
        )

    def advance(
        self, principal: Principal, project_key: str, plan_id: int, comment: str | None = None
    ) -> PlanStatus:
        """Go to the next stage now, whatever the stage's duration or data (also how a stage
        waiting for approval is approved); after the last stage, complete."""
        return self._command(principal, project_key, plan_id, comment, self._advance)

    def abort(
        self, principal: Principal, project_key: str, plan_id: int, comment: str | None = None
    ) -> PlanStatus:
        """Stop the plan for good; a started plan's flag goes back to its base configuration."""
        return self._command(principal, project_key, plan_id, comment, self._abort)

    def _command(
        self,
        principal: Principal,
        project_key: str,
        plan_id: int,
        comment: str | None,
        run: _Command,
    ) -> PlanStatus:
        now = self._now()
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            _plan(tx, project, plan_id)
            stored = tx.lock_plan(plan_id, wait=True)
            assert stored is not None  # plans are never deleted
            _require_environment_role(tx, principal, project, stored.environment)
            moved = run(tx, project, stored, principal, comment, now)
            announced = _announcement(tx, project, stored, moved, principal, comment, now)
            return replace(PlanStatus.of(moved, now), deliveries=announced)

    def _start(
        self,
        tx: Transaction,
        project: Project,
        stored: StoredPlan,
        principal: Principal,
        comment: str | None,
        now: float,
        *,
        enable: bool = False,
    ) -> StoredPlan:
        plan, before = Plan.from_dict(stored.plan), State.from_dict(stored.state)
        after = _checked(lambda: decide.start(before, now))
        base = self.flags.config_in(tx, project, plan.environment, plan.flag).data
        if enable:
            plan = replace(plan, enable=True)
        rollout_checks.check_base(plan, base, creating=False)
        first = apply.stage_config(base, plan, 0)
        self.transitions.serve(tx, project, plan, first, principal, comment, now, "rollout start")
        return transition(
            tx, project, stored, plan, before, after, action="start", actor=principal.actor,
            comment=comment, now=now, base_config=base,
        )  # fmt: skip

    def _advance(
        self,
        tx: Transaction,
        project: Project,
        stored: StoredPlan,
        principal: Principal,
        comment: str | None,
        now: float,
    ) -> StoredPlan:
        plan, before = Plan.from_dict(stored.plan), State.from_dict(stored.state)
        decision = _checked(lambda: decide.advance(plan, before, now, principal.actor))
        return self.transitions.apply(
            tx, project, stored, plan, before, decision, principal, comment, now
        )

    def _abort(
        self,
        tx: Transaction,
        project: Project,
        stored: StoredPlan,
        principal: Principal,
        comment: str | None,
        now: float,
    ) -> StoredPlan:
        plan, before = Plan.from_dict(stored.plan), State.from_dict(stored.state)
        after = _checked(lambda: decide.abort(before, now))
        exists = self.transitions.current_config(tx, project, plan.environment, plan.flag)
        if stored.base_config is not None and exists is not None:  # a deleted flag: nothing
            restored = apply.restored_config(stored.base_config)
            self.transitions.serve(
                tx, project, plan, restored, principal, comment, now, "rollout abort"
            )
        return transition(
            tx, project, stored, plan, before, after, action="abort", actor=principal.actor,
            comment=comment, now=now,
        )  # fmt: skip

    # -------------------------------------------------------------- scheduler
    def step(self, seen: StoredPlan, readings: Mapping[int, Reading], now: float) -> Step | None:
        """One automatic decision for the plan `seen` (as the scheduler read it), applied.

        SDK events are aggregated in a read transaction first, so the write transaction (on
        SQLite, the database's one write lock) lasts only as long as the writes. The decision
        is taken only if the plan is still at the version the events and `readings` were
        gathered for; None when another replica holds the plan or moved it, or when it is no
        longer active (the next tick looks again)."""
        plan = Plan.from_dict(seen.plan)
        observed = State.from_dict(seen.state)
        results: list[GateResult] = []
        trusted = {_kinds(g.trust) for g in plan.gates if isinstance(g, MetricGate)}
        if trusted:
            starts = [at(t) for t in observed.windows] or [at(now)]
            with self.store.read() as tx:
                windows = {
                    kinds: tx.event_windows(
                        seen.project_id, plan.environment, plan.flag, starts, kinds
                    )
                    for kinds in sorted(trusted)
                }
            results.extend(
                metric_results(plan, lambda gate: windows[_kinds(gate.trust)], observed.stage)
            )
        with self.store.transaction() as tx:
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
            evaluation = rollout_records.evaluation(
                now, decision.action.value, decision.reason, results
            )
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
            written = self.transitions.apply(
                tx, project, stored, plan, state, decision, actor, decision.reason, now, evaluation
            )
            note = Notification(
                event=_NOTIFIED[decision.action],
                project=project.key,
                flag=plan.flag,
                environment=plan.environment,
                plan_id=plan_id,
                stage=stage_name(plan, decision.state),
                reason=decision.reason,
                actor=actor.actor,
                at=at(now).isoformat(),
                results=rollout_records.result_dicts(results),
                incident_id=written.incident_id,
            )
            hooks = tx.list_webhooks(project.id)
        return Step(plan_id, decision.action, decision.reason, deliveries(hooks, note))

    def record_failure(self, plan_id: int, detail: str, now: float) -> None:
        """Keep why a step could not be applied where the plan's status shows it."""
        with self.store.transaction() as tx:
            stored = tx.lock_plan(plan_id, wait=True)
            if stored is None or Status(stored.status) not in ACTIVE:
                return
            failure = rollout_records.evaluation(now, "error", detail, [])
            update = PlanUpdate(stored.state, stored.status, active=True, last_evaluation=failure)
            tx.update_plan(stored, update, at(now))


def _kinds(trust: tuple[KeyKind, ...]) -> tuple[KeyKind, ...]:
    return tuple(sorted(set(trust)))


def _announcement(
    tx: Transaction,
    project: Project,
    before: StoredPlan,
    after: StoredPlan,
    principal: Principal,
    comment: str | None,
    now: float,
) -> list[Delivery]:
    """The webhook deliveries announcing a person's command (built in its transaction, sent
    by the caller after the commit), as the scheduler announces its own decisions. An abort
    rewrites the flag's configuration for everyone, so it is said in so many words."""
    plan = Plan.from_dict(after.plan)
    old, new = State.from_dict(before.state), State.from_dict(after.state)
    event = _MOVED_BY_HAND.get(new.status)
    if old.status is Status.PENDING and new.status is Status.RUNNING:
        event = "started"
    elif new.stage != old.stage and new.status in ACTIVE:
        event = "advanced"
    if event is None:
        return []
    actor, stage = principal.actor, stage_name(plan, new)
    reasons = {
        "started": f"{actor} started the plan at stage '{stage}'",
        "advanced": f"{actor} advanced the plan to stage '{stage}'",
        "paused": f"{actor} paused the plan at stage '{stage}'; its gates still roll it back "
        "on a regression",
        "resumed": f"{actor} resumed the plan at stage '{stage}'",
        "completed": f"{actor} completed the plan at stage '{stage}'",
        "aborted": f"{actor} aborted the plan at stage '{stage}'"
        + (
            f"; {plan.flag} in {plan.environment} is back to its configuration from before the "
            "plan, for everyone"
            if old.status is not Status.PENDING
            else " before it started; nothing was served"
        ),
    }
    reason = reasons[event] + (f" ({comment})" if comment else "")
    note = Notification(
        event=event,
        project=project.key,
        flag=plan.flag,
        environment=plan.environment,
        plan_id=after.id,
        stage=stage,
        reason=reason,
        actor=actor,
        at=at(now).isoformat(),
    )
    return deliveries(tx.list_webhooks(project.id), note)


def _plan(tx: Transaction, project: Project, plan_id: int) -> StoredPlan:
    found = tx.get_plan(project.id, plan_id)
    if found is None:
        raise NotFoundError(f"release plan {plan_id} does not exist in project '{project.key}'")
    return found


def _state_change(action: str, change: Callable[[State, float], State]) -> _Command:
    """A command that only changes the plan's state (pause, resume)."""

    def run(
        tx: Transaction,
        project: Project,
        stored: StoredPlan,
        principal: Principal,
        comment: str | None,
        now: float,
    ) -> StoredPlan:
        plan, before = Plan.from_dict(stored.plan), State.from_dict(stored.state)
        after = _checked(lambda: change(before, now))
        return transition(
            tx, project, stored, plan, before, after, action=action, actor=principal.actor,
            comment=comment, now=now,
        )  # fmt: skip

    return run


def _checked(command: Callable[[], _T]) -> _T:
    try:
        return command()
    except InvalidTransitionError as exc:
        raise InvalidStateError(str(exc)) from None


def _require_environment_role(
    tx: Transaction, principal: Principal, project: Project, environment: str
) -> None:
    """A plan changes the flag's configuration, so a protected environment takes the same
    admin role as changing it by hand: a rollout is no way around the protection."""
    env = tx.get_resource(project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, environment)
    if env is not None:
        what = "creating or running a release plan"
        protected_environments.require_environment_role(principal, project, env, what)
