"""One contract, three stores: SQLite, PostgreSQL and the in-memory test double.

Use-case tests may run on :class:`~fader_server.storage.memory.MemoryStore` only because it
behaves like the SQL store wherever a use case could tell: compare-and-swap on versions,
uniqueness (a resource's identity, one unfinished plan per flag and environment, usernames,
token secrets, template keys, webhook URLs), orderings and cursors, all-or-nothing
transactions, and change notifications after a commit only. Every test here runs on all three.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from conftest import opened_store
from server_api import unique

from fader_engine.sketches import DistinctSketch
from fader_server.errors import AlreadyExistsError
from fader_server.storage.ports import (
    PROJECT_SCOPE,
    EnvironmentChange,
    EventTotals,
    NewAuditEntry,
    NewPlan,
    NewToken,
    PlanUpdate,
    Project,
    ResourceType,
    ThrottleCount,
    ThrottleKey,
    ThrottleScope,
    TokenKind,
    VariantTotals,
    Version,
)
from fader_server.storage.ports.change_requests import NewChangeRequest
from fader_server.storage.ports.incidents import ItemCursor, NewActionItem, NewIncident
from fader_server.storage.ports.outbox import DeliveryAttempt
from fader_server.storage.ports.store import Database, Transaction
from fader_server.storage.ports.usage import EVALUATIONS, DebugEvent, Pruned, UsageCount

NOW = datetime(2031, 3, 2, 10, 0, tzinfo=UTC)
ENV = ResourceType.ENVIRONMENT
FLAG = ResourceType.FLAG


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "memory"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    with opened_store(request, tmp_path_factory.mktemp("contract")) as opened:
        yield opened


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


def test_several_resources_are_read_at_once_in_the_order_asked(
    store: Database, project: Project
) -> None:
    config = ResourceType.CONFIG
    with store.transaction() as tx:
        flag = tx.insert_resource(project.id, FLAG, PROJECT_SCOPE, "many", {"n": 1}, "", NOW)
        assert flag is not None
        staging = tx.insert_resource(project.id, config, "staging", "many", {"on": 1}, "", NOW)
        assert staging is not None
        env = tx.insert_resource(project.id, ENV, PROJECT_SCOPE, "staging", {}, "", NOW)
        assert env is not None
        gone = tx.update_resource(env, env.data, deleted=True, search_text="", at=NOW)
        assert gone is not None
    with store.read() as tx:
        wanted = [
            (config, "production", "many"),  # never written
            (config, "staging", "many"),
            (ENV, PROJECT_SCOPE, "staging"),  # deleted: returned, as get_resource does
            (FLAG, PROJECT_SCOPE, "many"),
        ]
        found = tx.get_resources(project.id, wanted)
        assert found == [tx.get_resource(project.id, *name) for name in wanted]
        assert [r and (r.key, r.scope, r.deleted) for r in found] == [
            None,
            ("many", "staging", False),
            ("staging", PROJECT_SCOPE, True),
            ("many", PROJECT_SCOPE, False),
        ]
        assert tx.get_resources(project.id + 1_000_000, wanted) == [None] * 4


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
            tx.insert_incident(
                NewIncident(
                    project.id,
                    "Rollback",
                    "major",
                    "rollout:1",
                    plan_id=plan.id,
                    stage=0,
                    stage_name="1%",
                    metric=f"m{i}",
                    evidence=({"i": i},),
                ),
                NOW,
            )
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


def test_incidents_are_written_by_compare_and_swap_and_filtered_by_state(
    store: Database, project: Project
) -> None:
    later = NOW + timedelta(minutes=5)
    with store.transaction() as tx:
        opened = tx.insert_incident(
            NewIncident(project.id, "By hand", "minor", "user:a", "why", "f", "production"), NOW
        )
    assert (opened.state, opened.version, opened.plan_id, opened.stage) == ("open", 1, None, None)
    assert (opened.opened_at, opened.updated_at, opened.summary) == (NOW, NOW, "")
    acked = replace(opened, state="acknowledged", acknowledged_by="user:b", acknowledged_at=later)
    with store.transaction() as tx:
        written = tx.update_incident(acked, later)
        assert tx.update_incident(replace(opened, summary="lost"), later) is None
    assert written is not None
    assert (written.version, written.state, written.acknowledged_at) == (2, "acknowledged", later)
    assert (written.updated_at, written.title, written.flag) == (later, "By hand", "f")
    with store.read() as tx:
        assert [
            i.id
            for i in tx.list_incidents(project.id, limit=9, before_id=None, state="acknowledged")
        ] == [opened.id]
        assert tx.list_incidents(project.id, limit=9, before_id=None, state="open") == []


def test_action_items_are_listed_by_due_day_and_escalated_by_compare_and_swap(
    store: Database, project: Project
) -> None:
    day = NOW.date()
    with store.transaction() as tx:
        incident = tx.insert_incident(NewIncident(project.id, "I", "major", "user:a"), NOW)
        items = [
            tx.insert_action_item(
                NewActionItem(
                    project.id, incident.id, f"t{n}", "alice", day + timedelta(days=d), "u"
                ),
                NOW,
            )
            for n, d in enumerate((3, -2, -1))
        ]
    assert [(i.status, i.version, i.overdue_at) for i in items] == [("open", 1, None)] * 3
    with store.read() as tx:
        assert [i.title for i in tx.incident_action_items(project.id, incident.id)] == [
            "t0",
            "t1",
            "t2",
        ]
        by_due = tx.list_action_items(project.id, limit=2, after=None)
        assert [i.title for i in by_due] == ["t1", "t2"]
        after = ItemCursor(by_due[-1].due_on, by_due[-1].id)
        assert [i.title for i in tx.list_action_items(project.id, limit=5, after=after)] == ["t0"]
        overdue = tx.list_action_items(
            project.id, limit=5, after=None, status="open", due_before=day
        )
        assert [i.title for i in overdue] == ["t1", "t2"]
        mine = [i for i in tx.items_to_escalate(day, 1000) if i.project_id == project.id]
        assert [i.title for i in mine] == ["t1", "t2"]
        assert tx.get_action_item(project.id + 1000, items[0].id) is None
    with store.transaction() as tx:
        marked = tx.update_action_item(replace(items[1], overdue_at=NOW), NOW)
        assert tx.update_action_item(replace(items[1], overdue_at=NOW), NOW) is None
        done = tx.update_action_item(
            replace(items[2], status="done", done_by="u", done_at=NOW), NOW
        )
    assert marked is not None
    assert done is not None
    assert (marked.version, marked.overdue_at, done.status, done.done_at) == (2, NOW, "done", NOW)
    with store.read() as tx:
        assert [i for i in tx.items_to_escalate(day, 1000) if i.project_id == project.id] == []
        assert [
            i.title for i in tx.list_action_items(project.id, limit=5, after=None, status="done")
        ] == ["t2"]


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


def test_sso_identities_link_once_and_grants_are_kept_per_membership(
    store: Database, project: Project
) -> None:
    issuer, subject = "https://id.example/" + unique("realm"), unique("sub")
    with store.transaction() as tx:
        user = tx.insert_user(unique("sso"), "h", False, NOW)
        assert tx.find_sso_user(issuer, subject) is None
        tx.link_sso_user(user.id, issuer, subject, NOW)
        tx.set_member(project.id, user.id, "editor")
        tx.set_sso_grant(project.id, user.id, "viewer")
        tx.set_sso_grant(project.id, user.id, "editor")  # granting again replaces the role
        tx.set_instance_admin(user.id, True)
        other = tx.insert_user(unique("sso"), "h", False, NOW)
    with pytest.raises(AlreadyExistsError), store.transaction() as tx:
        tx.link_sso_user(other.id, issuer, subject, NOW)  # one identity, one user
    with store.read() as tx:
        assert tx.find_sso_user(issuer, subject) == user.id
        assert tx.find_sso_user(issuer + "/other", subject) is None
        assert tx.sso_grants(user.id) == {project.id: "editor"}
        found = tx.get_user_by_id(user.id)
        assert found is not None
        assert found.instance_admin
    with store.transaction() as tx:
        tx.set_sso_grant(project.id, user.id, None)
        tx.set_instance_admin(user.id, False)
    with store.read() as tx:
        assert tx.sso_grants(user.id) == {}
        assert tx.roles_of(user.id) == {project.id: "editor"}  # the membership is apart
        found = tx.get_user_by_id(user.id)
        assert found is not None
        assert not found.instance_admin


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


# ---------------------------------------------------------------------------- usage
def sketch_of(*keys: str) -> bytes:
    return DistinctSketch().update(keys).to_bytes()


def test_usage_adds_up_per_minute_and_hour_and_sketches_merge(
    store: Database, project: Project
) -> None:
    first, same_minute, next_minute = (NOW + timedelta(seconds=s) for s in (10, 50, 70))
    with store.transaction() as tx:
        tx.add_usage(
            project.id,
            "production",
            "server",
            [
                UsageCount("f", EVALUATIONS, "on", 3, contexts=sketch_of("a", "b", "c")),
                UsageCount("f", EVALUATIONS, "on", 2, contexts=sketch_of("c", "d")),
                UsageCount("f", "latency", "on", 2, 5.0, 13.0),
                UsageCount("f", EVALUATIONS, "", 5),  # served no variant: no arm's
                UsageCount("", "page.view", "", 1, 1.0, 1.0),  # about no flag
            ],
            first,
        )
        tx.add_usage(project.id, "production", "client", [UsageCount("f", "", "on", 7)], first)
    with store.transaction() as tx:
        tx.add_usage(
            project.id, "production", "server", [UsageCount("f", "", "on", 4)], same_minute
        )
        tx.add_usage(
            project.id,
            "production",
            "server",
            [
                UsageCount("f", EVALUATIONS, "on", 1, contexts=sketch_of("a", "e")),
                UsageCount("f", "latency", "off", 1, 4.0, 16.0),
            ],
            next_minute,
        )
        tx.add_usage(project.id, "staging", "server", [UsageCount("f", "", "on", 100)], first)
    minute = timedelta(minutes=1)
    with store.read() as tx:
        (since,) = tx.event_windows(project.id, "production", "f", [NOW])
        both = tx.event_totals(project.id, "production", "f", NOW, ("server", "client"))
        by_minute = tx.event_windows(project.id, "production", "f", [NOW, NOW + minute])
        late = tx.event_totals(project.id, "production", "f", NOW + timedelta(seconds=1))
        split = tx.event_windows(project.id, "production", "f", [NOW, NOW + timedelta(seconds=30)])
        contexts = tx.distinct_contexts(project.id, "production", "f", NOW, NOW + 2 * minute)
        assert tx.event_windows(project.id, "production", "f", []) == []
    assert {v: t.exposures for v, t in since.items()} == {"on": 10, "off": 0}
    latency = since["on"].events["latency"]
    assert (latency.count, latency.total, latency.total_squares) == (2, 5.0, 13.0)
    assert since["off"].events["latency"] == EventTotals(1, 4.0, 16.0)
    assert both["on"].exposures == 17
    assert [w["on"].exposures for w in by_minute] == [9, 1]
    # a minute that began before its window's start is not the window's...
    assert late["on"].exposures == 1
    # ...nor the previous window's when the next one started inside it: it counts nowhere
    assert [w.get("on", VariantTotals(0, {})).exposures for w in split] == [0, 1]
    assert contexts.variants["on"] == 5  # a, b, c, d, e: the sketches of three items merged


def test_usage_counts_and_sums_saturate_instead_of_overflowing(
    store: Database, project: Project
) -> None:
    huge = UsageCount("big", EVALUATIONS, "on", 2**53, 0.0, 0.0)
    large = UsageCount("big", "size", "on", 1, 1.7e308, 1.7e308)
    small = UsageCount("big", "size", "off", 1, -1.7e308, 0.0)
    with store.transaction() as tx:
        tx.add_usage(project.id, "production", "server", [huge] * 600 + [large, large], NOW)
    with store.transaction() as tx:
        tx.add_usage(project.id, "production", "server", [huge, large, small, small], NOW)
    with store.read() as tx:
        totals = tx.event_totals(project.id, "production", "big", NOW)
    assert totals["on"].exposures == 2**62
    assert totals["on"].events["size"] == EventTotals(3, 1e306, 1e306)
    assert totals["off"].events["size"] == EventTotals(2, -1e306, 0.0)


def test_debug_events_keep_the_newest_per_flag(store: Database, project: Project) -> None:
    def events(flag: str, *keys: str) -> list[DebugEvent]:
        return [DebugEvent(flag, "on", "SPLIT", key, NOW) for key in keys]

    with store.transaction() as tx:
        tx.add_debug_events(project.id, "production", "server", events("f", "a", "b", "c"), NOW, 4)
        tx.add_debug_events(project.id, "production", "server", events("g", "x"), NOW, 4)
    later = NOW + timedelta(seconds=5)
    with store.transaction() as tx:
        tx.add_debug_events(project.id, "production", "client", events("f", "d", "e"), later, 4)
    with store.read() as tx:
        kept = tx.debug_events(project.id, "production", "f", 10)
        other = tx.debug_events(project.id, "production", "g", 10)
    assert [(e.targeting_key, e.key_kind, e.received_at) for e in kept] == [
        ("e", "client", later),
        ("d", "client", later),
        ("c", "server", NOW),
        ("b", "server", NOW),
    ]
    assert [e.targeting_key for e in other] == ["x"]


def test_prune_usage_deletes_old_rows_in_batches(store: Database, project: Project) -> None:
    """Rows from 2019, far older than every other test's: pruning is global."""
    old = datetime(2019, 1, 1, tzinfo=UTC)
    flag = unique("pruned")
    with store.transaction() as tx:
        for minute in range(5):
            at = old + timedelta(minutes=minute)
            tx.add_usage(project.id, "production", "server", [UsageCount(flag, "", "on", 1)], at)
            tx.add_debug_events(
                project.id, "production", "server", [DebugEvent(flag, "on", "", None, at)], at, 9
            )
    cut = old + timedelta(minutes=3)

    def prune() -> Pruned:
        with store.transaction() as tx:
            return tx.prune_usage(minutes_before=cut, hours_before=old, debug_before=cut, limit=2)

    assert prune() == Pruned(minutes=2, hours=0, debug_events=2)
    assert prune() == Pruned(minutes=1, hours=0, debug_events=1)
    assert prune() == Pruned()
    with store.read() as tx:
        left = tx.event_totals(project.id, "production", flag, old)
        debug = tx.debug_events(project.id, "production", flag, 10)
    assert left["on"].exposures == 2
    assert [e.occurred_at for e in debug] == [old + timedelta(minutes=m) for m in (4, 3)]
    with store.transaction() as tx:
        gone = tx.prune_usage(
            minutes_before=old, hours_before=old + timedelta(hours=1), debug_before=old, limit=9
        )
    assert gone.hours == 1


