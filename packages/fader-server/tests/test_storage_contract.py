"""One contract, three stores: SQLite, PostgreSQL and the in-memory test double.

Use-case tests may run on :class:`~fader_server.storage.memory.MemoryStore` only because it
behaves like the SQL store wherever a use case could tell: compare-and-swap on versions,
uniqueness (a resource's identity, one unfinished plan per flag and environment, usernames,
token secrets, template keys, webhook URLs), orderings and cursors, all-or-nothing
transactions, and change notifications after a commit only. Every test here runs on all three.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from server_api import unique

from fader_server.errors import AlreadyExistsError
from fader_server.storage.memory import MemoryStore
from fader_server.storage.ports import (
    PROJECT_SCOPE,
    EnvironmentChange,
    NewAuditEntry,
    NewPlan,
    NewToken,
    PlanUpdate,
    Project,
    ResourceType,
    SdkEvent,
    ThrottleCount,
    ThrottleKey,
    ThrottleScope,
    TokenKind,
    Version,
)
from fader_server.storage.ports.store import Database, Transaction
from fader_server.storage.sql.store import SqlStore

NOW = datetime(2031, 3, 2, 10, 0, tzinfo=UTC)
ENV = ResourceType.ENVIRONMENT
FLAG = ResourceType.FLAG


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "memory"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    opened: Database
    if request.param == "sqlite":
        path = Path(tmp_path_factory.mktemp("contract")) / "fader.db"
        opened = SqlStore.open(f"sqlite:///{path}")
    elif request.param == "postgresql":
        opened = SqlStore.open(request.getfixturevalue("module_postgres_url"))
    else:
        opened = MemoryStore()
    yield opened
    opened.close()


@pytest.fixture
def project(store: Database) -> Project:
    with store.transaction() as tx:
        return tx.insert_project(unique("contract"), "Contract", NOW)


def _plan(project: Project, flag: str, environment: str = "production") -> NewPlan:
    return NewPlan(
        project.id, flag, environment, None, {"stages": []}, {"stage": 0}, "pending", "t"
    )


# ----------------------------------------------------------------------------- resources
def test_a_resource_identity_is_inserted_once_deleted_or_not(
    store: Database, project: Project
) -> None:
    with store.transaction() as tx:
        first = tx.insert_resource(project.id, FLAG, PROJECT_SCOPE, "a", {"n": 1}, "a", NOW)
        assert first is not None
        assert (first.version, first.data, first.deleted) == (1, {"n": 1}, False)
        assert tx.insert_resource(project.id, FLAG, PROJECT_SCOPE, "a", {}, "a", NOW) is None
        gone = tx.update_resource(first, first.data, deleted=True, search_text="", at=NOW)
        assert gone is not None
        assert tx.insert_resource(project.id, FLAG, PROJECT_SCOPE, "a", {}, "a", NOW) is None
        # the same key elsewhere is another resource
        other = tx.insert_resource(project.id, ResourceType.CONFIG, "staging", "a", {}, "", NOW)
        assert other is not None
        assert other.id != first.id


def test_updates_are_compare_and_swap_on_the_version(store: Database, project: Project) -> None:
    with store.transaction() as tx:
        v1 = tx.insert_resource(project.id, FLAG, PROJECT_SCOPE, "cas", {"n": 1}, "", NOW)
        assert v1 is not None
        later = NOW + timedelta(minutes=1)
        v2 = tx.update_resource(v1, {"n": 2}, deleted=False, search_text="", at=later)
        assert v2 is not None
        assert (v2.version, v2.data, v2.created_at, v2.updated_at) == (2, {"n": 2}, NOW, later)
        assert tx.update_resource(v1, {"n": 3}, deleted=False, search_text="", at=NOW) is None
    with store.read() as tx:
        stored = tx.get_resource(project.id, FLAG, PROJECT_SCOPE, "cas")
    assert stored is not None
    assert (stored.version, stored.data) == (2, {"n": 2})


def test_live_resources_are_listed_by_key_with_a_cursor_and_a_word_search(
    store: Database, project: Project
) -> None:
    with store.transaction() as tx:
        for key, text in (("c", "gamma checkout"), ("a", "alpha checkout"), ("b", "beta")):
            assert tx.insert_resource(project.id, FLAG, PROJECT_SCOPE, key, {}, text, NOW)
        b = tx.get_resource(project.id, FLAG, PROJECT_SCOPE, "b")
        assert b is not None
        assert tx.update_resource(b, b.data, deleted=True, search_text="", at=NOW)

    def keys(limit: int = 10, after_key: str | None = None, query: str | None = None) -> list[str]:
        with store.read() as tx:
            found = tx.list_resources(
                project.id, FLAG, PROJECT_SCOPE, limit=limit, after_key=after_key, query=query
            )
        return [r.key for r in found]

    assert keys() == ["a", "c"]
    assert keys(limit=1) == ["a"]
    assert keys(after_key="a") == ["c"]
    assert keys(query="checkout") == ["a", "c"]
    assert keys(query="gamma checkout") == ["c"]
    assert keys(query="beta") == []  # deleted


def test_versions_and_audit_are_read_newest_first_below_a_cursor(
    store: Database, project: Project
) -> None:
    with store.transaction() as tx:
        resource = tx.insert_resource(project.id, FLAG, PROJECT_SCOPE, "v", {}, "", NOW)
        assert resource is not None
        for number in (1, 2, 3):
            tx.insert_version(Version(resource.id, number, {"n": number}, False, "t", None, NOW))
            tx.append_audit(
                NewAuditEntry(project.id, "t", "update", "flag", "v", None, number, [], None),
                NOW,
            )
        tx.append_audit(
            NewAuditEntry(project.id, "t", "create", "segment", "s", None, None, [], None), NOW
        )
    with store.read() as tx:
        assert [v.version for v in tx.list_versions(resource.id, 10, None)] == [3, 2, 1]
        assert [v.version for v in tx.list_versions(resource.id, 1, 3)] == [2]
        found = tx.get_version(resource.id, 2)
        assert found is not None
        assert found.data == {"n": 2}
        assert tx.get_version(resource.id, 4) is None
        audit = tx.list_audit(project.id, limit=10, before_id=None)
        assert [e.entity_type for e in audit] == ["segment", "flag", "flag", "flag"]
        flags = tx.list_audit(
            project.id, limit=10, before_id=audit[1].id, entity_types=("flag",), entity_key="v"
        )
        assert [e.version for e in flags] == [2, 1]


# -------------------------------------------------------------------------- transactions
def test_a_failed_transaction_leaves_nothing_and_announces_nothing(store: Database) -> None:
    announced: list[Sequence[EnvironmentChange]] = []
    store.subscribe(announced.append)
    key = unique("rolled-back")

    def write_then_fail() -> None:
        with store.transaction() as tx:
            project = tx.insert_project(key, "Gone", NOW)
            tx.insert_resource(project.id, ENV, PROJECT_SCOPE, "production", {}, "", NOW)
            tx.bump_revisions(project, ["production"], NOW)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()
    with store.read() as tx:
        assert tx.get_project(key) is None
    assert announced == []


def test_revisions_grow_and_are_announced_once_committed(store: Database, project: Project) -> None:
    announced: list[list[EnvironmentChange]] = []
    store.subscribe(lambda changes: announced.append(list(changes)))
    with store.read() as tx:
        assert tx.revision(project.id, "production") == 0
    with store.transaction() as tx:
        bumped = tx.bump_revisions(project, ["staging", "production", "staging"], NOW)
        assert [(c.environment, c.revision) for c in bumped] == [
            ("production", 1),
            ("staging", 1),
        ]
        assert not [c for batch in announced for c in batch if c.project_id == project.id]
        tx.bump_revisions(project, ["production"], NOW)
    mine = [c for batch in announced for c in batch if c.project_id == project.id]
    assert [(c.environment, c.revision) for c in mine] == [
        ("production", 1),
        ("staging", 1),
        ("production", 2),
    ]
    with store.read() as tx:
        assert tx.revision(project.id, "production") == 2


def test_a_project_key_is_taken_once(store: Database, project: Project) -> None:
    with pytest.raises(AlreadyExistsError), store.transaction() as tx:
        tx.insert_project(project.key, "Again", NOW)


# --------------------------------------------------------------------------------- plans
def test_a_flag_has_one_unfinished_plan_per_environment(store: Database, project: Project) -> None:
    with store.transaction() as tx:
        first = tx.insert_plan(_plan(project, "f"), NOW)
        staging = tx.insert_plan(_plan(project, "f", "staging"), NOW)
        tx.insert_plan(_plan(project, "g"), NOW)
    with pytest.raises(AlreadyExistsError), store.transaction() as tx:
        tx.insert_plan(_plan(project, "f"), NOW)
    with store.transaction() as tx:
        finished = tx.update_plan(first, PlanUpdate({"stage": 1}, "completed", active=False), NOW)
        assert finished is not None
        again = tx.insert_plan(_plan(project, "f"), NOW)
    with store.read() as tx:
        listed = tx.list_plans(project.id, limit=10, before_id=None, flag="f")
        assert [p.id for p in listed] == [again.id, staging.id, first.id]
        done = tx.list_plans(project.id, limit=10, before_id=None, status="completed")
        assert [p.id for p in done] == [first.id]
        older = tx.list_plans(project.id, limit=1, before_id=again.id, flag="f")
        assert [p.id for p in older] == [staging.id]


def test_plan_updates_are_compare_and_swap_and_keep_what_they_leave_out(
    store: Database, project: Project
) -> None:
    later = NOW + timedelta(seconds=30)
    with store.transaction() as tx:
        stored = tx.insert_plan(_plan(project, unique("f")), NOW)
        assert (stored.version, stored.base_config, stored.incident_id) == (1, None, None)
        first = PlanUpdate({"stage": 0}, "running", active=True, base_config={"enabled": True})
        running = tx.update_plan(stored, first, later)
        assert running is not None
        assert tx.update_plan(stored, PlanUpdate({}, "paused", active=True), later) is None
        evaluated = tx.update_plan(
            running,
            PlanUpdate({"stage": 1}, "running", active=True, last_evaluation={"action": "wait"}),
            later,
        )
        assert evaluated is not None
    assert (evaluated.version, evaluated.status, evaluated.state) == (3, "running", {"stage": 1})
    assert evaluated.base_config == {"enabled": True}
    assert evaluated.last_evaluation == {"action": "wait"}
    assert (evaluated.created_at, evaluated.updated_at) == (NOW, later)
    with store.read() as tx:
        assert evaluated.id in [p.id for p in tx.active_plans()]
    with store.transaction() as tx:
        held = tx.lock_plan(evaluated.id, wait=False)
        assert held is not None
        assert held.version == 3


def test_incidents_are_read_newest_first_per_project_and_plan(
    store: Database, project: Project
) -> None:
    with store.transaction() as tx:
        plan = tx.insert_plan(_plan(project, unique("f")), NOW)
        made = [
            tx.insert_incident(project.id, plan.id, NOW, 0, "1%", f"m{i}", [{"i": i}], [])
            for i in range(3)
        ]
    with store.read() as tx:
        listed = tx.list_incidents(project.id, limit=2, before_id=None, plan_id=plan.id)
        assert [i.metric for i in listed] == ["m2", "m1"]
        older = tx.list_incidents(project.id, limit=5, before_id=made[1].id)
        assert [i.metric for i in older] == ["m0"]
        found = tx.get_incident(project.id, made[0].id)
        assert found is not None
        assert found.evidence == [{"i": 0}]
        assert tx.get_incident(project.id + 1000, made[0].id) is None


# ---------------------------------------------------------------------- unique names
def test_template_keys_and_webhook_urls_are_unique_and_a_refusal_keeps_the_transaction(
    store: Database, project: Project
) -> None:
    with store.transaction() as tx:
        tx.insert_template(project.id, "staged", "Staged", {"stages": []}, "t", NOW)
        with pytest.raises(AlreadyExistsError):
            tx.insert_template(project.id, "staged", "Again", {"stages": []}, "t", NOW)
        tx.insert_template(project.id, "alpha", "Alpha", {"stages": []}, "t", NOW)
        hook = tx.insert_webhook(project.id, "https://h.example/a", "", "s", "t", NOW)
        with pytest.raises(AlreadyExistsError):
            tx.insert_webhook(project.id, "https://h.example/a", "", "s", "t", NOW)
        tx.insert_webhook(project.id, "https://h.example/b", "", "s", "t", NOW)
    with store.read() as tx:
        assert [t.key for t in tx.list_templates(project.id)] == ["alpha", "staged"]
        assert [w.url for w in tx.list_webhooks(project.id)] == [
            "https://h.example/a",
            "https://h.example/b",
        ]
    with store.transaction() as tx:
        assert tx.delete_template(project.id, "staged")
        assert not tx.delete_template(project.id, "staged")
        assert tx.delete_webhook(project.id, hook.id)
        assert not tx.delete_webhook(project.id, hook.id)


def test_usernames_and_token_secrets_are_unique(store: Database) -> None:
    name, secret = unique("user"), unique("hash")
    with store.transaction() as tx:
        user = tx.insert_user(name, "hash", False, NOW)
        tx.insert_token(NewToken(TokenKind.USER, "t", secret, None, None, user.id, None, "t"), NOW)
    with pytest.raises(AlreadyExistsError), store.transaction() as tx:
        tx.insert_user(name, "other", False, NOW)
    with pytest.raises(AlreadyExistsError), store.transaction() as tx:
        tx.insert_token(NewToken(TokenKind.ADMIN, "t", secret, None, None, None, None, "t"), NOW)


# -------------------------------------------------------------------------- accounts
def test_members_and_roles(store: Database, project: Project) -> None:
    with store.transaction() as tx:
        zed = tx.insert_user(unique("zed"), "h", False, NOW)
        amy = tx.insert_user(unique("amy"), "h", False, NOW)
        tx.set_member(project.id, zed.id, "viewer")
        tx.set_member(project.id, amy.id, "editor")
        tx.set_member(project.id, zed.id, "admin")
    with store.read() as tx:
        assert tx.roles_of(zed.id) == {project.id: "admin"}
        assert [(u.id, role) for u, role in tx.list_members(project.id)] == [
            (amy.id, "editor"),
            (zed.id, "admin"),
        ]
    with store.transaction() as tx:
        assert tx.remove_member(project.id, amy.id)
        assert not tx.remove_member(project.id, amy.id)
        tx.set_password(amy.id, "new")
    with store.read() as tx:
        assert tx.roles_of(amy.id) == {}
        found = tx.get_user_by_id(amy.id)
        assert found is not None
        assert found.password_hash == "new"


def test_tokens_revocation_and_last_use(store: Database, project: Project) -> None:
    later = NOW + timedelta(hours=1)
    with store.transaction() as tx:
        user = tx.insert_user(unique("user"), "h", False, NOW)
        personal = [
            tx.insert_token(
                NewToken(TokenKind.USER, "p", unique("h"), None, None, user.id, None, "t"), NOW
            )
            for _ in range(2)
        ]
        scoped = tx.insert_token(
            NewToken(TokenKind.ADMIN, "a", unique("h"), project.id, None, None, None, "t"), NOW
        )
        tx.revoke_token(personal[0].id, NOW)
        tx.revoke_token(personal[0].id, later)  # the first revocation stays
        assert tx.revoke_personal_tokens(user.id, later) == [personal[1].id]
        tx.record_token_use({scoped.id: later})
        tx.record_token_use({scoped.id: NOW})  # never backwards
    with store.read() as tx:
        first, second = (tx.get_token(t.id) for t in personal)
        assert first is not None
        assert second is not None
        assert (first.revoked_at, second.revoked_at) == (NOW, later)
        found = tx.find_token(scoped.token_hash)
        assert found is not None
        assert found.last_used_at == later
        assert [t.id for t in tx.list_tokens(project.id)] == [scoped.id]
        assert scoped.id not in [t.id for t in tx.list_tokens(None)]


def test_usable_keys_are_unrevoked_unexpired_and_of_a_live_environment(
    store: Database, project: Project
) -> None:
    def key(
        tx: Transaction,
        environment: str,
        expires: datetime | None = None,
        kind: TokenKind = TokenKind.SERVER,
    ) -> int:
        token = tx.insert_token(
            NewToken(kind, "k", unique("h"), project.id, environment, None, expires, "t"), NOW
        )
        return token.id

    with store.transaction() as tx:
        env = tx.insert_resource(project.id, ENV, PROJECT_SCOPE, "production", {}, "", NOW)
        gone = tx.insert_resource(project.id, ENV, PROJECT_SCOPE, "old", {}, "", NOW)
        assert env is not None
        assert gone is not None
        tx.update_resource(gone, {}, deleted=True, search_text="", at=NOW)
        usable = key(tx, "production")
        client = key(tx, "production", kind=TokenKind.CLIENT)
        expired = key(tx, "production", expires=NOW)
        later = key(tx, "production", expires=NOW + timedelta(days=1))
        revoked = key(tx, "production")
        tx.revoke_token(revoked, NOW)
        orphan = key(tx, "old")
        admin = key(tx, "production", kind=TokenKind.ADMIN)
    ids = [usable, client, expired, later, revoked, orphan, admin, 10**9]
    with store.read() as tx:
        assert tx.usable_keys(ids, NOW) == {usable, client, later}


def test_login_counters_are_created_locked_saved_cleared_and_pruned(store: Database) -> None:
    name, place = unique("u"), unique("10.0.0")
    pair = ThrottleKey(ThrottleScope.PAIR, name, place)
    user = ThrottleKey(ThrottleScope.USERNAME, name, "")
    address = ThrottleKey(ThrottleScope.ADDRESS, "", place)
    keys = [pair, user, address]
    with store.read() as tx:
        assert tx.read_login_counts(keys) == {}
    with store.transaction() as tx:
        counts = tx.lock_login_counts(keys, NOW)
        seen = {k: (c.failures, c.window_start) for k, c in counts.items()}
        assert seen == dict.fromkeys(keys, (0, NOW))
        tx.save_login_counts([ThrottleCount(k, 3, NOW, NOW, None) for k in counts], NOW)
    with store.read() as tx:
        assert {k: c.failures for k, c in tx.read_login_counts(keys).items()} == dict.fromkeys(
            keys, 3
        )
    with store.transaction() as tx:
        tx.clear_login_counts(name)
    with store.read() as tx:
        assert list(tx.read_login_counts(keys)) == [address]
    with store.transaction() as tx:
        assert tx.prune_login_counts(NOW + timedelta(days=2), NOW) >= 1
    with store.read() as tx:
        assert tx.read_login_counts(keys) == {}


# ---------------------------------------------------------------------------- events
def test_sdk_events_are_totalled_per_variant_and_window_by_receive_time(
    store: Database, project: Project
) -> None:
    start, second = NOW, NOW + timedelta(hours=1)

    def event(
        kind: str,
        variant: str | None,
        name: str | None = None,
        value: float | None = None,
        key_kind: str = "server",
    ) -> SdkEvent:
        return SdkEvent(kind, "f", variant, None, name, value, "u", NOW, key_kind)

    early = start - timedelta(minutes=1)
    with store.transaction() as tx:
        tx.insert_sdk_events(project.id, "production", [event("exposure", "on")], early)
        tx.insert_sdk_events(
            project.id,
            "production",
            [
                event("exposure", "on"),
                event("exposure", "off"),
                event("custom", "on", "latency", 2.0),
                event("custom", "on", "latency", 3.0),
                event("custom", "on", "latency"),
                event("exposure", "on", key_kind="client"),
                event("exposure", None),
            ],
            start,
        )
        tx.insert_sdk_events(project.id, "production", [event("exposure", "on")], second)
        tx.insert_sdk_events(project.id, "staging", [event("exposure", "on")], second)
    with store.read() as tx:
        first_window, second_window = tx.event_windows(
            project.id, "production", "f", [start, second]
        )
        assert tx.event_windows(project.id, "production", "f", []) == []
        both = tx.event_windows(project.id, "production", "f", [start], ("server", "client"))[0]
        total = tx.event_totals(project.id, "production", "f", start)
    assert {v: t.exposures for v, t in first_window.items()} == {"on": 1, "off": 1}
    latency = first_window["on"].events["latency"]
    assert (latency.count, latency.total, latency.total_squares) == (3, 5.0, 13.0)
    assert first_window["off"].events == {}
    assert {v: t.exposures for v, t in second_window.items()} == {"on": 1}
    assert both["on"].exposures == 3
    assert {v: t.exposures for v, t in total.items()} == {"on": 2, "off": 1}
