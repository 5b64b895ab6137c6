"""The `fader` command: one Typer app; each command group lives in its own module."""

from __future__ import annotations

from typing import Annotated

import typer

from fader_server.__about__ import __version__
from fader_server.cli.lazy import LazyCommand, LazyGroup

_CLI = "fader_server.cli."


class FaderGroup(LazyGroup):
    """The root group: each command's module is imported only when that command runs."""

    lazy_commands = (
        LazyCommand(
            "serve",
            _CLI + "serve:serve_command",
            "Run the Fader server: admin API on /api/v1, docs on /docs.",
        ),
        LazyCommand(
            "eval",
            _CLI + "eval:eval_command",
            "Evaluate flags of a document for one context or a file of contexts; print JSON.",
        ),
        LazyCommand(
            "login",
            _CLI + "login:login_command",
            "Log in to a Fader server and keep its token for the next commands.",
        ),
        LazyCommand(
            "logout",
            _CLI + "login:logout_command",
            "Forget the token kept for a "
            "server (and revoke it there, if `fader login` created it).",
        ),
        LazyCommand("db", _CLI + "db:app", "Database maintenance."),
        LazyCommand(
            "export",
            _CLI + "export:export_command",
            "Export a whole project (environments, flags, segments, configurations, templates).",
        ),
        LazyCommand(
            "import",
            _CLI + "imports:import_command",
            "Import flags from LaunchDarkly, Unleash, flagd or a Fader bundle, verified.",
        ),
        LazyCommand(
            "flagd",
            _CLI + "flagd:app",
            "Convert flag documents between flagd's format and Fader's.",
        ),
        LazyCommand("users", _CLI + "users:app", "User accounts, on the server's host."),
        LazyCommand(
            "projects",
            _CLI + "projects:app",
            "Projects: each has its own environments, flags and segments.",
        ),
        LazyCommand(
            "environments",
            _CLI + "environments:app",
            "Environments of a project (development, staging, production...).",
        ),
        LazyCommand(
            "flags",
            _CLI + "flags:app",
            "Flags: definitions, per-environment configuration, kill switch, history, usage.",
        ),
        LazyCommand(
            "segments",
            _CLI + "segments:app",
            "Segments: reusable audiences referenced by flag rules (in_segment).",
        ),
        LazyCommand(
            "tokens", _CLI + "tokens:app", "API tokens, SDK (server) keys and client keys."
        ),
        LazyCommand(
            "rollouts",
            _CLI + "rollouts:app",
            "Guarded rollouts: release plans that "
            "advance on healthy metrics and roll back on regressions.",
        ),
        LazyCommand(
            "change-requests",
            _CLI + "change_requests:app",
            "Change requests: propose, review and apply changes to protected environments.",
        ),
        LazyCommand(
            "schedules",
            _CLI + "change_requests:schedules_app",
            "Scheduled changes: change requests applied at a set time.",
        ),
        LazyCommand(
            "incidents",
            _CLI + "incidents:app",
            "Incidents: acknowledge, resolve, and a post-mortem with at most three action items.",
        ),
        LazyCommand(
            "webhooks",
            _CLI + "webhooks:app",
            "Webhooks: signed, Slack-compatible notifications of a project's changes.",
        ),
    )


app = typer.Typer(
    name="fader",
    cls=FaderGroup,
    help="Fader: feature flags and progressive delivery.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Rich help would import rich (a quarter of a second) for `fader --help` alone; the
    # commands' help is plain too (lazy.load), so all of it looks alike.
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"fader {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Fader: feature flags and progressive delivery."""


def main() -> None:
    app()
