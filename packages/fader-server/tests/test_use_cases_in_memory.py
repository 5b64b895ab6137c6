"""Use cases on their own, over the in-memory store: no server, no database, no HTTP.

These rules were only exercised through a running server before; here each is one call to a
service. The in-memory store behaves like the SQL one wherever a use case can tell
(``test_storage_contract.py`` holds both to the same contract); the API, concurrency and
durability tests keep running on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fader_server.errors import InvalidStateError, NotFoundError, PermissionDeniedError
from fader_server.rollout_logic.decide import Action
from fader_server.runtime.scheduler import Scheduler
from fader_server.services import Services
from fader_server.services.access import Principal, Role
from fader_server.services.outbound_policy import OutboundPolicy
from fader_server.storage.memory import MemoryStore
from fader_server.storage.ports import EnvironmentChange

ADMIN = Principal("user:admin", instance_admin=True)
FLAG = {"name": "New checkout", "type": "boolean", "variants": {"on": True, "off": False}}
SERVING_OFF = {
    "enabled": True,
    "offVariant": "off",
    "rules": [],
    "default": {"variant": "off"},
    "prerequisites": [],
}
INTERNAL = {"name": "Internal", "included": ["ann"]}
ANN, BOB = {"targetingKey": "ann"}, {"targetingKey": "bob"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    opened = MemoryStore()
    yield opened
    opened.close()


@pytest.fixture
def services(store: MemoryStore, clock: Clock) -> Services:
    """A project `shop` (development, staging, protected production) with flag `new-checkout`
    serving `off` in every environment and segment `internal` (ann)."""
    found = Services.over(store, clock, OutboundPolicy.parse(["hooks.example"]))
    found.projects.create(ADMIN, "shop", "Shop")
    found.segments.create(ADMIN, "shop", "internal", INTERNAL, None)
    found.flags.create(ADMIN, "shop", "new-checkout", FLAG, None)
    for env in ("development", "production"):
        found.flags.put_config(ADMIN, "shop", env, "new-checkout", SERVING_OFF, 0, None)
    return found


def editor(services: Services) -> Principal:
    project = services.projects.get(ADMIN, "shop")
    return Principal("user:ed", roles={project.id: Role.EDITOR})


def serves(services: Services, environment: str, context: dict[str, Any]) -> Any:
    return services.flags.evaluate(ADMIN, "shop", environment, "new-checkout", context).value


def stage(name: str, *, segment: str | None = None, percent: float | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "min_duration": 60.0,
        "segment": segment,
        "percent": percent,
        "approval": False,
    }


def plan_body(environment: str = "development", *, start: bool = True) -> dict[str, Any]:
    return {
        "flag": "new-checkout",
        "environment": environment,
        "control": "off",
        "treatment": "on",
        "stages": [stage("internal", segment="internal"), stage("everyone", percent=100.0)],
        "gates": [],
        "template": None,
        "split_by": None,
        "enable": False,
        "start": start,
    }


# ------------------------------------------------------------------------------ flags
def test_the_kill_switch_writes_one_audited_version_and_announces_it_once(
    services: Services, store: MemoryStore
) -> None:
    announced: list[EnvironmentChange] = []
    store.subscribe(announced.extend)
    project = services.projects.get(ADMIN, "shop")
    with store.read() as tx:
        before = tx.revision(project.id, "production")
    off = services.flags.toggle(ADMIN, "shop", "production", "new-checkout", False, None, "oops")
    again = services.flags.toggle(ADMIN, "shop", "production", "new-checkout", False, None, None)
    assert (off.data["enabled"], off.version) == (False, 2)
    assert again.version == 2  # already off: no empty version, no second announcement
    assert [(c.environment, c.revision) for c in announced] == [("production", before + 1)]
    history = services.projects.audit(
        ADMIN, "shop", limit=5, before_id=None, entity_types=("config",), entity_key="new-checkout"
    )
    latest = history[0]
    assert (latest.action, latest.environment, latest.comment) == ("disable", "production", "oops")


def test_an_editor_may_not_change_what_a_protected_environment_serves(
    services: Services,
) -> None:
    ed = editor(services)
    services.flags.toggle(ed, "shop", "development", "new-checkout", False, None, None)
    with pytest.raises(PermissionDeniedError, match="production"):
        services.flags.toggle(ed, "shop", "production", "new-checkout", False, None, None)
    current = services.flags.get(ADMIN, "shop", "new-checkout")
    # a definition is project-wide: giving `off` another value changes what production serves
    flipped = {**FLAG, "variants": {"on": True, "off": True}}
    with pytest.raises(PermissionDeniedError):
        services.flags.update(ed, "shop", "new-checkout", flipped, current.version, None)
    described = {**FLAG, "description": "Single-page checkout"}
    updated = services.flags.update(ed, "shop", "new-checkout", described, current.version, None)
    assert updated.version == current.version + 1


def test_a_project_without_a_role_is_indistinguishable_from_no_project(
    services: Services,
) -> None:
    stranger = Principal("user:eve")
    with pytest.raises(NotFoundError) as hidden:
        services.flags.get(stranger, "shop", "new-checkout")
    with pytest.raises(NotFoundError) as missing:
        services.flags.get(stranger, "nowhere", "new-checkout")
    assert str(hidden.value).replace("shop", "?") == str(missing.value).replace("nowhere", "?")


# --------------------------------------------------------------------------- rollouts
def test_a_release_plan_serves_each_stage_and_an_abort_restores_the_flag(
    services: Services,
) -> None:
    started = services.rollouts.create(ADMIN, "shop", plan_body())
    assert (serves(services, "development", ANN), serves(services, "development", BOB)) == (
        True,
        False,
    )
    advanced = services.rollouts.advance(ADMIN, "shop", started.stored.id)
    assert advanced.state.stage == 1
    assert serves(services, "development", BOB) is True
    services.rollouts.abort(ADMIN, "shop", started.stored.id, "not today")
    assert (serves(services, "development", ANN), serves(services, "development", BOB)) == (
        False,
        False,
    )
    config = services.flags.get_config(ADMIN, "shop", "development", "new-checkout")
    assert config.data == SERVING_OFF


def test_a_flag_cannot_be_deleted_while_a_plan_moves_it(services: Services) -> None:
    plan = services.rollouts.create(ADMIN, "shop", plan_body())
    version = services.flags.get(ADMIN, "shop", "new-checkout").version
    with pytest.raises(InvalidStateError, match=f"release plan {plan.stored.id}"):
        services.flags.delete(ADMIN, "shop", "new-checkout", version, None)
    services.rollouts.abort(ADMIN, "shop", plan.stored.id)
    services.flags.delete(ADMIN, "shop", "new-checkout", version, None)


def test_a_person_s_command_writes_its_webhook_deliveries_in_its_own_transaction(
    services: Services,
) -> None:
    hook = services.webhooks.create(ADMIN, "shop", "https://hooks.example/fader")
    quiet = services.webhooks.create(
        ADMIN, "shop", "https://hooks.example/flags-only", events=["flag"]
    )
    started = services.rollouts.create(ADMIN, "shop", plan_body())
    services.rollouts.pause(ADMIN, "shop", started.stored.id)
    logged = services.webhooks.deliveries(ADMIN, "shop", hook.id, limit=10)
    assert [(d.event, d.action, d.status) for d in logged] == [
        ("rollout", "pause", "pending"),
        ("rollout", "start", "pending"),
        ("rollout", "create", "pending"),
    ]
    assert len({d.delivery_id for d in logged}) == 3
    # the flag-only webhook hears of the configuration the plan serves, not of the plan
    flag_log = services.webhooks.deliveries(ADMIN, "shop", quiet.id, limit=10)
    assert [(d.event, d.entity_type, d.action) for d in flag_log] == [
        ("flag", "config", "rollout start")
    ]


def test_the_scheduler_advances_a_plan_once_its_stage_has_lasted(
    services: Services, store: MemoryStore, clock: Clock
) -> None:
    plan = services.rollouts.create(ADMIN, "shop", plan_body())
    scheduler = Scheduler(store, services.rollouts, clock=clock.seconds)
    try:

        def actions(after: float) -> Sequence[Action]:
            clock.now += timedelta(seconds=after)
            return [step.action for step in scheduler.tick(clock.seconds())]

        assert actions(30) == [Action.WAIT]
        assert actions(31) == [Action.ADVANCE]
        assert serves(services, "development", BOB) is True
        assert actions(61) == [Action.COMPLETE]
        assert actions(60) == []  # finished plans are not looked at again
    finally:
        scheduler.close()
    status = services.rollouts.get(ADMIN, "shop", plan.stored.id)
    assert status.state.status.value == "completed"
    audit = services.projects.audit(
        ADMIN, "shop", limit=10, before_id=None, entity_types=("rollout",)
    )
    assert [(e.actor, e.action) for e in audit][:2] == [
        (f"rollout:{plan.stored.id}", "complete"),
        (f"rollout:{plan.stored.id}", "advance"),
    ]
