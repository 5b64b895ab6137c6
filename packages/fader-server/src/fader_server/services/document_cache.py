"""Validated environment documents by revision, so a configuration write checks what it changes.

Why: every configuration write must leave its environment's document valid
(:mod:`fader_server.services.documents`). Rebuilding that document from storage and parsing it
whole costs a read of every flag, configuration and segment of the project and a parse of all of
them: 4 ms of a 9 ms write at 50 flags, growing with the project, while the write touches one
flag. The engine validates a document with some entries replaced by what changed
(:func:`fader_engine.parse_patch.parse_patched`, equivalent to a whole parse, property-tested in
the engine), given the previous document parsed. This cache keeps that previous document.

Correctness rests on the environment's snapshot revision (``environment_revisions``), which
every write that changes the document bumps in its own transaction (the same key SDK
snapshots are cached by). An entry is used only when the revision read inside the writing
transaction, under the project write lock, is the entry's; it is stored only after the commit
(:meth:`~fader_server.storage.ports.delivery.Revisions.after_commit`) and only when that
transaction moved the revision by exactly one, so the entry never describes a state the
database did not reach. Other replicas' writes move the revision too: their documents are
simply rebuilt. Projects are keyed with their creation time, so a recreated project never
meets the entries of a deleted one with the same id.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime
from typing import Protocol

from fader_engine.errors import ConfigurationError
from fader_engine.parse_patch import Parsed, parse_patched, parse_whole
from fader_server.services import documents
from fader_server.storage.ports import JSON, Project
from fader_server.storage.ports.delivery import Revisions
from fader_server.storage.ports.resources import ResourceReads

_Key = tuple[int, str, datetime, str]

ENVIRONMENTS_KEPT = 256
"""Documents kept (least recently used first out): the environments being written to."""


class ConfigTx(ResourceReads, Revisions, Protocol):
    """What checking a configuration write reads: the resources and the revision."""


class DocumentCache:
    """The last validated document of each environment written to, at its revision."""

    def __init__(self, capacity: int = ENVIRONMENTS_KEPT) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[_Key, tuple[int, Parsed]] = OrderedDict()

    def check_config(
        self, tx: ConfigTx, project: Project, environment: str, key: str, config: JSON
    ) -> None:
        """Raise :class:`~fader_server.errors.InvalidInputError` unless the environment's
        document with flag `key` configured as `config` is valid; on success, remember the
        new document for the revision this transaction commits."""
        cache_key = (project.id, project.key, project.created_at, environment)
        revision = tx.revision(project.id, environment)
        previous = self._get(cache_key, revision)
        if previous is None:
            previous = _parse(documents.build(tx, project, environment))
        patched = None if previous is None or not config else _with_config(previous, key, config)
        if patched is None:
            # Not cached and not valid as stored, a flag the document lacks, or a change the
            # incremental check does not accept: the whole document says what is wrong.
            document = documents.build(tx, project, environment, configs={key: config})
            documents.validate([(environment, document)])
            return
        tx.after_commit(lambda: self._committed(tx, cache_key, revision, patched))

    def cached(self, project: Project, environment: str) -> int | None:
        """The revision of the environment's document held, if any."""
        with self._lock:
            found = self._entries.get((project.id, project.key, project.created_at, environment))
        return None if found is None else found[0]

    def _get(self, cache_key: _Key, revision: int) -> Parsed | None:
        with self._lock:
            found = self._entries.get(cache_key)
            if found is None or found[0] != revision:
                return None
            self._entries.move_to_end(cache_key)
            return found[1]

    def _committed(self, tx: ConfigTx, cache_key: _Key, revision: int, parsed: Parsed) -> None:
        project_id, _, _, environment = cache_key
        bumped = [
            change.revision
            for change in tx.changes
            if change.project_id == project_id and change.environment == environment
        ]
        if bumped != [revision + 1]:
            return  # several writes to this environment in one transaction: not this document
        with self._lock:
            self._entries[cache_key] = (revision + 1, parsed)
            self._entries.move_to_end(cache_key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


def _parse(document: JSON) -> Parsed | None:
    try:
        return parse_whole(document)
    except ConfigurationError:
        return None


def _with_config(previous: Parsed, key: str, config: JSON) -> Parsed | None:
    """`previous` with flag `key`'s configuration fields replaced by `config`'s (its
    descriptive fields, type and variants come from the flag definition, unchanged)."""
    entry = previous.data["flags"].get(key)
    if not isinstance(entry, dict):
        return None
    replaced = documents.with_config(entry, config)
    data = {**previous.data, "flags": {**previous.data["flags"], key: replaced}}
    return parse_patched(previous, data, [key], [])
