"""How a release plan's transition is written: the shape every change of a plan takes, whether a
person or the scheduler makes it, inside the caller's transaction (which holds the plan's row).

1. The flag configuration the new stage serves (or the restored base, or on completion the
   clean final configuration) is written through :class:`FlagService`: validated by the
   engine, versioned, audited, announced to SDKs.
2. The plan's state is swapped, compare-and-swap on its version.
3. The plan's own audit entry records the status and stage change and the gates' evidence.
4. A rollback opens an incident with the timeline, then links it to the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from fader_server.errors import NotFoundError, VersionConflictError
from fader_server.rollout_logic import apply
from fader_server.rollout_logic.decide import Action, Decision, GateResult, GateStatus
from fader_server.rollout_logic.plan import Plan, State
from fader_server.services.access import Principal
from fader_server.services.definitions import DefinitionTx
from fader_server.services.flags import FlagService
from fader_server.services.incidents import records as incident_records
from fader_server.services.rollouts import records
from fader_server.services.rollouts.records import at, stage_name
from fader_server.services.versioning import Change
from fader_server.storage.ports import JSON, PlanUpdate, Project, StoredPlan
from fader_server.storage.ports.audit import AuditLog
from fader_server.storage.ports.incidents import IncidentRows, NewIncident
from fader_server.storage.ports.resources import ResourceReads
from fader_server.storage.ports.rollouts import (
    EventAggregates,
    PlanRows,
    TemplateRows,
)

ROLLBACK_SEVERITY = "major"
"""A rollback served the regression to a share of users only, and undid it by itself."""


class RolloutTx(
    DefinitionTx,
    PlanRows,
    IncidentRows,
    TemplateRows,
    EventAggregates,
    Protocol,
):
    """What release-plan use cases touch: the flag configurations a plan serves (written as
    any configuration is), the plan, its incident, its template, and the per-window totals of
    the usage rollups its gates read (webhooks hear of it through the audit log's outbox)."""


class PlanWrites(PlanRows, IncidentRows, AuditLog, Protocol):
    """What writing a plan's transition touches besides the flag's configuration."""


def system_actor(plan_id: int) -> Principal:
    """The actor of the scheduler's changes, as the audit log shows it."""
    return Principal(f"rollout:{plan_id}", instance_admin=True)


class Transitions:
    def __init__(self, flags: FlagService) -> None:
        self.flags = flags

    def serve(
        self,
        tx: RolloutTx,
        project: Project,
        plan: Plan,
        config: JSON,
        principal: Principal,
        comment: str | None,
        now: float,
        action: str,
    ) -> None:
        """Write the flag configuration a plan serves (audit action e.g. ``rollout advance``)."""
        change = Change(principal, lambda: at(now), comment)
        self.flags.write_config_in(tx, project, plan.environment, plan.flag, config, change, action)

    def current_config(
        self, tx: ResourceReads, project: Project, environment: str, flag: str
    ) -> JSON | None:
        """The flag's configuration in the environment; None if either is gone."""
        try:
            return self.flags.config_in(tx, project, environment, flag).data
        except NotFoundError:
            return None

    def apply(
        self,
        tx: RolloutTx,
        project: Project,
        stored: StoredPlan,
        plan: Plan,
        before: State,
        decision: Decision,
        principal: Principal,
        comment: str | None,
        now: float,
        evaluation: JSON | None = None,
    ) -> StoredPlan:
        """Write what a decision (automatic or by hand) means: the next stage's configuration,
        the final configuration on completion (only if it differs from what the flag has: the
        last stage's configuration often is the final one already), or the restored base and
        an incident on rollback, and the plan's new state."""
        base = stored.base_config
        if base is not None and decision.action is Action.ADVANCE:
            config = apply.stage_config(base, plan, decision.state.stage)
            self.serve(tx, project, plan, config, principal, comment, now, "rollout advance")
        if base is not None and decision.action is Action.COMPLETE:
            final = apply.final_config(base, plan)
            current = self.current_config(tx, project, plan.environment, plan.flag)
            if current is not None and current != final:
                self.serve(tx, project, plan, final, principal, comment, now, "rollout complete")
        if base is not None and decision.action is Action.ROLLBACK:
            restored = apply.restored_config(base)
            self.serve(tx, project, plan, restored, principal, comment, now, "rollback")
        written = transition(
            tx, project, stored, plan, before, decision.state, action=decision.action.value,
            actor=principal.actor, comment=comment, now=now, results=decision.results,
            evaluation=evaluation,
        )  # fmt: skip
        if decision.action is not Action.ROLLBACK:
            return written
        incident = open_incident(tx, project, written, plan, before, decision, now)
        update = PlanUpdate(written.state, written.status, active=False, incident_id=incident)
        linked = tx.update_plan(written, update, at(now))
        assert linked is not None  # the row is locked by this transaction
        return linked


def transition(
    tx: PlanWrites,
    project: Project,
    stored: StoredPlan,
    plan: Plan,
    before: State,
    after: State,
    *,
    action: str,
    actor: str,
    comment: str | None,
    now: float,
    results: Sequence[GateResult] = (),
    base_config: JSON | None = None,
    evaluation: JSON | None = None,
) -> StoredPlan:
    """Swap the plan's state and audit the change."""
    update = PlanUpdate(
        after.to_dict(),
        after.status.value,
        active=not after.status.finished,
        last_evaluation=evaluation,
        base_config=base_config,
    )
    written = tx.update_plan(stored, update, at(now))
    if written is None:
        raise VersionConflictError(
            f"release plan {stored.id} changed while this action ran; read it again and retry"
        )
    records.audit_transition(
        tx, project, written, plan, before, after, action=action, actor=actor, comment=comment,
        when=at(now), results=results,
    )  # fmt: skip
    return written


def open_incident(
    tx: PlanWrites,
    project: Project,
    stored: StoredPlan,
    plan: Plan,
    before: State,
    decision: Decision,
    now: float,
) -> int:
    """Record a rollback: the stage, the regressing metrics, every gate's evidence, and the
    timeline (which already holds the rollback's own configuration write and audit entry)."""
    regressions = [r for r in decision.results if r.status is GateStatus.REGRESSION]
    metric = "; ".join(f"{r.kind} (gate {r.index}): {r.summary}" for r in regressions)
    incident = tx.insert_incident(
        NewIncident(
            project_id=project.id,
            title=f"Automatic rollback of {plan.flag} in {plan.environment}",
            severity=ROLLBACK_SEVERITY,
            opened_by=system_actor(stored.id).actor,
            flag=plan.flag,
            environment=plan.environment,
            plan_id=stored.id,
            stage=before.stage,
            stage_name=stage_name(plan, before),
            metric=metric or decision.reason,
            evidence=tuple(records.result_dicts(decision.results)),
            timeline=tuple(records.timeline(tx, project, stored)),
        ),
        at(now),
    )
    opened = [
        {"path": "/title", "after": incident.title},
        {"path": "/severity", "after": incident.severity},
        {"path": "/state", "after": incident.state},
    ]
    incident_records.audit_incident(
        tx, incident, "opened", incident.opened_by, at(now), opened, decision.reason
    )
    return incident.id
