"""What webhooks are told when a person moves a release plan (the scheduler's own decisions
are announced by :mod:`.step`).

A command's deliveries are built in the command's transaction, with the webhooks registered
at that moment, and sent by the caller (the API, the console) once it has committed, exactly
as the scheduler announces its decisions.
"""

from __future__ import annotations

from fader_server.rollout_logic.notifications import Notification, WebhookDelivery, deliveries
from fader_server.rollout_logic.plan import ACTIVE, Plan, State, Status
from fader_server.services.access import Principal
from fader_server.services.rollouts.records import at, stage_name
from fader_server.storage.ports import Project, StoredPlan
from fader_server.storage.ports.rollouts import WebhookRows

MOVED_BY_HAND = {
    Status.RUNNING: "resumed",
    Status.PAUSED: "paused",
    Status.COMPLETED: "completed",
    Status.ABORTED: "aborted",
}
"""The event a person's command is announced as, by the status it leads to (starting and
advancing are told apart from the stage and the previous status)."""


def announcement(
    tx: WebhookRows,
    project: Project,
    before: StoredPlan,
    after: StoredPlan,
    principal: Principal,
    comment: str | None,
    now: float,
) -> list[WebhookDelivery]:
    """The webhook deliveries announcing a person's command (built in its transaction, sent
    by the caller after the commit), as the scheduler announces its own decisions. An abort
    rewrites the flag's configuration for everyone, so it is said in so many words."""
    plan = Plan.from_dict(after.plan)
    old, new = State.from_dict(before.state), State.from_dict(after.state)
    event = MOVED_BY_HAND.get(new.status)
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
