"""Guarded rollouts' storage: release plans, templates, webhooks, and the usage totals metric
gates read (:mod:`fader_server.services.rollouts`, the scheduler). The incidents rollbacks open
are in :mod:`.incidents`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from fader_server.storage.ports.records import (
    JSON,
    NewPlan,
    PlanUpdate,
    RolloutTemplate,
    StoredPlan,
    VariantTotals,
    Webhook,
)


class PlanReads(Protocol):
    def get_plan(self, project_id: int, plan_id: int) -> StoredPlan | None: ...

    def list_plans(
        self,
        project_id: int,
        *,
        limit: int,
        before_id: int | None,
        flag: str | None = None,
        status: str | None = None,
    ) -> list[StoredPlan]:
        """Newest first, below `before_id` when given."""
        ...

    def active_plans(self) -> list[StoredPlan]:
        """Plans the scheduler must look at (running, paused or awaiting approval), any
        project, oldest first."""
        ...


class PlanRows(PlanReads, Protocol):
    def insert_plan(self, plan: NewPlan, at: datetime) -> StoredPlan:
        """Raises :class:`~fader_server.errors.AlreadyExistsError` if the flag already has an
        unfinished plan in that environment."""
        ...

    def lock_plan(self, plan_id: int, *, wait: bool) -> StoredPlan | None:
        """The plan, locked until the transaction ends. Without `wait`, None when another
        transaction holds it (PostgreSQL ``FOR UPDATE SKIP LOCKED``; SQLite's write
        transactions are serialised already)."""
        ...

    def update_plan(self, plan: StoredPlan, update: PlanUpdate, at: datetime) -> StoredPlan | None:
        """Compare-and-swap on `plan.version`; None when someone else wrote first. A plan
        written with ``active=False`` no longer counts as its flag's unfinished plan."""
        ...


class TemplateRows(Protocol):
    def insert_template(
        self, project_id: int, key: str, name: str, data: JSON, created_by: str, at: datetime
    ) -> RolloutTemplate:
        """Raises :class:`~fader_server.errors.AlreadyExistsError` for a key already used in
        the project."""
        ...

    def get_template(self, project_id: int, key: str) -> RolloutTemplate | None: ...

    def list_templates(self, project_id: int) -> list[RolloutTemplate]:
        """Ordered by key."""
        ...

    def delete_template(self, project_id: int, key: str) -> bool: ...


class WebhookRows(Protocol):
    def insert_webhook(
        self,
        project_id: int,
        url: str,
        description: str,
        secret: str,
        created_by: str,
        at: datetime,
        *,
        events: Sequence[str] = ("rollout",),
        enabled: bool = True,
    ) -> Webhook:
        """Raises :class:`~fader_server.errors.AlreadyExistsError` for a URL already registered
        in the project."""
        ...

    def list_webhooks(self, project_id: int) -> list[Webhook]:
        """Oldest first."""
        ...

    def delete_webhook(self, project_id: int, webhook_id: int) -> bool:
        """Its deliveries and their attempts go with it."""
        ...


class EventAggregates(Protocol):
    """What metric gates read of the per-minute usage rollups (docs/events.md): totals computed
    by the database, per variant (rows without one are left out) and per stage window."""

    def event_totals(
        self,
        project_id: int,
        environment: str,
        flag: str,
        since: datetime,
        key_kinds: Sequence[str] = ("server",),
    ) -> dict[str, VariantTotals]:
        """Per variant: evaluations (`exposures`) and custom metrics (by name) of `flag` in the
        minutes that began at or after `since` (the server's receive time), reported with SDK
        keys of the `key_kinds`."""
        ...

    def event_windows(
        self,
        project_id: int,
        environment: str,
        flag: str,
        starts: Sequence[datetime],
        key_kinds: Sequence[str] = ("server",),
    ) -> list[dict[str, VariantTotals]]:
        """:meth:`event_totals` per window, in one query: window `i` holds the minutes ``m``
        with ``starts[i] <= m`` and ``m + 60 s <= starts[i + 1]`` (`starts` increasing); the last
        is open-ended, and a minute in which a window started counts in no earlier window
        (:func:`fader_server.rollout_logic.minute_windows.minute_window`)."""
        ...
