"""The `fader` command: one Typer app; each command group lives in its own module."""

from __future__ import annotations

import typer

from fader_server.cli import (
    db,
    environments,
    flagd,
    flags,
    projects,
    rollouts,
    segments,
    tokens,
    users,
)
from fader_server.cli.eval import eval_command
from fader_server.cli.serve import serve_command

app = typer.Typer(
    name="fader",
    help="Fader: feature flags and progressive delivery.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("eval")(eval_command)
app.command("serve")(serve_command)
app.add_typer(db.app, name="db")
app.add_typer(flagd.app, name="flagd")
app.add_typer(users.app, name="users")
for _name, _group in (
    ("projects", projects),
    ("environments", environments),
    ("flags", flags),
    ("segments", segments),
    ("tokens", tokens),
    ("rollouts", rollouts),
):
    app.add_typer(_group.app, name=_name)


@app.callback()
def _root() -> None:
    """Fader: feature flags and progressive delivery."""


def main() -> None:
    app()
