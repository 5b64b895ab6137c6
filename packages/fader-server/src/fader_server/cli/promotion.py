"""`fader environments compare A B` and `fader environments promote A B --flag x ...`.

``compare`` prints every flag whose configuration differs between two environments, with each
differing field in words (``--all`` adds the flags that are the same). ``promote`` proposes
copying the chosen flags' configurations from A to B as one change request, based on B's
current versions; it prints the request, which is reviewed and applied like any other
(``fader change-requests ...``). A promotion is always a change request, even where B does not
require them (there it is approved at once and waits only for someone to apply it).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fader_server.cli.admin import Json, Project, Token, Url, admin_command, connect
from fader_server.cli.client import api_path
from fader_server.cli.output import note, print_json, print_table

STATUS_WORDS = {
    "same": "same",
    "only_in_a": "only in {a}",
    "only_in_b": "only in {b}",
    "differs": "differs",
}

Source = Annotated[str, typer.Argument(help="Environment A (the source), e.g. staging.")]
Target = Annotated[str, typer.Argument(help="Environment B (the target), e.g. production.")]


def status_text(status: str, a: str, b: str) -> str:
    return STATUS_WORDS.get(status, status).format(a=a, b=b)


def comparison_rows(found: dict[str, Any], *, everything: bool) -> list[list[Any]]:
    """FLAG, STATUS, FIELD, A, B: one row per differing field (the flag named on its first)."""
    a, b = found["a"], found["b"]
    rows: list[list[Any]] = []
    for flag in found["flags"]:
        if flag["status"] == "same" and not everything:
            continue
        status = status_text(flag["status"], a, b)
        if not flag["changes"]:
            rows.append([flag["flag"], status, "", "", ""])
        for index, change in enumerate(flag["changes"]):
            first = index == 0
            rows.append(
                [
                    flag["flag"] if first else "",
                    status if first else "",
                    change["label"],
                    change["a"],
                    change["b"],
                ]
            )
    return rows


def compare(
    a: Source,
    b: Target,
    project: Project,
    everything: Annotated[
        bool, typer.Option("--all", help="Also list the flags that are the same in both.")
    ] = False,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Compare every flag's configuration in environment A with environment B."""
    with connect(url, token) as api:
        found = api.get(api_path("projects", project, "environments", a, "compare", b)).body
    if as_json:
        print_json(found)
        return
    counts = found["counts"]
    note(
        f"{a} → {b}: {counts['differs']} differ, {counts['only_in_a']} configured only in {a}, "
        f"{counts['only_in_b']} only in {b}, {counts['same']} the same"
    )
    bucketing = found["bucketing"]
    if bucketing[a] != bucketing[b]:
        note(f"bucketing differs: {a} uses {bucketing[a]}, {b} uses {bucketing[b]}")
    print_table(
        ["FLAG", "STATUS", "FIELD", a.upper(), b.upper()],
        comparison_rows(found, everything=everything),
    )


def promote(
    a: Source,
    b: Target,
    project: Project,
    flags: Annotated[
        list[str],
        typer.Option("--flag", help="A flag to promote (repeat for several).", show_default=False),
    ],
    title: Annotated[str, typer.Option(help="The change request's title.", show_default=False)],
    problem: Annotated[
        str, typer.Option(help="Why: the problem this promotion solves.", show_default=False)
    ],
    change: Annotated[
        str, typer.Option(help="What changes (default: written from the comparison).")
    ] = "",
    alternatives: Annotated[str, typer.Option(help="Alternatives considered.")] = "",
    rollback: Annotated[str, typer.Option(help="How it will be rolled back.")] = "",
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Propose copying flags' configurations from A to B as one change request."""
    body = {
        "from": a,
        "to": b,
        "flags": flags,
        "title": title,
        "proposal": {
            "problem": problem,
            "change": change,
            "alternatives": alternatives,
            "rollback": rollback,
        },
    }
    with connect(url, token) as api:
        created = api.post(api_path("projects", project, "promotions"), body).body
    if as_json:
        print_json(created)
        return
    note(
        f"proposed change request {created['id']} ({created['status']}): "
        f"{len(created['operations'])} flag(s) from {a} to {b}"
    )
    print_table(
        ["TARGET", "BASE VERSION"],
        ([op["target"], op["base_version"]] for op in created["operations"]),
    )


def register(app: typer.Typer) -> None:
    """Add `compare` and `promote` to `fader environments`."""
    admin_command(app, "compare")(compare)
    admin_command(app, "promote")(promote)
