"""Use cases for release plans: create, start, pause, resume, advance, abort, read; and the
scheduler's step (:mod:`.step`), which applies an automatic decision.

Every transition runs in one transaction that locks the plan's row, writes the flag
configuration the new stage serves (through :class:`FlagService`, so it is validated,
versioned and audited like any change, by ``rollout:<id>`` or by the person who acted), swaps
the plan's state (compare-and-swap on its version) and appends the plan's own audit entry
(:mod:`.transitions`). A rollback also opens an incident in that transaction.

A plan's flag configuration at each stage comes from the configuration the flag had when the
plan started (its *base*, kept with the plan; see :mod:`fader_server.rollout_logic.apply`).
Edits made to the flag's configuration by hand while a plan runs are replaced at the next
stage, and a rollback or an abort restores the base.

People's commands are announced like the scheduler's decisions: the plan's audit entry is
written with its notification outbox rows (:mod:`fader_server.storage.ports.outbox`), in the
command's transaction, and the delivery worker posts them after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TypeVar

from fader_server.errors import InvalidStateError, NotFoundError
from fader_server.rollout_logic import apply, decide
from fader_server.rollout_logic.decide import InvalidTransitionError
from fader_server.rollout_logic.gates import Reading
from fader_server.rollout_logic.plan import Plan, State, Status
from fader_server.services import protected_environments
from fader_server.services.access import Clock, Principal, Role, load_project
from fader_server.services.change_requests import policy as change_policy
from fader_server.services.flags import FlagService
from fader_server.services.outbound_policy import DENY_INTERNAL, OutboundPolicy
from fader_server.services.rollouts import checks, records
from fader_server.services.rollouts import step as scheduler_step
from fader_server.services.rollouts.records import PlanStatus, at
from fader_server.services.rollouts.step import Step
from fader_server.services.rollouts.transitions import RolloutTx, Transitions, transition
from fader_server.storage.ports import (
    JSON,
    PROJECT_SCOPE,
    Incident,
    NewPlan,
    Project,
    ResourceType,
    StoredPlan,
)
from fader_server.storage.ports.resources import ResourceReads
from fader_server.storage.ports.rollouts import PlanReads
from fader_server.storage.ports.store import Store

_T = TypeVar("_T")
_Command = Callable[[RolloutTx, Project, StoredPlan, Principal, "str | None", float], StoredPlan]


class RolloutService:
    def __init__(
        self,
        store: Store[RolloutTx],
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

    def list_plans(
        self,
        principal: Principal,
        project_key: str,
        *,
        limit: int,
        before_id: int | None,
        flag: str | None = None,
        status: str | None = None,
    ) -> list[PlanStatus]:
        """Newest first, below `before_id` when given."""
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
            merged = checks.with_template(tx, project, body)
            base = self.transitions.current_config(
                tx, project, merged["environment"], merged["flag"]
            )
            plan = checks.check_plan(tx, project, merged, base, self.outbound)
            if base is not None:
                checks.check_base(plan, base, creating=True)
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
            records.audit_transition(
                tx, project, stored, plan, None, State(), action="create",
                actor=principal.actor, comment=comment, when=at(now),
            )  # fmt: skip
            if not body.get("start"):
                return PlanStatus.of(stored, now)
            _refuse_direct_start(tx, project, stored)
            stored = self._start(tx, project, stored, principal, comment, now)
            return PlanStatus.of(stored, now)

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
            tx: RolloutTx,
            project: Project,
            stored: StoredPlan,
            principal: Principal,
            comment: str | None,
            now: float,
        ) -> StoredPlan:
            _refuse_direct_start(tx, project, stored)
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

    def start_in(
        self,
        tx: RolloutTx,
        project: Project,
        plan_id: int,
        principal: Principal,
        comment: str | None,
    ) -> StoredPlan:
        """Start a pending plan inside the caller's transaction, which has authorised it: an
        approved change request starts a plan this way, atomically with its other changes."""
        _plan(tx, project, plan_id)
        stored = tx.lock_plan(plan_id, wait=True)
        assert stored is not None  # plans are never deleted
        return self._start(tx, project, stored, principal, comment, self._now())

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
            return PlanStatus.of(moved, now)

    def _start(
        self,
        tx: RolloutTx,
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
        checks.check_base(plan, base, creating=False)
        first = apply.stage_config(base, plan, 0)
        self.transitions.serve(tx, project, plan, first, principal, comment, now, "rollout start")
        return transition(
            tx, project, stored, plan, before, after, action="start", actor=principal.actor,
            comment=comment, now=now, base_config=base,
        )  # fmt: skip

    def _advance(
        self,
        tx: RolloutTx,
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
        tx: RolloutTx,
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

    # ------------------------------------------------------------- scheduler
    def step(self, seen: StoredPlan, readings: Mapping[int, Reading], now: float) -> Step | None:
        """One automatic decision for the plan `seen`, applied (:func:`.step.take_step`)."""
        return scheduler_step.take_step(self.store, self.transitions, seen, readings, now)

    def record_failure(self, plan_id: int, detail: str, now: float) -> None:
        """Keep why a step could not be applied where the plan's status shows it."""
        scheduler_step.record_failure(self.store, plan_id, detail, now)


def _plan(tx: PlanReads, project: Project, plan_id: int) -> StoredPlan:
    found = tx.get_plan(project.id, plan_id)
    if found is None:
        raise NotFoundError(f"release plan {plan_id} does not exist in project '{project.key}'")
    return found


def _state_change(action: str, change: Callable[[State, float], State]) -> _Command:
    """A command that only changes the plan's state (pause, resume)."""

    def run(
        tx: RolloutTx,
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


def _refuse_direct_start(tx: ResourceReads, project: Project, stored: StoredPlan) -> None:
    """Starting a plan changes what its environment serves: where change requests are
    required, a plan is started by applying an approved request (its pause, resume, advance
    and abort stay direct: they steer a change already approved)."""
    env = tx.get_resource(project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, stored.environment)
    if env is not None:
        change_policy.refuse_direct_in(project, env, f"starting release plan {stored.id}")


def _require_environment_role(
    tx: ResourceReads, principal: Principal, project: Project, environment: str
) -> None:
    """A plan changes the flag's configuration, so a protected environment takes the same
    admin role as changing it by hand: a rollout is no way around the protection."""
    env = tx.get_resource(project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, environment)
    if env is not None:
        what = "creating or running a release plan"
        protected_environments.require_environment_role(principal, project, env, what)
