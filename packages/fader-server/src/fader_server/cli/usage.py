"""`fader flags usage|debug-events|stale`: what SDKs reported about flags (docs/events.md).

`usage` prints a flag's evaluations in one environment over a period: the totals, the variants
served with their distinct contexts (estimated), and one row per step that had evaluations
(`--json` has every step, zeros included, exactly as the API returns it). `debug-events` lists
the evaluations SDKs reported one by one for a flag being debugged; `stale` is the project's
stale-flag report. Registered on the `flags` group by :mod:`fader_server.cli.flags`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from fader_server.cli.admin import Environment, Json, Project, Token, Url, connect
from fader_server.cli.client import api_path
from fader_server.cli.output import note, print_fields, print_heading, print_json, print_table

Key = Annotated[str, typer.Argument(help="Flag key.", show_default=False)]
NO_VARIANT = "(none)"
"""The column and row of evaluations that served no variant (errors, the caller's default)."""


class Period(StrEnum):
    HOUR = "1h"
    DAY = "24h"
    WEEK = "7d"
    MONTH = "30d"
    QUARTER = "90d"


def usage(
    key: Key,
    project: Project,
    environment: Environment,
    period: Annotated[
        Period, typer.Option(help="1h per minute, 24h and 7d per hour, 30d and 90d per day.")
    ] = Period.WEEK,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Evaluations of a flag in one environment over a period, per variant and per step."""
    with connect(url, token) as api:
        path = api_path("projects", project, "flags", key, "usage")
        found = api.get(path, {"environment": environment, "period": period.value}).body
    if as_json:
        print_json(found)
        return
    print_usage(found)


def print_usage(found: dict[str, Any]) -> None:
    totals, contexts = found["totals"], found["distinct_contexts"]
    print_fields(
        {
            "flag": found["flag"],
            "environment": found["environment"],
            "period": f"{found['period']} (per {found['step']}, UTC)",
            "from": found["since"],
            "to": found["until"],
            "evaluations": totals["evaluations"],
            "distinct contexts": f"{contexts['all']} (estimated)",
            "last evaluated": found["last_evaluated"] or "never",
        }
    )
    print_heading("Variants served")
    total = totals["evaluations"]
    rows = [
        [variant, count, _share(count, total), contexts["variants"].get(variant, 0)]
        for variant, count in totals["variants"].items()
    ]
    if totals["no_variant"]:
        rows.append([NO_VARIANT, totals["no_variant"], _share(totals["no_variant"], total), ""])
    print_table(["VARIANT", "EVALUATIONS", "SHARE", "DISTINCT CONTEXTS (EST.)"], rows)
    if totals["variants_left_out"]:
        note(f"{totals['variants_left_out']} more variants are counted in the total only")
    note(contexts["note"])
    variants = list(totals["variants"])
    active = [p for p in found["points"] if p["evaluations"]]
    print_heading(f"Evaluations per {found['step']}")
    print_table(
        ["START", "EVALUATIONS", *variants, NO_VARIANT],
        (
            [p["start"], p["evaluations"], *(p["variants"][v] for v in variants), p["no_variant"]]
            for p in active
        ),
    )
    quiet = len(found["points"]) - len(active)
    if quiet and active:
        note(f"{quiet} {found['step']}s without evaluations not shown (--json lists every one)")


def _share(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%" if total else ""


def debug_events(
    key: Key,
    project: Project,
    environment: Environment,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many events.")] = 100,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Evaluations SDKs reported one by one for a flag in their `debug_flags`, newest first."""
    with connect(url, token) as api:
        path = api_path("projects", project, "flags", key, "debug-events")
        found = api.get(path, {"environment": environment, "limit": limit}).body
    if as_json:
        print_json(found["items"])
        return
    print_table(
        ["RECEIVED", "EVALUATED", "VARIANT", "REASON", "TARGETING KEY", "KEY"],
        (
            [
                e["received_at"],
                e["occurred_at"],
                e["variant"] if e["variant"] is not None else NO_VARIANT,
                e["reason"],
                e["targeting_key"],
                e["key_kind"],
            ]
            for e in found["items"]
        ),
    )


def stale(
    project: Project,
    unused_days: Annotated[
        int,
        typer.Option(
            "--unused-days", min=1, max=400, help="Stale when not evaluated for this many days."
        ),
    ] = 30,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Release and experiment flags to remove: overdue, fully rolled out, or unused."""
    with connect(url, token) as api:
        path = api_path("projects", project, "reports", "stale-flags")
        found = api.get(path, {"unused_days": unused_days}).body
    if as_json:
        print_json(found["items"])
        return
    print_table(
        ["KEY", "KIND", "OWNER", "LAST EVALUATED", "WHY"],
        (
            [s["key"], s["kind"], s["owner_team"], s["last_evaluated"], s["reason"]]
            for s in found["items"]
        ),
    )
