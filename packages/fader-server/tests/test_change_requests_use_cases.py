"""Change requests as use cases over the in-memory store: the rules one call at a time (the API,
scheduling on SQLite and PostgreSQL, and replicas are in ``test_change_requests.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fader_server.errors import (
    ChangeRequestRequiredError,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    PermissionDeniedError,
    VersionConflictError,
)
from fader_server.runtime.scheduled_changes import ScheduledChanges
from fader_server.services import Services
from fader_server.services.access import Principal, Role
from fader_server.storage.memory import MemoryStore
from fader_server.storage.ports.usage import DebugEvent

ROOT = Principal("user:root", instance_admin=True, user_id=1)
FLAG = {"name": "Checkout", "type": "boolean", "variants": {"on": True, "off": False}}
ON = {
    "enabled": True,
    "offVariant": "off",
    "rules": [],
    "default": {"variant": "on"},
    "prerequisites": [],
}
HALF = {
    "enabled": True,
    "offVariant": "off",
    "rules": [],
    "default": {
        "split": {"weights": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]}
    },
}
PROPOSAL = {"problem": "checkout is slow", "change": "turn the new one on", "rollback": "off"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class World:
    def __init__(self) -> None:
        self.clock = Clock()
        self.store = MemoryStore()
        self.svc = Services.over(self.store, self.clock)
        project = self.svc.projects.create(ROOT, "shop", "Shop")
        self.pid = project.id
        self.svc.flags.create(ROOT, "shop", "checkout", FLAG, None)
        self.require("production", approvals=1, roles=["admin"])

    def member(self, name: str, role: Role, user_id: int) -> Principal:
        return Principal(f"user:{name}", roles={self.pid: role}, user_id=user_id)

    def require(self, env: str, *, approvals: int, roles: list[str], required: bool = True) -> None:
        current = self.svc.projects.environment(ROOT, "shop", env)
        data = {
            **current.data,
            "change_requests": {
                "required": required,
                "approvals": approvals,
                "approver_roles": roles,
            },
        }
        self.svc.projects.update_environment(ROOT, "shop", env, data, current.version, None)

    def propose(self, who: Principal, *ops: dict[str, Any], **extra: Any) -> Any:
        return self.svc.change_requests.propose(
            who, "shop", title="Turn checkout on", proposal=PROPOSAL, operations_in=ops, **extra
        )

    def served(self, env: str, key: str = "checkout") -> Any:
        return self.svc.flags.get_config(ROOT, "shop", env, key).data


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    w.store.close()


def config_op(
    env: str = "production", config: dict[str, Any] | None = None, **how: Any
) -> dict[str, Any]:
    """A configuration operation: `config` (default ON), or `how` (``enabled=True``...)."""
    given = how or {"config": config or ON}
    return {"kind": "flag_config", "environment": env, "flag": "checkout", **given}


def test_propose_approve_apply(world: World) -> None:
    editor = world.member("ed", Role.EDITOR, 2)
    admin = world.member("ada", Role.ADMIN, 3)
    view = world.propose(editor, config_op())
    assert view.request.status == "open"
    assert [r.environment for r in view.requirements] == ["production"]
    assert view.diffs[0] == [
        {"path": "/default/variant", "before": "off", "after": "on"},
        {"path": "/enabled", "before": False, "after": True},
    ]
    rid = view.request.id
    with pytest.raises(PermissionDeniedError, match="someone else"):
        world.svc.change_requests.review(editor, "shop", rid, "approve")
    with pytest.raises(PermissionDeniedError, match="admin role"):
        world.svc.change_requests.review(
            world.member("eve", Role.EDITOR, 4), "shop", rid, "approve"
        )
    with pytest.raises(InvalidStateError, match="not approved"):
        world.svc.change_requests.apply(editor, "shop", rid)
    world.svc.change_requests.review(admin, "shop", rid, "comment", "looks fine")
    approved = world.svc.change_requests.review(admin, "shop", rid, "approve", "ship it")
    assert approved.request.status == "approved"
    applied = world.svc.change_requests.apply(editor, "shop", rid)
    assert applied.request.status == "applied"
    assert world.served("production")["enabled"] is True
    audit = world.svc.projects.audit(ROOT, "shop", limit=20, before_id=None)
    actions = [(e.entity_type, e.action) for e in audit]
    assert ("change_request", "applied") in actions
    assert ("change_request", "approved") in actions
    assert ("change_request", "commented") in actions
    assert ("change_request", "proposed") in actions
    config_entry = next(e for e in audit if e.entity_type == "config")
    assert config_entry.comment == f"change request #{rid}: Turn checkout on"
    assert config_entry.actor == "user:ed"


def test_a_moved_base_needs_an_update(world: World) -> None:
    editor = world.member("ed", Role.EDITOR, 2)
    admin = world.member("ada", Role.ADMIN, 3)
    rid = world.propose(editor, config_op()).request.id
    world.svc.change_requests.review(admin, "shop", rid, "approve")
    # The emergency path moves the base: turning production off stays direct for admins.
    world.svc.flags.put_config(ROOT, "shop", "staging", "checkout", ON, 0, None)
    world.require("production", approvals=1, roles=["admin"], required=False)
    world.svc.flags.put_config(ROOT, "shop", "production", "checkout", HALF, 0, None)
    world.require("production", approvals=1, roles=["admin"])
    with pytest.raises(InvalidStateError, match="version 1, not 0"):
        world.svc.change_requests.apply(editor, "shop", rid)
    stale = world.svc.change_requests.get(ROOT, "shop", rid)
    assert stale.request.status == "needs_update"
    assert world.served("production") == HALF  # nothing of the request was written
    updated = world.svc.change_requests.update(
        editor, "shop", rid, expected_version=stale.request.version, operations_in=[config_op()]
    )
    assert updated.request.status == "open"  # approvals reset: reviewers saw other bases
    world.svc.change_requests.review(admin, "shop", rid, "approve")
    world.svc.change_requests.apply(editor, "shop", rid)
    assert world.served("production")["default"] == {"variant": "on"}


def test_direct_writes_refused_where_required_and_emergency_off(world: World) -> None:
    admin = world.member("ada", Role.ADMIN, 3)
    with pytest.raises(ChangeRequestRequiredError, match="change-requests propose"):
        world.svc.flags.put_config(admin, "shop", "production", "checkout", ON, 0, None)
    world.svc.flags.put_config(admin, "shop", "staging", "checkout", ON, 0, None)  # elsewhere
    with pytest.raises(ChangeRequestRequiredError):
        world.svc.flags.toggle(admin, "shop", "production", "checkout", True, None, None)
    flipped = {**FLAG, "variants": {"on": True, "off": True}}
    with pytest.raises(ChangeRequestRequiredError, match="production"):
        world.svc.flags.update(admin, "shop", "checkout", flipped, 1, None)
    # Applied through a request, then the kill switch works as one action.
    rid = world.propose(world.member("ed", Role.EDITOR, 2), config_op()).request.id
    world.svc.change_requests.review(admin, "shop", rid, "approve")
    world.svc.change_requests.apply(admin, "shop", rid)
    off = world.svc.flags.toggle(admin, "shop", "production", "checkout", False, None, "fire")
    assert off.data["enabled"] is False
    entry = world.svc.projects.audit(ROOT, "shop", limit=1, before_id=None)[0]
    assert (entry.action, entry.comment) == ("emergency disable", "emergency: fire")
    with pytest.raises(PermissionDeniedError):  # an editor is not an emergency role here
        world.svc.flags.toggle(
            world.member("ed", Role.EDITOR, 2), "shop", "production", "checkout", False, None, None
        )


def test_reject_and_cancel(world: World) -> None:
    editor = world.member("ed", Role.EDITOR, 2)
    admin = world.member("ada", Role.ADMIN, 3)
    first = world.propose(editor, config_op()).request.id
    assert world.svc.change_requests.review(
        admin, "shop", first, "reject", "no"
    ).request.status == ("rejected")
    with pytest.raises(InvalidStateError):
        world.svc.change_requests.review(admin, "shop", first, "approve")
    second = world.propose(editor, config_op()).request.id
    with pytest.raises(PermissionDeniedError):
        world.svc.change_requests.cancel(world.member("eve", Role.EDITOR, 4), "shop", second)
    assert world.svc.change_requests.cancel(editor, "shop", second).request.status == "cancelled"


def test_two_approvals_and_roles(world: World) -> None:
    world.require("production", approvals=2, roles=["admin", "editor"])
    editor = world.member("ed", Role.EDITOR, 2)
    rid = world.propose(editor, config_op()).request.id
    one = world.svc.change_requests.review(
        world.member("eve", Role.EDITOR, 4), "shop", rid, "approve"
    )
    assert one.request.status == "open"
    assert one.requirements[0].approved_by == ("user:eve",)
    with pytest.raises(PermissionDeniedError):
        world.svc.change_requests.review(world.member("vi", Role.VIEWER, 5), "shop", rid, "approve")
    two = world.svc.change_requests.review(
        world.member("ada", Role.ADMIN, 3), "shop", rid, "approve"
    )
    assert two.request.status == "approved"


def test_ungoverned_request_is_approved_at_once(world: World) -> None:
    view = world.propose(world.member("ed", Role.EDITOR, 2), config_op("development"))
    assert (view.request.status, view.requirements) == ("approved", [])


def test_invalid_operations_refused(world: World) -> None:
    editor = world.member("ed", Role.EDITOR, 2)
    with pytest.raises(InvalidInputError):
        world.propose(editor, config_op(config={**ON, "default": {"variant": "nope"}}))
    with pytest.raises(NotFoundError):
        world.propose(editor, {**config_op(), "flag": "missing"})
    with pytest.raises(VersionConflictError):
        world.propose(editor, {**config_op(), "base_version": 3})
    with pytest.raises(InvalidInputError, match="two operations"):
        world.propose(editor, config_op(), config_op())
    with pytest.raises(InvalidInputError, match="policy"):
        world.require("staging", approvals=1, roles=["admin"])  # not protected


def test_impact_preview_on_uploaded_contexts(world: World) -> None:
    editor = world.member("ed", Role.EDITOR, 2)
    contexts = [{"targetingKey": f"user-{i}"} for i in range(200)]
    rid = world.propose(editor, config_op(config=HALF), contexts=contexts).request.id
    found = world.svc.change_requests.preview_impact(ROOT, "shop", rid)
    assert (found.source, found.contexts) == ("uploaded", 200)
    [flag] = found.flags
    assert (flag.environment, flag.flag, flag.evaluated) == ("production", "checkout", 200)
    # Before: off for everyone (never configured). After: a 50/50 split: about half move.
    assert 60 < flag.changed < 140
    assert all(e.before == "off" and e.after == "on" for e in flag.examples)
    assert len(flag.examples) == 10


def test_scheduled_apply_at_the_injected_time(world: World) -> None:
    editor = world.member("ed", Role.EDITOR, 2)
    admin = world.member("ada", Role.ADMIN, 3)
    at = world.clock.now + timedelta(hours=1)
    rid = world.propose(editor, config_op(), apply_at=at).request.id
    scheduled = world.svc.change_requests.scheduled_for_flag(ROOT, "shop", "checkout")
    assert [r.id for r in scheduled] == [rid]
    runner = ScheduledChanges(world.svc.change_requests, world.clock)
    world.clock.now = at + timedelta(minutes=1)
    assert runner.tick() == []  # not approved: waits
    world.clock.now = at - timedelta(minutes=5)
    world.svc.change_requests.review(admin, "shop", rid, "approve")
    assert runner.tick() == []  # approved, not yet due
    world.clock.now = at
    assert runner.tick() == [(rid, "applied")]
    assert runner.tick() == []
    assert world.served("production")["enabled"] is True
    assert world.svc.change_requests.scheduled_for_flag(ROOT, "shop", "checkout") == []


def test_scheduled_conflict_is_recorded_not_forced(world: World) -> None:
    editor = world.member("ed", Role.EDITOR, 2)
    at = world.clock.now + timedelta(hours=1)
    rid = world.propose(editor, config_op("development"), apply_at=at).request.id
    world.svc.flags.put_config(ROOT, "shop", "development", "checkout", HALF, 0, None)
    world.clock.now = at
    runner = ScheduledChanges(world.svc.change_requests, world.clock)
    assert runner.tick() == [(rid, "apply_failed")]
    failed = world.svc.change_requests.get(ROOT, "shop", rid).request
    assert failed.status == "apply_failed"
    assert "version 1, not 0" in (failed.failure or "")
    assert world.served("development") == HALF
    entry = world.svc.projects.audit(ROOT, "shop", limit=1, before_id=None)[0]
    assert (entry.entity_type, entry.action) == ("change_request", "apply_failed")


def test_cross_project_requests_are_invisible(world: World) -> None:
    world.svc.projects.create(ROOT, "other", "Other")
    rid = world.propose(world.member("ed", Role.EDITOR, 2), config_op()).request.id
    stranger = Principal("user:zed", roles={world.pid + 1: Role.ADMIN}, user_id=9)
    with pytest.raises(NotFoundError):
        world.svc.change_requests.get(stranger, "shop", rid)
    with pytest.raises(NotFoundError):
        world.svc.change_requests.get(ROOT, "other", rid)


def test_the_policy_names_who_approves_even_below_editor(world: World) -> None:
    world.require("production", approvals=1, roles=["viewer"])
    rid = world.propose(world.member("ed", Role.EDITOR, 2), config_op()).request.id
    with pytest.raises(PermissionDeniedError, match="viewer role"):
        world.svc.change_requests.review(world.member("ada", Role.ADMIN, 3), "shop", rid, "approve")
    approved = world.svc.change_requests.review(
        world.member("vi", Role.VIEWER, 5), "shop", rid, "approve"
    )
    assert approved.request.status == "approved"
    ungoverned = world.propose(world.member("ed", Role.EDITOR, 2), config_op("staging"))
    with pytest.raises(PermissionDeniedError, match="editor role"):
        world.svc.change_requests.review(
            world.member("vi", Role.VIEWER, 5), "shop", ungoverned.request.id, "reject"
        )


def test_the_impact_sample_defaults_to_recent_debug_events(world: World) -> None:
    events = [
        DebugEvent("checkout", "off", "DEFAULT", f"user-{i}", world.clock.now) for i in range(40)
    ]
    with world.store.transaction() as tx:
        tx.add_debug_events(world.pid, "production", "server", events, world.clock.now, 100)
    rid = world.propose(world.member("ed", Role.EDITOR, 2), config_op(config=HALF)).request.id
    found = world.svc.change_requests.preview_impact(ROOT, "shop", rid)
    assert (found.source, found.contexts) == ("usage", 40)
    [flag] = found.flags
    assert flag.evaluated == 40
    assert 0 < flag.changed < 40
    nothing = world.propose(world.member("ed", Role.EDITOR, 2), config_op("staging"))
    empty = world.svc.change_requests.preview_impact(ROOT, "shop", nothing.request.id)
    assert (empty.source, empty.contexts) == ("none", 0)


def test_an_update_without_operations_rebases_the_same_intent(world: World) -> None:
    editor = world.member("ed", Role.EDITOR, 2)
    at = world.clock.now + timedelta(hours=1)
    rid = world.propose(editor, config_op("development", enabled=True), apply_at=at).request.id
    world.svc.flags.put_config(ROOT, "shop", "development", "checkout", HALF, 0, None)
    world.clock.now = at
    assert ScheduledChanges(world.svc.change_requests, world.clock).tick() == [
        (rid, "apply_failed")
    ]
    failed = world.svc.change_requests.get(ROOT, "shop", rid).request
    later = at + timedelta(hours=1)
    rebased = world.svc.change_requests.update(
        editor, "shop", rid, expected_version=failed.version, apply_at=later
    )
    assert rebased.request.status == "approved"  # no policy governs development
    [op] = rebased.request.operations
    assert (op["base_version"], op["source"]) == (1, "toggle")
    assert op["after"] == {**HALF, "enabled": True}
    world.clock.now = later
    ScheduledChanges(world.svc.change_requests, world.clock).tick()
    assert world.served("development")["enabled"] is True


def test_an_update_rebases_a_request_whose_base_moved_before_any_apply(world: World) -> None:
    """A base can move while the request is still open or approved (nobody tried to apply it
    yet): updating it with no operations brings it onto the current versions all the same,
    and the approvals given on the old bases no longer count."""
    editor = world.member("ed", Role.EDITOR, 2)
    admin = world.member("ada", Role.ADMIN, 3)
    rid = world.propose(editor, config_op()).request.id
    world.svc.change_requests.review(admin, "shop", rid, "approve")
    world.require("production", approvals=1, roles=["admin"], required=False)
    world.svc.flags.put_config(ROOT, "shop", "production", "checkout", HALF, 0, None)
    world.require("production", approvals=1, roles=["admin"])
    seen = world.svc.change_requests.get(ROOT, "shop", rid)
    assert seen.request.status == "approved"
    assert seen.moved
    updated = world.svc.change_requests.update(
        editor, "shop", rid, expected_version=seen.request.version
    )
    assert updated.request.status == "open"
    assert not updated.moved
    world.svc.change_requests.review(admin, "shop", rid, "approve")
    world.svc.change_requests.apply(editor, "shop", rid)
    assert world.served("production")["default"] == {"variant": "on"}
