"""Configuration writes validate against the last document of their environment
(services/document_cache.py): what they refuse and accept must be what validating the whole
document would, also when another replica changed the project in between, and a write that
rolls back must leave nothing behind. Two replicas are two `Services` over one database
(SQLite file or PostgreSQL), as two `fader serve` processes would be."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from server_api import unique

from fader_server.errors import InvalidInputError
from fader_server.services import Services, documents
from fader_server.services.access import Principal
from fader_server.storage.sql.store import SqlStore

ROOT = Principal("test", instance_admin=True)
BOOLEAN = {"name": "F", "type": "boolean", "variants": {"on": True, "off": False}}


def _config(**extra: object) -> dict[str, object]:
    return {"enabled": True, "offVariant": "off", "default": {"variant": "on"}, **extra}


def _clock() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def replicas(database_url: str) -> Iterator[tuple[Services, Services]]:
    first, second = SqlStore.open(database_url), SqlStore.open(database_url, upgrade=False)
    try:
        yield Services.over(first, _clock), Services.over(second, _clock)
    finally:
        first.close()
        second.close()


def _project(svc: Services, *flags: str) -> str:
    key = unique("doc")
    svc.projects.create(ROOT, key, "Documents")
    for flag in flags:
        svc.flags.create(ROOT, key, flag, BOOLEAN, None)
    return key


def _put(svc: Services, project: str, flag: str, data: dict[str, object]) -> int:
    current = svc.flags.get_config(ROOT, project, "development", flag)
    return svc.flags.put_config(
        ROOT, project, "development", flag, data, current.version, None
    ).version


@contextmanager
def _refused(problem: str) -> Iterator[None]:
    """The block raises InvalidInputError with a problem whose message contains `problem`."""
    with pytest.raises(InvalidInputError) as raised:
        yield
    messages = [p.message for p in raised.value.problems]
    assert any(problem in m for m in messages), messages


def _cached(svc: Services, project: str) -> bool:
    """Whether the replica holds its development document at the current revision (the
    next configuration write there takes the incremental path)."""
    with svc.store.read() as tx:
        found = tx.get_project(project)
        assert found is not None
        revision = tx.revision(found.id, "development")
    return svc.flags.document_cache.cached(found, "development") == revision


def _whole_document_valid(svc: Services, project: str) -> None:
    """The stored document parses whole: what the cache accepted, a full parse accepts."""
    with svc.store.read() as tx:
        found = tx.get_project(project)
        assert found is not None
        documents.validate([("development", documents.build(tx, found, "development"))])


def test_a_cycle_through_prerequisites_is_refused_when_the_document_is_cached(
    replicas: tuple[Services, Services],
) -> None:
    svc, _ = replicas
    project = _project(svc, "a", "b")
    _put(svc, project, "a", _config())  # the environment's document is now cached
    _put(svc, project, "b", _config(prerequisites=[{"flag": "a", "variants": ["on"]}]))
    with _refused("prerequisite cycle"):
        _put(svc, project, "a", _config(prerequisites=[{"flag": "b", "variants": ["on"]}]))
    with _refused("not defined"):
        _put(svc, project, "a", _config(prerequisites=[{"flag": "ghost", "variants": ["on"]}]))
    # the refused writes changed nothing: a valid write still goes through on the cached path
    assert _cached(svc, project)
    assert _put(svc, project, "a", _config(enabled=False)) == 2
    _whole_document_valid(svc, project)


def test_a_segment_another_replica_deleted_is_not_found_in_a_stale_document(
    replicas: tuple[Services, Services],
) -> None:
    first, second = replicas
    project = _project(first, "a")
    segment = {"name": "Staff", "included": ["u1"]}
    first.segments.create(ROOT, project, "staff", segment, None)
    rule = {"clauses": [{"op": "in_segment", "values": ["staff"]}], "variant": "on"}
    _put(first, project, "a", _config(rules=[rule]))
    _put(first, project, "a", _config())  # cached on the first replica: 'staff' exists
    assert _cached(first, project)
    second.segments.delete(
        ROOT, project, "staff", second.segments.get(ROOT, project, "staff").version, None
    )
    with _refused("staff"):
        _put(first, project, "a", _config(rules=[rule]))
    _whole_document_valid(first, project)


def test_a_flag_changed_by_another_replica_is_validated_with_its_new_variants(
    replicas: tuple[Services, Services],
) -> None:
    first, second = replicas
    project = _project(first, "colour")
    strings = {"name": "C", "type": "string", "variants": {"red": "r", "blue": "b"}}
    second.flags.create(ROOT, project, "shade", strings, None)
    _put(first, project, "colour", _config())
    _put(first, project, "colour", _config(enabled=False))  # cached, without 'green'
    assert _cached(first, project)
    current = second.flags.get(ROOT, project, "shade")
    second.flags.update(
        ROOT,
        project,
        "shade",
        {**strings, "variants": {"red": "r", "blue": "b", "green": "g"}},
        current.version,
        None,
    )
    green = [{"flag": "shade", "variants": ["green"]}]
    assert _put(first, project, "colour", _config(prerequisites=green)) == 3
    _whole_document_valid(first, project)


def test_writes_on_both_replicas_keep_every_version_and_a_valid_document(
    replicas: tuple[Services, Services],
) -> None:
    first, second = replicas
    project = _project(first, "a", "b")
    versions = []
    for n in range(6):
        writer = (first, second)[n // 2 % 2]
        flag = ("a", "b")[n % 2]
        versions.append(_put(writer, project, flag, _config(enabled=n % 2 == 0)))
    assert versions == [1, 1, 2, 2, 3, 3]
    with _refused("prerequisite cycle"):
        _put(second, project, "b", _config(prerequisites=[{"flag": "b", "variants": ["on"]}]))
    _whole_document_valid(second, project)


def test_after_commit_runs_only_when_the_transaction_commits(database_url: str) -> None:
    store = SqlStore.open(database_url)
    try:
        ran: list[str] = []
        with store.transaction() as tx:
            tx.after_commit(lambda: ran.append("committed"))
            assert ran == []  # not before the commit
        assert ran == ["committed"]

        def failing_write() -> None:
            with store.transaction() as tx:
                tx.after_commit(lambda: ran.append("rolled back"))
                raise RuntimeError("the write fails after validating")

        with pytest.raises(RuntimeError):
            failing_write()
        assert ran == ["committed"]
    finally:
        store.close()