# ----------------------------------------------------------------------------- change requests
def _change_request(project: Project, apply_at: datetime | None = None) -> NewChangeRequest:
    op = {"kind": "flag_delete", "flag": "f", "base_version": 1, "before": {}, "after": None}
    return NewChangeRequest(
        project.id, "t", {"problem": "p"}, "user:a", 7, "open", [op], [{"k": 1}], apply_at
    )


def test_change_requests_are_compare_and_swap_listed_and_due_in_order(
    store: Database, project: Project
) -> None:
    later = NOW + timedelta(minutes=5)
    with store.transaction() as tx:
        first = tx.insert_change_request(_change_request(project), NOW)
        second = tx.insert_change_request(_change_request(project, later), NOW)
        third = tx.insert_change_request(_change_request(project, NOW), NOW)
        assert (first.version, first.reviews, first.failure, first.apply_at) == (1, [], None, None)
        reviewed = replace(first, reviews=[{"kind": "approve"}], status="approved")
        written = tx.update_change_request(reviewed, later)
        assert written is not None
        assert tx.update_change_request(replace(first, status="cancelled"), later) is None
        for due in (second, third):
            assert tx.update_change_request(replace(due, status="approved"), later) is not None
    assert (written.version, written.status, written.reviews) == (
        2,
        "approved",
        [{"kind": "approve"}],
    )
    assert (written.created_at, written.updated_at, written.author_user_id) == (NOW, later, 7)
    with store.read() as tx:
        assert tx.get_change_request(project.id + 10_000, first.id) is None
        listed = tx.list_change_requests(project.id, limit=2, before_id=None)
        assert [r.id for r in listed] == [third.id, second.id]
        rest = tx.list_change_requests(project.id, limit=5, before_id=second.id)
        assert [r.id for r in rest] == [first.id]
        scheduled = tx.list_change_requests(
            project.id, limit=5, before_id=None, statuses=("approved",), scheduled=True
        )
        assert [r.id for r in scheduled] == [third.id, second.id]
        due = [r.id for r in tx.due_change_requests(NOW, 10) if r.project_id == project.id]
        assert due == [third.id]
        due = [r.id for r in tx.due_change_requests(later, 10) if r.project_id == project.id]
        assert due == [third.id, second.id]
        stored = tx.get_change_request(project.id, second.id)
        assert stored is not None
        assert (stored.apply_at, stored.contexts) == (later, [{"k": 1}])


