"""The systems Fader imports from, by the name `fader import SOURCE` and the API take.

Each system's module exposes ``SOURCE`` (a :class:`SourceSystem`). They are imported when first
asked for, not with this module: a translator's own imports (and a broken or absent one) then
cost only the imports that use it, and the list of names stays valid everywhere.
"""

from __future__ import annotations

import importlib

from fader_server.migration.model import SourceSystem

MODULES = {
    "launchdarkly": "fader_server.migration.launchdarkly",
    "unleash": "fader_server.migration.unleash",
    "flagd": "fader_server.migration.flagd_source",
}
NAMES = tuple(MODULES)


class UnknownSourceError(LookupError):
    """No such source system, or its translator is not part of this installation."""


def get(name: str, *, bucketing: str | None = None) -> SourceSystem:
    """The source system called `name`. `bucketing` (``v2``/``v3``) picks flagd's fractional
    algorithm for its splits; the other systems carry their own bucketing in every split."""
    module_name = MODULES.get(name)
    if module_name is None:
        raise UnknownSourceError(f"unknown source {name!r}; one of {', '.join(NAMES)}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownSourceError(
            f"importing from {name} is not available in this installation ({exc})"
        ) from exc
    if name == "flagd" and bucketing is not None:
        made = module.source(bucketing)
        assert isinstance(made, SourceSystem)
        return made
    found = getattr(module, "SOURCE", None)
    if not isinstance(found, SourceSystem):
        raise UnknownSourceError(f"importing from {name} is not available in this installation")
    return found
