"""`fader import SOURCE FILE`: move flags from LaunchDarkly, Unleash, flagd or another Fader
into a project, verified (docs/migration.md).

With a server (the default), the document is sent to ``POST /api/v1/projects/{p}/imports``:
the server translates it into the environment, verifies it with the source system's own SDK
on the contexts of ``--verify CONTEXTS.jsonl`` (or ``--generate-contexts N`` derived from the
rules), refuses below 100% agreement unless ``--accept-differences``, and writes it in one
transaction. ``--output FILE`` works without a server: translate, verify locally, write the
Fader document (``fader flagd import`` is this, for flagd, without the verification).

Printed: a summary, the constructs that could not be imported, and the parity table with each
disagreement (the context, both answers and why). Exit status: 0 imported (or a dry run), 1
refused by the verification or the server, 2 unusable input.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from fader_server.cli import logins
from fader_server.cli.admin import EXIT_FAILED, Json, Token, Url
from fader_server.cli.client import AdminApi, AdminApiError, ProblemError, api_path
from fader_server.cli.eval import EXIT_INVALID, InputError, read_json
from fader_server.cli.output import describe_error, note, print_heading, print_json, print_table

SOURCES = ("launchdarkly", "unleash", "flagd", "fader")
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
"""Largest source document read (the server's own body limit applies when it is sent)."""
VERIFY_TIMEOUT = 600.0
"""Seconds to wait for the server: a verification evaluates every flag for every context."""


def _bounded_lines(file: IO[str], limit: int) -> Iterator[str]:
    """Lines of `file`, each read at most `limit` + 1 characters at a time (a line with no end
    is never held whole: the reader refuses it as too long)."""
    while True:
        line = file.readline(limit + 1)
        if not line:
            return
        yield line


def read_contexts(path: Path) -> list[dict[str, Any]]:
    from fader_server.migration import contexts  # noqa: PLC0415 - only when verifying

    try:
        with path.open(encoding="utf-8") as file:
            return contexts.read_jsonl(
                _bounded_lines(file, contexts.MAX_LINE_CHARS), name=str(path)
            )
    except OSError as exc:
        raise InputError(f"cannot read contexts file {str(path)!r}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"contexts file {str(path)!r} is not UTF-8 text") from exc
    except contexts.ContextsError as exc:
        raise InputError(str(exc)) from exc


def read_document(path: Path, what: str) -> Any:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from exc
    if size > MAX_DOCUMENT_BYTES:
        raise InputError(f"{what} {str(path)!r} is larger than {MAX_DOCUMENT_BYTES:,} bytes")
    try:
        return read_json(path, what)
    except RecursionError as exc:
        raise InputError(f"{what} {str(path)!r} nests too deeply") from exc


# ------------------------------------------------------------------------------ printing
def _keys(found: Mapping[str, Any] | None) -> str:
    found = found or {}
    flags, segments = len(found.get("flags") or []), len(found.get("segments") or [])
    return f"{flags} flag(s), {segments} segment(s)"


def _answer(answer: Mapping[str, Any]) -> str:
    if answer.get("variant") is None:
        return f"(default) {answer.get('detail', '')}".strip()
    value = json.dumps(answer.get("value"), ensure_ascii=False)
    return f"{answer['variant']} = {value}"


def print_parity(parity: Mapping[str, Any]) -> None:
    print_heading(
        f"Parity: {parity['agreed']} of {parity['agreed'] + parity['disagreed']} evaluations "
        f"agree ({parity['agreement']:.2%}) over {parity['contexts']} contexts"
    )
    rows = []
    for row in parity["flags"]:
        decided = row["agreed"] + row["disagreed"]
        share = 1.0 if decided == 0 else row["agreed"] / decided
        rows.append(
            [
                row["flag"],
                row["contexts"],
                row["agreed"],
                row["disagreed"],
                row["nondeterministic"],
                f"{share:.2%}",
            ]
        )
    print_table(["FLAG", "CONTEXTS", "AGREED", "DISAGREED", "NONDETERMINISTIC", "AGREEMENT"], rows)
    examples = [(row["flag"], ex) for row in parity["flags"] for ex in row["examples"]]
    if examples:
        print_heading("Disagreements (the first of each flag)")
        print_table(
            ["FLAG", "CONTEXT", "SOURCE ANSWER", "FADER ANSWER", "REASONS"],
            (
                [
                    flag,
                    ex["context"],
                    _answer(ex["source"]),
                    _answer(ex["fader"]),
                    f"source: {ex['source'].get('detail', '')}; "
                    f"fader: {ex['fader'].get('detail', '')}",
                ]
                for flag, ex in examples
            ),
        )


def print_report(report: Mapping[str, Any]) -> None:
    """The import report for a person: summary, unsupported constructs, parity."""
    if report.get("source") == "fader":
        print_json(report)  # a bundle's report is per environment; JSON says it whole
        return
    verb = "would import" if report.get("dry_run") or not report.get("written") else "imported"
    where = f"{report['source']} → {report['environment']}"
    note(
        f"{where}: {verb}; created {_keys(report['created'])}, "
        f"updated {_keys(report['updated'])}, unchanged {_keys(report['unchanged'])}"
    )
    for source_key, fader_key in (report.get("keys") or {}).items():
        note(f"  {source_key} is imported as {fader_key}")
    for line in report.get("notes") or []:
        note(f"note: {line}")
    unsupported = report.get("unsupported") or []
    if unsupported:
        print_heading(f"Not imported ({len(unsupported)} construct(s) with no exact equivalent)")
        print_table(
            ["FLAG", "SEGMENT", "CONSTRUCT", "WHY"],
            ([u.get("flag"), u.get("segment"), u["construct"], u["detail"]] for u in unsupported),
        )
    if report.get("parity") is not None:
        print_parity(report["parity"])
    elif not report.get("dry_run"):
        note("not verified: give --verify CONTEXTS.jsonl or --generate-contexts N to prove parity")


# ------------------------------------------------------------------------------ modes
def _offline(
    source: str,
    document: Any,
    environment: str,
    contexts: list[dict[str, Any]] | None,
    generate: int | None,
    bucketing: str,
    accept: bool,
    output: Path,
    dry_run: bool,
) -> dict[str, Any]:
    """Translate and verify here; write the Fader document unless refused (or a dry run)."""
    from fader_server.migration import contexts as context_tools  # noqa: PLC0415
    from fader_server.migration import sources  # noqa: PLC0415
    from fader_server.migration.model import (  # noqa: PLC0415
        SourceContextError,
        SourceDocumentError,
        SourceSDKMissingError,
    )
    from fader_server.migration.parity import check_parity  # noqa: PLC0415

    if source == "fader":
        raise InputError("a Fader bundle is imported into a server; leave out --output")
    try:
        translation = sources.get(source, bucketing=bucketing).translate(document, environment)
        if contexts is None and generate is not None:
            contexts = context_tools.generate(translation.document, generate)
        parity = None
        if contexts is not None:
            evaluator = sources.get(source).evaluator(document)
            try:
                parity = check_parity(translation, evaluator, contexts, clock=time.time)
            finally:
                evaluator.close()
    except (
        SourceDocumentError,
        SourceContextError,
        sources.UnknownSourceError,
        context_tools.ContextsError,
    ) as exc:
        raise InputError(str(exc)) from exc
    except SourceSDKMissingError as exc:
        note(f"error: {exc}")
        raise typer.Exit(EXIT_FAILED) from exc
    flags = list(translation.document.get("flags") or {})
    segments = list(translation.document.get("segments") or {})
    refused = parity is not None and not parity.complete and not accept
    report = {
        "source": source,
        "environment": environment,
        "dry_run": dry_run,
        "created": {"flags": flags, "segments": segments},
        "updated": {"flags": [], "segments": []},
        "unchanged": {"flags": [], "segments": []},
        "keys": {k: v for k, v in translation.keys.items() if k != v},
        "unsupported": [u.as_json() for u in translation.unsupported],
        "notes": list(translation.notes),
        "parity": None if parity is None else parity.as_json(),
        "refused": refused,
        "written": not refused and not dry_run,
    }
    if report["written"]:
        text = json.dumps(translation.document, indent=2, ensure_ascii=False) + "\n"
        output.write_text(text, encoding="utf-8")
    return report


def import_command(
    source: Annotated[str, typer.Argument(help="launchdarkly, unleash, flagd or fader.")],
    file: Annotated[Path, typer.Argument(help="The source document (JSON; a bundle for 'fader').")],
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", envvar="FADER_PROJECT", help="Project to import into."),
    ] = None,
    environment: Annotated[
        str | None,
        typer.Option("--environment", "--env", "-e", help="Environment to import into."),
    ] = None,
    verify: Annotated[
        Path | None,
        typer.Option(
            "--verify", help="Contexts to verify with: JSON lines, one context object per line."
        ),
    ] = None,
    generate: Annotated[
        int | None,
        typer.Option(
            "--generate-contexts",
            min=1,
            max=10_000,
            help="Verify with this many contexts generated from the rules.",
        ),
    ] = None,
    accept: Annotated[
        bool,
        typer.Option("--accept-differences", help="Import even if verification finds differences."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Translate and verify; write nothing.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="No server: translate, verify here, write the Fader document."
        ),
    ] = None,
    bucketing: Annotated[
        str, typer.Option(help="flagd with --output: its fractional algorithm, v2 or v3.")
    ] = "v2",
    comment: Annotated[
        str | None, typer.Option("--comment", "-m", help="Why: recorded in the audit log.")
    ] = None,
    as_json: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Import flags from LaunchDarkly, Unleash, flagd or a Fader bundle, verified."""
    try:
        if source not in SOURCES:
            raise InputError(f"SOURCE must be one of {', '.join(SOURCES)}, not {source!r}")
        if verify is not None and generate is not None:
            raise InputError("give --verify or --generate-contexts, not both")
        if bucketing not in ("v2", "v3"):
            raise InputError(f"--bucketing must be v2 or v3, not {bucketing!r}")
        document = read_document(file, "bundle" if source == "fader" else f"{source} document")
        contexts = None if verify is None else read_contexts(verify)
        if output is not None:
            report = _offline(
                source,
                document,
                environment or "offline",
                contexts,
                generate,
                bucketing,
                accept,
                output,
                dry_run,
            )
        else:
            if project is None:
                raise InputError("name the project: --project P (or FADER_PROJECT)")
            if environment is None and source != "fader":
                raise InputError("name the environment to import into: --environment E")
            report = _online(
                project,
                source,
                environment,
                document,
                contexts,
                generate,
                accept,
                dry_run,
                comment,
                url,
                token,
            )
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from exc
    except ProblemError as exc:
        refused = exc.body.get("report")
        if isinstance(refused, Mapping):
            if as_json:
                print_json(exc.body)
            else:
                print_report(refused)
        for line in describe_error(exc):
            typer.echo(line, err=True)
        raise typer.Exit(EXIT_FAILED) from exc
    except AdminApiError as exc:
        for line in describe_error(exc):
            typer.echo(line, err=True)
        raise typer.Exit(EXIT_FAILED) from exc
    if as_json:
        print_json(report)
    else:
        print_report(report)
    if report.get("refused"):
        note("error: verification found differences; nothing was written (--accept-differences)")
        raise typer.Exit(EXIT_FAILED)
    if output is not None and report.get("written"):
        note(f"wrote {output}")


def _online(
    project: str,
    source: str,
    environment: str | None,
    document: Any,
    contexts: list[dict[str, Any]] | None,
    generate: int | None,
    accept: bool,
    dry_run: bool,
    comment: str | None,
    url: str | None,
    token: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": source,
        "document": document,
        "accept_differences": accept,
        "dry_run": dry_run,
    }
    optional = {
        "environment": environment,
        "contexts": contexts,
        "generate_contexts": generate,
        "comment": comment,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    with AdminApi(*logins.resolve(url, token), timeout=VERIFY_TIMEOUT) as api:
        reply = api.post(api_path("projects", project, "imports"), body)
    found: dict[str, Any] = reply.body
    return found
