"""What a release plan leaves behind: audit entries (which its notifications are made from),
incident timelines, and the status view people read.

Every transition of a plan (create, start, pause, resume, advance, await approval, complete,
roll back, abort) appends an audit entry with ``entity_type="rollout"`` and the plan's id as
its key. Its diff holds the status and stage before and after, and, when gates decided, the
gate results under ``/evidence``: the audit log alone answers "why did this move?".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fader_server.rollout_logic import apply
from fader_server.rollout_logic.decide import GateResult
from fader_server.rollout_logic.plan import Plan, State, Status
from fader_server.storage.ports import JSON, NewAuditEntry, Project, StoredPlan
from fader_server.storage.ports.audit import AuditLog

ENTITY = "rollout"
TIMELINE_LIMIT = 500


def plain(value: Any) -> Any:
    """`value` as strict JSON: the infinite likelihood ratio of overwhelming evidence, or a
    NaN read from Prometheus, become the strings ``"inf"``/``"nan"`` (PostgreSQL's JSON, like
    RFC 8259, has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def result_dicts(results: Sequence[GateResult]) -> list[JSON]:
    """Gate results as stored in audit entries, incidents, plans and notifications."""
    return [plain(r.as_dict()) for r in sorted(results, key=lambda r: r.index)]


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def stage_name(plan: Plan, state: State) -> str:
    return plan.stages[min(state.stage, len(plan.stages) - 1)].name


@dataclass(frozen=True, slots=True)
class PlanStatus:
    """A stored plan read back as plan and state, with the clock reading it was viewed at."""

    stored: StoredPlan
    plan: Plan
    state: State
    now: float

    @classmethod
    def of(cls, stored: StoredPlan, now: float) -> PlanStatus:
        return cls(stored, Plan.from_dict(stored.plan), State.from_dict(stored.state), now)

    @property
    def served_before(self) -> float | None:
        """The share of users the flag's default served the treatment before the plan (in
        percent; None until the plan starts). Stages below it serve it: nobody loses the
        treatment (:mod:`fader_server.rollout_logic.apply`)."""
        base = self.stored.base_config
        return None if base is None else apply.base_percent(base, self.plan.treatment)

    def served_percent(self, stage: int) -> float | None:
        """The share of the default's users stage `stage` serves the treatment (None until the
        plan starts, since it depends on what the flag served then)."""
        base = self.stored.base_config
        return None if base is None else apply.served_percent(base, self.plan, stage)

    @property
    def time_in_stage(self) -> float | None:
        """Running seconds spent in the current stage (pauses excluded); None unless started
        and unfinished."""
        state = self.state
        if state.stage_started_at is None or state.status.finished:
            return None
        until = state.paused_at if state.status is Status.PAUSED else self.now
        return max(0.0, (until or self.now) - state.stage_started_at)


def audit_transition(
    tx: AuditLog,
    project: Project,
    stored: StoredPlan,
    plan: Plan,
    before: State | None,
    after: State,
    *,
    action: str,
    actor: str,
    comment: str | None,
    when: datetime,
    results: Sequence[GateResult] = (),
) -> None:
    diff: list[JSON] = []
    if before is None or before.status is not after.status:
        diff.append(
            {
                "path": "/status",
                "before": None if before is None else before.status.value,
                "after": after.status.value,
            }
        )
    if before is not None and before.stage != after.stage:
        diff.append(
            {
                "path": "/stage",
                "before": stage_name(plan, before),
                "after": stage_name(plan, after),
            }
        )
    if before is None:
        diff.append({"path": "/plan", "after": plan.to_dict()})
    if results:
        diff.append({"path": "/evidence", "after": result_dicts(results)})
    tx.append_audit(
        NewAuditEntry(
            project_id=project.id,
            actor=actor,
            action=action,
            entity_type=ENTITY,
            entity_key=str(stored.id),
            environment=stored.environment,
            version=None,
            diff=diff,
            comment=comment,
        ),
        when,
    )


def timeline(tx: AuditLog, project: Project, stored: StoredPlan) -> list[JSON]:
    """Everything that happened to the plan and to its flag's configuration in its environment
    since the plan was created, oldest first: who changed what, and why."""
    rollout = tx.list_audit(
        project.id,
        limit=TIMELINE_LIMIT,
        before_id=None,
        entity_types=(ENTITY,),
        entity_key=str(stored.id),
    )
    configs = [
        e
        for e in tx.list_audit(
            project.id,
            limit=TIMELINE_LIMIT,
            before_id=None,
            entity_types=("config",),
            entity_key=stored.flag,
        )
        if e.environment == stored.environment and e.at >= stored.created_at
    ]
    items: list[JSON] = []
    for entry in sorted([*rollout, *configs], key=lambda e: e.id):
        item: dict[str, Any] = {
            "at": entry.at.isoformat(),
            "actor": entry.actor,
            "action": entry.action,
            "entity": entry.entity_type,
            "comment": entry.comment,
            "changes": entry.diff,
        }
        if entry.version is not None:
            item["version"] = entry.version
        items.append(item)
    return items


def evaluation(when: float, action: str, reason: str, results: Sequence[GateResult]) -> JSON:
    """The `last_evaluation` of a plan: what the scheduler saw and concluded at its last tick."""
    return {
        "at": at(when).isoformat(),
        "action": action,
        "reason": reason,
        "gates": result_dicts(results),
    }
