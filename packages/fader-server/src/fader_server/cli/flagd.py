"""`fader flagd import|export`: convert between flagd's format and Fader's, offline.

Conversions are exact or refused: the engine lists every construct that has no equivalent, with
its location, and nothing is written (exit status 2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fader_engine import ConfigurationError
from fader_engine.flagd import validate_flagd
from fader_engine.flagd.export import to_flagd
from fader_engine.flagd.importer import flagd_to_fader
from fader_engine.parse import parse_document
from fader_server.cli.eval import EXIT_INVALID, InputError, read_json

app = typer.Typer(help="Convert flag documents between flagd's format and Fader's.")

Output = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write here instead of standard output.")
]


def _emit(document: object, output: Path | None) -> None:
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="flagd flag-definition document (JSON).")],
    bucketing: Annotated[
        str, typer.Option(help="Fractional algorithm the flagd deployment uses: v2 or v3.")
    ] = "v2",
    output: Output = None,
) -> None:
    """Print the Fader document equivalent to a flagd document.

    Offline and all-or-nothing: any flag without an exact equivalent refuses the document.
    `fader import flagd FILE` is the full command: it imports into a server (or, with
    --output, writes the document) flag by flag, lists what it left out, and verifies the
    result with flagd's own provider (--verify CONTEXTS.jsonl or --generate-contexts N).
    """
    try:
        if bucketing not in {"v2", "v3"}:
            raise InputError(f"--bucketing must be v2 or v3, not {bucketing!r}")
        data = read_json(file, "flagd document")
        problems = validate_flagd(data)
        if problems:
            raise ConfigurationError(problems)
        _emit(flagd_to_fader(data, bucketing=bucketing), output)
    except ConfigurationError as exc:
        typer.echo(f"error: {file}: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from exc
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from exc


@app.command("export")
def export_command(
    file: Annotated[Path, typer.Argument(help="Fader document (JSON).")],
    output: Output = None,
) -> None:
    """Print the flagd document equivalent to a Fader document."""
    try:
        _emit(to_flagd(parse_document(read_json(file, "flag document"))), output)
    except ConfigurationError as exc:
        typer.echo(f"error: {file}: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from exc
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from exc