# ------------------------------------------------------------ notification outbox (0010)
def _audit(project: Project, entity_type: str, key: str, action: str = "update") -> NewAuditEntry:
    return NewAuditEntry(project.id, "user:a", action, entity_type, key, None, None, [], None)


def test_webhook_subscriptions_are_stored_updated_and_unique(
    store: Database, project: Project
) -> None:
    with store.transaction() as tx:
        hook = tx.insert_webhook(
            project.id, "https://h.example/s", "", "s", "t", NOW, events=["flag", "incident"]
        )
        tx.insert_webhook(project.id, "https://h.example/t", "", "s", "t", NOW)
    assert (hook.events, hook.enabled) == (("flag", "incident"), True)
    with store.transaction() as tx:
        with pytest.raises(AlreadyExistsError):
            tx.update_webhook(
                project.id, hook.id, url="https://h.example/t", description="",
                enabled=True, events=["flag"],
            )  # fmt: skip
        updated = tx.update_webhook(
            project.id, hook.id, url="https://h.example/u", description="d",
            enabled=False, events=["rollout", "schedule"],
        )  # fmt: skip
        assert (
            tx.update_webhook(
                project.id + 1000, hook.id, url="x", description="", enabled=True, events=[]
            )
            is None
        )
    assert updated is not None
    assert (updated.url, updated.enabled, updated.events) == (
        "https://h.example/u",
        False,
        ("rollout", "schedule"),
    )
    with store.read() as tx:
        assert tx.get_webhook(project.id, hook.id) == updated
        assert tx.get_webhook(project.id + 1000, hook.id) is None


