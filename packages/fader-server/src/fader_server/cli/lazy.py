"""Commands of `fader` that are imported only when they run.

Why: a command module imports what its command needs (`serve` the whole server: FastAPI,
SQLAlchemy, uvicorn; the admin commands httpx), and importing all of them made every call of
`fader`, even `fader --help`, take seconds. The root group lists each command from a
:class:`LazyCommand` (its name, where it lives, its one-line help) and imports the module only
when that command is the one being run, or its own help is asked for.

The one-line help is written here, next to the name, so `fader --help` needs no import;
``tests/test_cli_startup.py`` checks that it is the first line of the command's own help.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
import typer.core
import typer.main


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """A command of the root group: `target` is ``"module:attribute"``, naming a
    :class:`typer.Typer` (a group of subcommands) or a command function."""

    name: str
    target: str
    help: str


def load(entry: LazyCommand) -> Any:
    """Import `entry`'s module and build its click command (a group for a Typer app)."""
    module_name, _, attribute = entry.target.partition(":")
    found = getattr(importlib.import_module(module_name), attribute)
    if isinstance(found, typer.Typer):
        command: Any = typer.main.get_group(found)
    else:
        single = typer.Typer(add_completion=False)
        single.command(entry.name)(found)
        command = typer.main.get_command(single)
    command.name = entry.name
    _plain_help(command)
    return command


def _plain_help(command: Any) -> None:
    """Format the help of `command` and its subcommands as click does, not through rich:
    typer's rich help imports rich's markdown and traceback modules, which cost more than the
    rest of `fader serve --help` together, and `fader --help` is plain for the same reason."""
    command.rich_markup_mode = None
    for subcommand in getattr(command, "commands", {}).values():
        _plain_help(subcommand)


class LazyGroup(typer.core.TyperGroup):
    """A Typer group whose `lazy_commands` are listed by name and one-line help, and imported
    only when resolved to be run (subclasses set `lazy_commands`)."""

    lazy_commands: ClassVar[tuple[LazyCommand, ...]] = ()

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._pending = {entry.name: entry for entry in self.lazy_commands}
        for entry in self.lazy_commands:
            # A stand-in with the help `fader --help` lists; never run (resolved first).
            self.commands.setdefault(
                entry.name, typer.core.TyperCommand(entry.name, help=entry.help)
            )

    # `ctx` is click's Context, which typer vendors under a private name: typed loosely here.
    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        entry = self._pending.pop(args[0], None) if args else None
        if entry is not None:
            self.commands[entry.name] = load(entry)
        return super().resolve_command(ctx, args)
