"""`fader export --project P [-o FILE] [--json]`: a project as a bundle file
(docs/backup-and-move.md), for a backup or to move it to another instance with
`fader import fader FILE --project P` there.

Without ``-o`` the bundle goes to standard output (``fader export -p shop > shop.json``). With
``-o`` it is written to FILE through a temporary file in the same directory and renamed into
place, so an interrupted export never leaves half a bundle under the name a restore would read;
a table (or ``--json``, the same as JSON) then says what the bundle holds.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from fader_server.cli.admin import Json, Project, Token, Url, connect, reported
from fader_server.cli.client import api_path
from fader_server.cli.eval import InputError
from fader_server.cli.output import note, print_json, print_table

Output = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write the bundle here instead of standard output."),
]


def summary(bundle: dict[str, Any]) -> dict[str, Any]:
    """What a bundle holds, counted: the answer to "did the backup get everything?"."""
    configurations = bundle.get("configurations") or {}
    return {
        "project": bundle["project"]["key"],
        "exported_at": bundle.get("exported_at"),
        "environments": len(bundle.get("environments") or []),
        "flags": len(bundle.get("flags") or []),
        "segments": len(bundle.get("segments") or []),
        "configurations": sum(len(c) for c in configurations.values()),
        "rollout_templates": len(bundle.get("rollout_templates") or []),
    }


def write_atomically(path: Path, text: str) -> None:
    """`text` into `path`, whole or not at all (temporary file, then rename)."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, staged = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise InputError(f"cannot write {str(path)!r}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(staged, path)
    except OSError as exc:
        Path(staged).unlink(missing_ok=True)
        raise InputError(f"cannot write {str(path)!r}: {exc.strerror}") from exc


@reported
def export_command(
    project: Project,
    output: Output = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Export a whole project (environments, flags, segments, configurations, templates)."""
    with connect(url, token) as api:
        bundle = api.get(api_path("projects", project, "export")).body
    text = json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    write_atomically(output, text)
    found = summary(bundle)
    if as_json:
        print_json({**found, "file": str(output)})
        return
    note(f"exported project {project} to {output}")
    print_table(
        ["ENVIRONMENTS", "FLAGS", "SEGMENTS", "CONFIGURATIONS", "TEMPLATES"],
        [
            [
                found["environments"],
                found["flags"],
                found["segments"],
                found["configurations"],
                found["rollout_templates"],
            ]
        ],
    )