def test_the_outbox_is_written_with_the_audit_entry_and_only_for_subscribers(
    store: Database, project: Project
) -> None:
    with store.transaction() as tx:
        flags = tx.insert_webhook(
            project.id, "https://h.example/f", "", "s", "t", NOW, events=["flag"]
        )
        off = tx.insert_webhook(
            project.id, "https://h.example/o", "", "s", "t", NOW, events=["flag"], enabled=False
        )
        incidents = tx.insert_webhook(
            project.id, "https://h.example/i", "", "s", "t", NOW, events=["incident", "schedule"]
        )
    with store.transaction() as tx:
        tx.append_audit(_audit(project, "config", "checkout"), NOW)
        tx.append_audit(_audit(project, "member", "ann"), NOW)  # never announced
        tx.append_audit(_audit(project, "action_item", "4/1", "overdue"), NOW)
        tx.append_audit(_audit(project, "change_request", "7", "schedule"), NOW)
        tx.append_audit(_audit(project, "change_request", "7", "approve"), NOW)

    def fail_after_the_audit_entry() -> None:
        with store.transaction() as tx:
            tx.append_audit(_audit(project, "flag", "rolled-back"), NOW)
            raise RuntimeError("the change fails after its audit entry: all rolls back")

    with pytest.raises(RuntimeError):
        fail_after_the_audit_entry()
    with store.read() as tx:
        logged = tx.list_deliveries(project.id, flags.id, limit=10, before_id=None)
        assert [(d.event, d.entity_key, d.status) for d in logged] == [
            ("flag", "checkout", "pending")
        ]
        assert tx.list_deliveries(project.id, off.id, limit=10, before_id=None) == []
        heard = tx.list_deliveries(project.id, incidents.id, limit=10, before_id=None)
        assert [(d.event, d.action) for d in heard] == [
            ("schedule", "schedule"),
            ("incident", "overdue"),
        ]
        assert tx.list_deliveries(project.id + 1000, flags.id, limit=10, before_id=None) == []
        assert tx.any_due(NOW)


