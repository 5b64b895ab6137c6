"""`fader eval`: evaluate a flag document locally, with no server.

This is the engine's command-line face: it reads a Fader or flagd document, validates it (the
engine's messages, non-zero exit on any problem) and prints resolutions as JSON, so it works both
for a person checking "what does this user get" and for scripts diffing two configurations over
a file of sample contexts.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from fader_engine import ConfigurationError, DocumentFormat, Engine, Resolution, load

EXIT_INVALID = 2

FormatOption = Annotated[
    str,
    typer.Option("--format", help="Document format: auto (detect), fader or flagd."),
]


class InputError(Exception):
    """Something the user supplied cannot be used; the message says what and where."""


def read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{what} {str(path)!r} is not valid JSON: {exc.msg} (line {exc.lineno}, "
            f"column {exc.colno})"
        ) from exc


def _parse_context(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where} is not valid JSON: {exc.msg} (column {exc.colno})") from exc
    if not isinstance(value, dict):
        raise InputError(
            f"{where} must be a JSON object such as "
            '{"targetingKey": "user-1", "email": "a@example.com"}'
        )
    return value


def _read_contexts(path: Path) -> list[dict[str, Any]]:
    """All contexts of a JSON-lines file, validated before anything is evaluated."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read contexts file {str(path)!r}: {exc.strerror}") from exc
    contexts = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            contexts.append(_parse_context(line, f"{path}:{number}"))
    return contexts


def _row(flag: str, index: int | None, result: Resolution) -> dict[str, Any]:
    row: dict[str, Any] = {"flag": flag}
    if index is not None:
        row["context_index"] = index
    row.update(
        value=result.value,
        variant=result.variant,
        reason=str(result.reason),
        error_code=None if result.error_code is None else str(result.error_code),
    )
    if result.error_message:
        row["error_message"] = result.error_message
    return row


def _evaluations(
    engine: Engine, flags: list[str], contexts: list[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    for index, context in enumerate(contexts):
        for flag in flags:
            yield _row(flag, index, engine.evaluate(flag, context))


def eval_command(
    file: Annotated[Path, typer.Argument(help="Flag document (Fader or flagd JSON).")],
    flag: Annotated[
        str | None, typer.Option("--flag", "-f", help="Flag key (default: every flag).")
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", "-c", help="Evaluation context as a JSON object.")
    ] = None,
    contexts: Annotated[
        Path | None,
        typer.Option("--contexts", help="JSON-lines file: one context object per line."),
    ] = None,
    document_format: FormatOption = "auto",
    bucketing: Annotated[
        str | None,
        typer.Option(help="Override the fractional bucketing algorithm: v2 or v3."),
    ] = None,
    timestamp: Annotated[
        float | None,
        typer.Option(help="Unix time seen by rules ($flagd.timestamp); default: now."),
    ] = None,
) -> None:
    """Evaluate flags of a document for one context or a file of contexts; print JSON."""
    try:
        if context is not None and contexts is not None:
            raise InputError("use either --context or --contexts, not both")
        if document_format not in {"auto", *DocumentFormat}:
            raise InputError(f"--format must be auto, fader or flagd, not {document_format!r}")
        if bucketing not in {None, "v2", "v3"}:
            raise InputError(f"--bucketing must be v2 or v3, not {bucketing!r}")
        data = read_json(file, "flag document")
        clock = (lambda: timestamp) if timestamp is not None else time.time
        engine = load(
            data,
            format=None if document_format == "auto" else document_format,
            clock=clock,
            bucketing=bucketing,
        )
        if flag is not None and flag not in engine:
            known = ", ".join(sorted(engine)[:20]) or "none"
            raise InputError(f"flag {flag!r} is not in {str(file)!r} (flags: {known})")
        if contexts is not None:
            items = _read_contexts(contexts)
        else:
            items = [_parse_context(context or "{}", "--context")]
    except ConfigurationError as exc:
        typer.echo(f"error: {file}: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from exc
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from exc

    flags = [flag] if flag is not None else sorted(engine)
    out = sys.stdout
    if contexts is None and flag is not None:
        out.write(json.dumps(_row(flag, None, engine.evaluate(flag, items[0])), indent=2) + "\n")
        return
    for row in _evaluations(engine, flags, items):
        out.write(json.dumps(row, separators=(",", ":")) + "\n")
