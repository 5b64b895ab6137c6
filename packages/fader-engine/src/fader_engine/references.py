"""Who names whom in a document: flags name flags (prerequisites), flags and segments name
segments (``in_segment`` clauses).

Validation needs the forward direction (a reference must resolve, and no chain may loop); a
patch needs the reverse one: when it replaces or removes an entry, the entries that name it
are the ones to check again (:mod:`fader_engine.parse_patch`) or to compile again
(:mod:`fader_engine.compile`). :class:`References` keeps the reverse direction with a document
and updates it entry by entry, so a patch finds them without reading every flag.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from fader_engine.model import Clause, Document, Flag, Operator, Segment

__all__ = ["References", "prerequisite_keys", "segments_named_by"]

Index = Mapping[str, frozenset[str]]
"""An entry key to the keys of the entries that name it."""

_EMPTY: frozenset[str] = frozenset()


def _named_in(clauses: Iterable[Clause]) -> frozenset[str]:
    return frozenset(
        str(value)
        for clause in clauses
        if clause.op is Operator.IN_SEGMENT
        for value in clause.values
    )


def segments_named_by(entry: Flag | Segment) -> frozenset[str]:
    """The segments `entry`'s rules name in ``in_segment`` clauses."""
    return _named_in(clause for rule in entry.rules for clause in rule.clauses)


def prerequisite_keys(flag: Flag) -> tuple[str, ...]:
    """The flags `flag` names as prerequisites, in order."""
    return tuple(p.flag for p in flag.prerequisites)


def _index(edges: Iterable[tuple[str, Iterable[str]]]) -> Index:
    index: dict[str, set[str]] = {}
    for source, targets in edges:
        for target in targets:
            index.setdefault(target, set()).add(source)
    return MappingProxyType({key: frozenset(users) for key, users in index.items()})


def _moved(index: Index, changes: Iterable[tuple[str, Collection[str], Collection[str]]]) -> Index:
    """`index` with each (source, old targets, new targets) edge set replaced; untouched keys
    keep their sets (the index is copied, never modified: an older document still uses it)."""
    updated: dict[str, frozenset[str]] | None = None
    for source, old, new in changes:
        if old == new:
            continue
        if updated is None:
            updated = dict(index)
        for target in set(old) - set(new):
            users = updated.get(target, _EMPTY) - {source}
            if users:
                updated[target] = users
            else:
                updated.pop(target, None)
        for target in set(new) - set(old):
            updated[target] = updated.get(target, _EMPTY) | {source}
    return index if updated is None else MappingProxyType(updated)


@dataclass(frozen=True, slots=True)
class References:
    """The reverse references of one document. Immutable: :meth:`replaced` makes a new one."""

    prerequisite_of: Index
    """A flag key to the flags that name it as a prerequisite."""
    flags_naming: Index
    """A segment key to the flags whose rules name it."""
    segments_naming: Index
    """A segment key to the segments whose rules name it."""

    @classmethod
    def of(cls, document: Document) -> References:
        flags = document.flags.items()
        return cls(
            prerequisite_of=_index((key, prerequisite_keys(flag)) for key, flag in flags),
            flags_naming=_index((key, segments_named_by(flag)) for key, flag in flags),
            segments_naming=_index(
                (key, segments_named_by(segment)) for key, segment in document.segments.items()
            ),
        )

    def replaced(
        self,
        before: Document,
        after: Document,
        flags: Collection[str],
        segments: Collection[str],
    ) -> References:
        """The references of `after`, which is `before` with the entries `flags` and `segments`
        replaced, added or removed (and every other entry the same)."""

        def flag_edges(document: Document, key: str) -> tuple[tuple[str, ...], frozenset[str]]:
            flag = document.flags.get(key)
            return (
                ((), _EMPTY) if flag is None else (prerequisite_keys(flag), segments_named_by(flag))
            )

        def segment_edges(document: Document, key: str) -> frozenset[str]:
            segment = document.segments.get(key)
            return _EMPTY if segment is None else segments_named_by(segment)

        old_flags = {key: flag_edges(before, key) for key in flags}
        new_flags = {key: flag_edges(after, key) for key in flags}
        return References(
            prerequisite_of=_moved(
                self.prerequisite_of,
                ((key, old_flags[key][0], new_flags[key][0]) for key in flags),
            ),
            flags_naming=_moved(
                self.flags_naming, ((key, old_flags[key][1], new_flags[key][1]) for key in flags)
            ),
            segments_naming=_moved(
                self.segments_naming,
                ((key, segment_edges(before, key), segment_edges(after, key)) for key in segments),
            ),
        )

    def segments_depending_on(self, segments: Iterable[str]) -> set[str]:
        """`segments` and every segment that names one of them, directly or through others."""
        found = set(segments)
        pending = list(found)
        while pending:
            for user in self.segments_naming.get(pending.pop(), _EMPTY):
                if user not in found:
                    found.add(user)
                    pending.append(user)
        return found

    def flags_naming_any(self, segments: Iterable[str]) -> set[str]:
        """The flags whose rules name at least one of `segments`."""
        found: set[str] = set()
        for segment in segments:
            found |= self.flags_naming.get(segment, _EMPTY)
        return found