def test_claims_lease_deliveries_and_attempts_are_recorded_by_claim(
    store: Database, project: Project
) -> None:
    with store.transaction() as tx:
        hook = tx.insert_webhook(
            project.id, "https://h.example/c", "", "sec", "t", NOW, events=["flag"]
        )
        tx.append_audit(_audit(project, "segment", "staff"), NOW)
    lease = NOW + timedelta(minutes=1)
    with store.transaction() as tx:
        mine = [
            c for c in tx.claim_deliveries(NOW, lease, 1000) if c.delivery.webhook_id == hook.id
        ]
    (claimed,) = mine
    assert (claimed.url, claimed.secret, claimed.project_key) == (
        "https://h.example/c",
        "sec",
        project.key,
    )
    assert (claimed.entry.entity_type, claimed.entry.entity_key) == ("segment", "staff")
    assert (claimed.delivery.attempts, claimed.round_attempt) == (1, 1)
    with store.transaction() as tx:  # leased: nobody claims it again before the lease ends
        again = tx.claim_deliveries(NOW + timedelta(seconds=30), lease, 1000)
        assert hook.id not in {c.delivery.webhook_id for c in again}
    retry_at = NOW + timedelta(minutes=5)
    failed = DeliveryAttempt(NOW, 503, None, 12.5, retry_at)
    with store.transaction() as tx:
        assert not tx.finish_delivery(claimed.delivery.id, 0, failed, "pending")  # stale claim
        assert tx.finish_delivery(claimed.delivery.id, 1, failed, "pending")
    with store.transaction() as tx:
        (second,) = [
            c
            for c in tx.claim_deliveries(retry_at, retry_at + timedelta(minutes=1), 1000)
            if c.delivery.webhook_id == hook.id
        ]
        assert second.delivery.delivery_id == claimed.delivery.delivery_id
        assert tx.finish_delivery(
            second.delivery.id, 2, DeliveryAttempt(retry_at, None, "timeout", 3.0, None), "failed"
        )
    with store.read() as tx:
        (logged,) = tx.list_deliveries(project.id, hook.id, limit=5, before_id=None)
    assert (logged.status, logged.attempts, logged.next_attempt_at) == ("failed", 2, None)
    assert [(a.status_code, a.error, a.next_attempt_at) for a in logged.log] == [
        (None, "timeout", None),
        (503, None, retry_at),
    ]
    later = NOW + timedelta(hours=1)
    with store.transaction() as tx:
        assert tx.redeliver(project.id + 1000, hook.id, logged.id, later) is None
        queued = tx.redeliver(project.id, hook.id, logged.id, later)
    assert queued is not None
    assert (queued.status, queued.round_start, queued.next_attempt_at) == ("pending", 2, later)
    with store.transaction() as tx:
        (third,) = [
            c
            for c in tx.claim_deliveries(later, later + timedelta(minutes=1), 1000)
            if c.delivery.webhook_id == hook.id
        ]
        assert third.round_attempt == 1  # a fresh retry budget
        assert tx.finish_delivery(
            third.delivery.id, 3, DeliveryAttempt(later, 200, None, 1.0, None), "delivered"
        )


