"""What a webhook is told: a Slack-compatible message made from one audit entry.

The body is Slack's incoming-webhook message shape (``text``, the one line every chat tool
shows, with a link back to the console page of what changed; ``blocks`` for layout;
https://api.slack.com/messaging/webhooks), plus a ``fader`` object with the structured event,
so one payload serves a Slack channel and a program alike. It is made from the audit entry the
outbox row points at, so a retry, or a delivery after a restart, says exactly what the first
attempt said. Nothing secret is in an audit entry (webhook entries name the webhook, never its
URL or secret), so nothing secret is in a body.

The signature headers are :mod:`fader_server.rollout_logic.notifications`'.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fader_server.storage.ports import JSON, AuditEntry

MAX_TEXT = 2900
"""Slack's limit for a text object is 3000 characters."""
MAX_CHANGES = 20
"""Changed paths listed in a body; `changes_total` says how many there were."""

_NOUNS = {
    "flag": "Flag",
    "config": "Flag configuration",
    "segment": "Segment",
    "environment": "Environment",
    "change_request": "Change request",
    "scheduled_change": "Scheduled change",
    "incident": "Incident",
    "action_item": "Action item",
    "rollout": "Release plan",
}


def console_path(project: str, entity_type: str, key: str) -> str:
    """The console page of the thing an audit entry is about."""
    base = f"/projects/{quote(project, safe='')}"
    first = quote(key.split("/", 1)[0], safe="")
    pages = {
        "flag": f"{base}/flags/{first}",
        "config": f"{base}/flags/{first}",
        "segment": f"{base}/segments/{first}",
        "environment": f"{base}/environments/{first}",
        "change_request": f"{base}/change-requests/{first}",
        "incident": f"{base}/incidents/{first}",
        "action_item": f"{base}/incidents/{first}",  # key: <incident id>/<item id>
        "rollout": f"{base}/rollouts/{first}",
    }
    return pages.get(entity_type, f"{base}/history")


def _after(entry: AuditEntry, path: str) -> Any:
    return next((c.get("after") for c in entry.diff if c.get("path") == path), None)


def summary(entry: AuditEntry, project: str) -> str:
    """One line: what changed, where, how, by whom."""
    noun = _NOUNS.get(entry.entity_type, entry.entity_type.replace("_", " ").capitalize())
    if entry.entity_type == "rollout":
        noun = f"Release plan #{entry.entity_key}"
    else:
        noun = f"{noun} {entry.entity_key}"
    where = f" in {entry.environment}" if entry.environment else ""
    line = f"[{project}] {noun}{where}: {entry.action} by {entry.actor}"
    stage = _after(entry, "/stage")
    status = _after(entry, "/status")
    if status is not None or stage is not None:
        line += " (" + ", ".join(str(v) for v in (status, stage) if v is not None) + ")"
    return line


def message(
    entry: AuditEntry, *, project: str, event: str, public_url: str, delivery_id: str
) -> JSON:
    """The webhook body for `entry` of `project`, announced as `event`."""
    link = public_url.rstrip("/") + console_path(project, entry.entity_type, entry.entity_key)
    line = summary(entry, project)
    paths = [str(c.get("path", "/")) for c in entry.diff]
    detail = entry.comment or ""
    blocks: list[JSON] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{line[:MAX_TEXT]}"}},
    ]
    if detail:
        blocks.append(
            {"type": "section", "text": {"type": "plain_text", "text": detail[:MAX_TEXT]}}
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"<{link}|Open in Fader> · {entry.at.isoformat()}"}
            ],
        }
    )
    structured: JSON = {
        "event": event,
        "action": entry.action,
        "project": project,
        "environment": entry.environment,
        "entity": {"type": entry.entity_type, "key": entry.entity_key, "version": entry.version},
        "actor": entry.actor,
        "at": entry.at.isoformat(),
        "comment": entry.comment,
        "changes": paths[:MAX_CHANGES],
        "changes_total": len(paths),
        "url": link,
        "delivery": delivery_id,
    }
    if entry.entity_type == "rollout":
        structured["rollout"] = {
            "plan": int(entry.entity_key) if entry.entity_key.isdigit() else entry.entity_key,
            "status": _after(entry, "/status"),
            "stage": _after(entry, "/stage"),
            "gates": _after(entry, "/evidence") or [],
        }
    return {
        "text": f"{line} <{link}|Open in Fader>"[:MAX_TEXT],
        "blocks": blocks,
        "fader": structured,
    }
