"""`fader webhooks ...`: who hears about a project's changes, and what they were told.

    fader webhooks list                                   subscriptions (never their secrets)
    fader webhooks add URL --event flag --event rollout   subscribe; prints the signing secret once
    fader webhooks update ID [--event ...] [--enable|--disable] [--url U] [--description D]
    fader webhooks remove ID                              unsubscribe (its log goes too)
    fader webhooks deliveries ID                          the delivery log, newest first
    fader webhooks redeliver ID DELIVERY                  queue a delivery again now

Event types: flag, change_request, schedule, incident, rollout (docs/notifications.md).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fader_server.cli.admin import Json, Limit, Project, Token, Url, admin_command, connect
from fader_server.cli.client import api_path
from fader_server.cli.output import note, print_json, print_table

app = typer.Typer(
    help="Webhooks: signed, Slack-compatible notifications of a project's changes.",
    no_args_is_help=True,
)

WebhookId = Annotated[int, typer.Argument(help="Webhook id.", min=1, show_default=False)]
Events = Annotated[
    list[str] | None,
    typer.Option(
        "--event",
        "-e",
        help="An event type to hear about (repeat): flag, change_request, schedule, incident, "
        "rollout.",
    ),
]


def _webhook_row(w: dict[str, Any]) -> list[Any]:
    return [
        w["id"],
        w["url"],
        ",".join(w["events"]),
        "enabled" if w["enabled"] else "disabled",
        w["description"],
        w["created_by"],
    ]


def _attempt(a: dict[str, Any]) -> str:
    outcome = f"HTTP {a['status_code']}" if a["status_code"] is not None else a["error"]
    return f"{a['at']} {outcome} ({a['duration_ms']:.0f} ms)"


@admin_command(app, "list")
def list_webhooks(
    project: Project, as_json: Json = False, url: Url = None, token: Token = None
) -> None:
    """List the project's webhooks (admin role; their secrets are never shown again)."""
    with connect(url, token) as api:
        items = api.get(api_path("projects", project, "webhooks")).body["items"]
    if as_json:
        print_json(items)
        return
    print_table(
        ["ID", "URL", "EVENTS", "STATE", "DESCRIPTION", "CREATED BY"],
        (_webhook_row(w) for w in items),
    )


@admin_command(app, "add")
def add_webhook(
    project: Project,
    hook_url: Annotated[str, typer.Argument(metavar="URL", help="Where to POST notifications.")],
    events: Events = None,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Subscribe a URL; prints its signing secret, which is shown only this once. Without
    --event it hears rollout decisions only."""
    body: dict[str, Any] = {"url": hook_url, "description": description, "enabled": not disabled}
    if events:
        body["events"] = events
    with connect(url, token) as api:
        created = api.post(api_path("projects", project, "webhooks"), body).body
    if as_json:
        print_json(created)
        return
    note(f"added webhook {created['id']} ({', '.join(created['events'])}); its signing secret:")
    typer.echo(created["secret"])


@admin_command(app, "update")
def update_webhook(
    webhook_id: WebhookId,
    project: Project,
    events: Events = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Deliver, or hold deliveries.")
    ] = None,
    hook_url: Annotated[str | None, typer.Option("--url-to", help="A new URL.")] = None,
    description: Annotated[str | None, typer.Option(help="A new description.")] = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Change what a webhook hears, where it posts, or whether it is enabled."""
    body: dict[str, Any] = {}
    if events:
        body["events"] = events
    if enabled is not None:
        body["enabled"] = enabled
    if hook_url is not None:
        body["url"] = hook_url
    if description is not None:
        body["description"] = description
    with connect(url, token) as api:
        path = api_path("projects", project, "webhooks", webhook_id)
        updated = api.request("PATCH", path, json=body).body
    if as_json:
        print_json(updated)
        return
    print_table(
        ["ID", "URL", "EVENTS", "STATE", "DESCRIPTION", "CREATED BY"], [_webhook_row(updated)]
    )


@admin_command(app, "remove")
def remove_webhook(
    webhook_id: WebhookId, project: Project, url: Url = None, token: Token = None
) -> None:
    """Stop notifying a webhook; its pending deliveries and its log go with it."""
    with connect(url, token) as api:
        api.delete(api_path("projects", project, "webhooks", webhook_id))
    note(f"removed webhook {webhook_id} from {project}")


@admin_command(app, "deliveries")
def list_deliveries(
    webhook_id: WebhookId,
    project: Project,
    limit: Limit = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """The delivery log, newest first: status, attempts, and the last attempt's outcome."""
    with connect(url, token) as api:
        path = api_path("projects", project, "webhooks", webhook_id, "deliveries")
        items = list(api.items(path, limit=limit))
    if as_json:
        print_json(items)
        return
    print_table(
        ["ID", "EVENT", "ENTITY", "ACTION", "STATUS", "ATTEMPTS", "LAST ATTEMPT", "NEXT"],
        (
            [
                d["id"],
                d["event"],
                f"{d['entity_type']} {d['entity_key']}",
                d["action"],
                d["status"],
                d["attempts"],
                _attempt(d["log"][0]) if d["log"] else "",
                d["next_attempt_at"] if d["status"] == "pending" else "",
            ]
            for d in items
        ),
    )


@admin_command(app, "redeliver")
def redeliver(
    webhook_id: WebhookId,
    delivery: Annotated[int, typer.Argument(help="Delivery id.", min=1, show_default=False)],
    project: Project,
    url: Url = None,
    token: Token = None,
) -> None:
    """Queue a delivery again now, with its delivery id and a fresh retry budget."""
    with connect(url, token) as api:
        path = api_path(
            "projects", project, "webhooks", webhook_id, "deliveries", delivery, "redeliver"
        )
        queued = api.post(path).body
    note(f"queued delivery {queued['id']} ({queued['delivery_id']}) again")