def test_pruning_keeps_pending_deliveries_and_the_newest_per_webhook(
    store: Database, project: Project
) -> None:
    with store.transaction() as tx:
        hook = tx.insert_webhook(
            project.id, "https://h.example/p", "", "s", "t", NOW, events=["flag"]
        )
        for i in range(4):
            tx.append_audit(_audit(project, "flag", f"f{i}"), NOW)
    with store.transaction() as tx:
        claimed = [
            c for c in tx.claim_deliveries(NOW, NOW, 1000) if c.delivery.webhook_id == hook.id
        ]
        for c in claimed[:3]:  # the fourth stays pending
            tx.finish_delivery(
                c.delivery.id, 1, DeliveryAttempt(NOW, 200, None, 1.0, None), "delivered"
            )
    with store.transaction() as tx:
        tx.prune_deliveries(NOW - timedelta(days=1), 1_000_000, 10_000)
    with store.read() as tx:
        assert len(tx.list_deliveries(project.id, hook.id, limit=10, before_id=None)) == 4
    with store.transaction() as tx:
        tx.prune_deliveries(NOW - timedelta(days=1), 2, 10_000)  # keep the newest two
    with store.read() as tx:
        kept = tx.list_deliveries(project.id, hook.id, limit=10, before_id=None)
    assert [d.entity_key for d in kept] == ["f3", "f2"]
    assert kept[0].status == "pending"
    with store.transaction() as tx:
        tx.prune_deliveries(NOW + timedelta(days=1), 1_000_000, 10_000)
        assert tx.delete_webhook(project.id, hook.id)
    with store.read() as tx:
        assert tx.list_deliveries(project.id, hook.id, limit=10, before_id=None) == []
