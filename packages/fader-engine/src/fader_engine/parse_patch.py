"""Validating a patched document by reading what the patch changed, not the whole document.

Why: an SDK applies a stream `patch` event (``docs/delivery-protocol.md``) to the document it
holds and must reject the result if it is invalid, as :func:`~fader_engine.parse.parse_document`
would. Parsing 5,000 flags to accept a change to one costs the CPU of the whole document in every
SDK process; the previous document was valid, so only what the patch touched can be wrong.

A patched document (:func:`fader_engine.patch.apply_patch`) is the previous one with some flag
and segment entries replaced, added or removed; :func:`parse_patched` requires every other
top-level field to be the same object (the caller parses the whole document when a patch
changes one). It is valid exactly when a full parse says so, and this module checks only what
the change can break:

* **bounds**: the replaced entries are walked (nesting, strings); sizes add up, so the document's
  size is the previous entries' size, less the old versions of the replaced entries, plus their
  new versions, plus the frame (top-level fields, entry keys) measured again;
* **keys and entries**: each new entry is parsed on its own, as a full parse does
  (a flag or a segment depends only on itself and on which segment keys exist);
* **references**: a removed segment must not be named by an entry that remains; prerequisites of
  the new flags, and of the flags naming a replaced or removed flag, must resolve;
* **cycles**: the previous document had none and unchanged entries name what they named, so a new
  cycle passes through a new entry: only what the new entries reach is searched.

When any check fails this module gives up (``None``) and the caller parses the whole document,
which reports every problem with its path: problems are worded in one place only.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from fader_engine.errors import ConfigurationError
from fader_engine.model import Document, Flag, Segment
from fader_engine.parse import (
    check_prerequisites,
    find_cycles,
    parse_bounded,
    parse_segment,
)
from fader_engine.parse_fields import Problems, check_key, child
from fader_engine.parse_flags import parse_flag
from fader_engine.parse_limits import MAX_DOCUMENT_SIZE, check_bounds, measure
from fader_engine.patch import ENTRY_MAPS
from fader_engine.references import References, prerequisite_keys, segments_named_by

__all__ = ["Parsed", "parse_patched", "parse_whole"]

_Entry = TypeVar("_Entry", Flag, Segment)


@dataclass(frozen=True, slots=True)
class Parsed:
    """A valid document with what validating it found, kept so that a patch of it is checked by
    what it changed."""

    data: Mapping[str, Any]
    """The JSON document (shared with the caller, never modified)."""
    document: Document
    flags: dict[str, Flag]
    segments: dict[str, Segment]
    """The entries of `document` as plain dictionaries, never modified: the next version
    copies them (in C; copying the document's read-only views goes key by key)."""
    references: References
    entries_size: int
    """Characters of compact JSON the values of its flag and segment entries take."""


def parse_whole(data: Any) -> Parsed:
    """Validate a whole document, as :func:`~fader_engine.parse.parse_document` does (one walk
    of it), and keep what a patch needs. Raises :class:`ConfigurationError`."""
    problems, size = measure(data)
    if problems or size > MAX_DOCUMENT_SIZE:
        raise ConfigurationError(check_bounds(data))
    document = parse_bounded(data)
    return Parsed(
        data,
        document,
        dict(document.flags),
        dict(document.segments),
        References.of(document),
        size - _frame_size(data),
    )


def parse_patched(
    previous: Parsed,
    data: Mapping[str, Any],
    flags: Sequence[str],
    segments: Sequence[str],
) -> Parsed | None:
    """`data` parsed, where `data` is ``previous.data`` with the entries named in `flags` and
    `segments` replaced, added or removed (in that order: the order of the patch) and its other
    top-level fields the same objects; ``None`` when it may be invalid, or is not such a
    document: the caller then parses it whole (:func:`parse_whole`), which says what is wrong."""
    if not _same_fields(previous.data, data):
        return None
    maps = {name: data.get(name, {}) for name in ENTRY_MAPS}
    if not all(isinstance(entries, Mapping) for entries in maps.values()):
        return None
    size = _entries_size(previous, maps, {"flags": flags, "segments": segments})
    if size is None or size + _frame_size(data) > MAX_DOCUMENT_SIZE:
        return None

    problems = Problems()
    segment_keys = maps["segments"].keys()
    new_segments = _replaced(
        previous.segments,
        segments,
        maps["segments"],
        lambda key, value: parse_segment(key, value, segment_keys, problems),
    )
    new_flags = _replaced(
        previous.flags,
        flags,
        maps["flags"],
        lambda key, value: parse_flag(key, value, child("/flags", key), segment_keys, problems),
    )
    if new_segments is None or new_flags is None or problems.items:
        return None
    document = Document(
        flags=MappingProxyType(new_flags),
        segments=MappingProxyType(new_segments),
        bucketing=previous.document.bucketing,
        metadata=previous.document.metadata,
    )
    references = previous.references.replaced(previous.document, document, flags, segments)

    for key in segments:
        if key not in new_segments and (
            key in references.flags_naming or key in references.segments_naming
        ):
            return None  # a remaining entry names a removed segment
    to_check = [key for key in flags if key in new_flags]
    for key in flags:
        to_check += references.prerequisite_of.get(key, ())
    check_prerequisites(new_flags, maps["flags"].keys(), problems, to_check)
    if problems.items:
        return None
    if _cycle_through(flags, new_flags, prerequisite_keys) or _cycle_through(
        segments, new_segments, segments_named_by
    ):
        return None
    return Parsed(data, document, new_flags, new_segments, references, size)


def _same_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether the top-level fields other than the entry maps are the same objects."""
    names = (before.keys() | after.keys()) - set(ENTRY_MAPS)
    return all(name in before and name in after and before[name] is after[name] for name in names)


def _entries_size(
    previous: Parsed, maps: Mapping[str, Mapping[str, Any]], changed: Mapping[str, Sequence[str]]
) -> int | None:
    """The entries' size after the change, or ``None`` when a new entry or key breaks a bound."""
    size = previous.entries_size
    problems = Problems()
    for name, keys in changed.items():
        before: Mapping[str, Any] = previous.data.get(name, {})
        what = name.removesuffix("s")
        for key in keys:
            at = child(f"/{name}", key)
            if not isinstance(key, str) or not check_key(key, at, what, problems):
                return None
            old, new = before.get(key), maps[name].get(key)
            if old is not None:
                size -= measure(old, (name, key))[1]
            if new is not None:
                found, new_size = measure(new, (name, key))
                if found:
                    return None
                size += new_size
    return size


def _frame_size(data: Mapping[str, Any]) -> int:
    """What :func:`~fader_engine.parse_limits.measure` finds in `data` besides the values of its
    flag and segment entries: top-level fields, and each entry map's brackets, commas and keys.

    An entry map holding ``n`` entries measures ``2 + n`` plus ``len(key) + 3`` for each key
    (quotes and colon) plus its values; the skeleton below counts the ``2``."""
    skeleton = {
        key: {} if key in ENTRY_MAPS and isinstance(value, Mapping) else value
        for key, value in data.items()
    }
    size = measure(skeleton)[1]
    for name in ENTRY_MAPS:
        entries = data.get(name)
        if isinstance(entries, Mapping):
            size += 4 * len(entries) + sum(map(len, entries))
    return size


def _replaced(
    before: dict[str, _Entry],
    keys: Iterable[str],
    raw: Mapping[str, Any],
    parse: Callable[[str, Any], _Entry | None],
) -> dict[str, _Entry] | None:
    """`before` with the entries `keys` parsed from `raw` (removed when absent there), in the
    order :func:`~fader_engine.patch.apply_patch` leaves them; ``None`` if one is invalid."""
    entries = before.copy()
    for key in keys:
        value = raw.get(key)
        if value is None:
            entries.pop(key, None)
            continue
        entry = parse(key, value)
        if entry is None:
            return None
        entries[key] = entry
    return entries


def _cycle_through(
    keys: Iterable[str],
    entries: Mapping[str, _Entry],
    names: Callable[[_Entry], Collection[str]],
) -> bool:
    """Whether a reference cycle runs through one of the entries `keys`: a cycle through an
    entry lies among what it reaches, so only that part of the graph is searched."""
    graph: dict[str, Collection[str]] = {}
    pending = [key for key in keys if key in entries]
    while pending:
        key = pending.pop()
        if key not in graph:
            graph[key] = names(entries[key])
            pending += (name for name in graph[key] if name in entries and name not in graph)
    return next(find_cycles(graph), None) is not None
