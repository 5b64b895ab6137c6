"""Reading the flag data a LaunchDarkly server SDK consumes, in the three shapes it comes in.

* the file data source's document ``{"flags": {...}, "segments": {...}, "flagValues": {...}}``
  (also what the Relay Proxy's ``/sdk/latest-all`` answers);
* the streaming ``put`` event ``{"path": "/", "data": {"flags": ..., "segments": ...}}``;
* the file data source's shorthand ``flagValues`` (key to value), which the SDK turns into an
  "on" flag with one variation served to everyone: :func:`flag_from_value` builds exactly that.

The translator and the SDK evaluator both read the document through :func:`read_document`, so
they see the same flags under the same keys: an item's key is the key it is stored under (the
SDK keys items by their own ``key`` field, which LaunchDarkly always sets to the same string;
the evaluator writes it so for items that lack it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fader_server.migration.model import JSON, SourceDocumentError

MAX_ITEMS = 10_000
"""Flags (and, separately, segments) in one import: far more than any LaunchDarkly project."""


@dataclass(frozen=True, slots=True)
class LDData:
    """The flags and segments of one LaunchDarkly environment, each keyed by its key."""

    flags: Mapping[str, Any]
    segments: Mapping[str, Any]


def flag_from_value(key: str, value: Any) -> JSON:
    """The flag the SDK's file data source makes of a ``flagValues`` entry."""
    return {
        "key": key,
        "version": 1,
        "on": True,
        "fallthrough": {"variation": 0},
        "variations": [value],
    }


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = data.get(name)
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise SourceDocumentError(f'"{name}" must be an object of key to {name[:-1]}')
    if len(section) > MAX_ITEMS:
        raise SourceDocumentError(f'"{name}" has more than {MAX_ITEMS:,} entries')
    return section


def read_document(data: Any) -> LDData:
    """The flags and segments of `data`; :class:`SourceDocumentError` if it is not LD data."""
    if isinstance(data, Mapping) and "data" in data and "flags" not in data:
        # A streaming "put" event (path "/") carries the same object under "data".
        if data.get("path", "/") != "/":
            raise SourceDocumentError(
                'a streaming event must be a "put" of the whole store (path "/"), not a patch'
            )
        data = data["data"]
    if not isinstance(data, Mapping) or not any(
        name in data for name in ("flags", "segments", "flagValues")
    ):
        raise SourceDocumentError(
            'LaunchDarkly flag data is a JSON object with "flags" and "segments" (the SDK file '
            'data source or Relay Proxy format), a streaming put {"path": "/", "data": ...}, or '
            'a "flagValues" object'
        )
    flags: dict[str, Any] = {str(k): v for k, v in _section(data, "flags").items()}
    for key, value in _section(data, "flagValues").items():
        if str(key) in flags:
            raise SourceDocumentError(
                f'flag "{key}" is in both "flags" and "flagValues" (the SDK refuses that too)'
            )
        flags[str(key)] = flag_from_value(str(key), value)
    if len(flags) > MAX_ITEMS:
        raise SourceDocumentError(f"the document has more than {MAX_ITEMS:,} flags")
    segments = {str(k): v for k, v in _section(data, "segments").items()}
    return LDData(flags=flags, segments=segments)


def sdk_document(ld: LDData) -> JSON:
    """What the SDK's file data source reads: every item carrying its key and a version."""

    def item(key: str, raw: Any) -> Any:
        if not isinstance(raw, Mapping):
            return raw
        return {**raw, "key": key, "version": raw.get("version", 1)}

    return {
        "flags": {k: item(k, v) for k, v in ld.flags.items()},
        "segments": {k: item(k, v) for k, v in ld.segments.items()},
    }
