"""A LaunchDarkly flag's variations as Fader variants, and the answers they stand for.

LaunchDarkly serves variations by index; Fader serves variants by name. Each variation gets one
variant named after its value when that reads well (``true``/``false``, a short identifier-like
string, an integer), else ``variation-N``; the parity check compares answers in LaunchDarkly's
terms, ``Answer(value, str(index))``, so the names are cosmetic.

A rollout may list one variation twice with others between (``a 30%, b 40%, a 30%``); a Fader
split lists each variant once, so the second occurrence gets an *alias*: another variant with
the same value and the same answer (``a-2``).
"""

from __future__ import annotations

import re
from typing import Any

from fader_server.migration.model import Answer

_READABLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)


def value_type(values: list[Any]) -> str | None:
    """Fader's flag type for these values, or ``None`` when they have none in common."""
    kinds = set()
    for value in values:
        if isinstance(value, bool):
            kinds.add("boolean")
        elif isinstance(value, int | float):
            kinds.add("number")
        elif isinstance(value, str):
            kinds.add("string")
        elif isinstance(value, dict | list):
            kinds.add("object")
        else:
            return None
    return kinds.pop() if len(kinds) == 1 else None


def _readable(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and _READABLE.fullmatch(value):
        return value
    return None


class Variants:
    """The variants of one flag: a name per variation index, plus aliases made on demand."""

    def __init__(self, variations: list[Any]) -> None:
        self.values = variations
        readable = [_readable(v) for v in variations]
        self._names: list[str] = []
        taken: set[str] = set()
        for index, wanted in enumerate(readable):
            name = wanted
            if name is None or readable.count(name) > 1 or name.startswith("variation-"):
                name = f"variation-{index}"
            while name in taken:
                name += "-"
            taken.add(name)
            self._names.append(name)
        self._aliases: dict[tuple[int, int], str] = {}
        self._taken = taken

    def __len__(self) -> int:
        return len(self.values)

    def name(self, index: int, occurrence: int = 0) -> str:
        """The variant serving variation `index`; `occurrence` > 0 asks for an alias."""
        if occurrence == 0:
            return self._names[index]
        alias = self._aliases.get((index, occurrence))
        if alias is None:
            alias = f"{self._names[index]}-{occurrence + 1}"
            while alias in self._taken:
                alias += "-"
            self._taken.add(alias)
            self._aliases[(index, occurrence)] = alias
        return alias

    def names_of(self, index: int) -> list[str]:
        """Every variant serving variation `index` (the variant and its aliases)."""
        aliases = sorted((o, name) for (i, o), name in self._aliases.items() if i == index)
        return [self._names[index], *(name for _, name in aliases)]

    def document(self) -> dict[str, Any]:
        out = {name: self.values[i] for i, name in enumerate(self._names)}
        for (index, _), alias in sorted(self._aliases.items()):
            out[alias] = self.values[index]
        return out

    def answers(self) -> dict[str, Answer]:
        out = {name: Answer(self.values[i], str(i)) for i, name in enumerate(self._names)}
        for (index, _), alias in self._aliases.items():
            out[alias] = Answer(self.values[index], str(index))
        return out
