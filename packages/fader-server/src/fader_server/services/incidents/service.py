"""Use cases for incidents: open one by hand, acknowledge, resolve, reopen, write the
post-mortem and its action items, list what is still to do, and escalate overdue items.

The lifecycle (docs/incidents.md)::

    open ──acknowledge──▶ acknowledged ──resolve──▶ resolved
      └────────────────resolve────────────────────▶   │
    open or acknowledged ◀────────reopen───────────────┘

A step that does not apply to the incident's state is an :class:`InvalidStateError` (409) that
says which state it is in. Every step is a compare-and-swap on the incident's version (an
``If-Match`` that names an older version is a 412; without one, a concurrent step still cannot
be lost, only refused) and appends its audit entry in the same transaction
(:mod:`.records`). Reads need the viewer role, every write the editor role.

A post-mortem holds a summary and at most :data:`~.records.MAX_ACTION_ITEMS` action items, each
owned by someone with access to the project and due on a day (UTC). An item is ``open`` or
``done``; an open item past its due day is *overdue*, listed as such until it is done, and
announced once by :meth:`IncidentService.escalate_overdue` (run by the escalation job on every
replica: the compare-and-swap on the item's row lets exactly one of them write the ``overdue``
audit entry, which the notification outbox delivers).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Protocol

from fader_server.errors import (
    FieldProblem,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    PreconditionRequiredError,
    VersionConflictError,
)
from fader_server.services.access import Clock, Principal, Role, load_project
from fader_server.services.incidents import records
from fader_server.services.incidents.records import (
    ACKNOWLEDGED,
    ITEM_DONE,
    ITEM_OPEN,
    ITEM_OVERDUE,
    MAX_ACTION_ITEMS,
    OPEN,
    RESOLVED,
    IncidentView,
)
from fader_server.storage.ports import PROJECT_SCOPE, Incident, Project, ResourceType
from fader_server.storage.ports.accounts import MemberRows, UserRows
from fader_server.storage.ports.audit import AuditLog
from fader_server.storage.ports.incidents import (
    ActionItem,
    ActionItemRows,
    IncidentRows,
    ItemCursor,
    NewActionItem,
    NewIncident,
)
from fader_server.storage.ports.projects import ProjectAccess
from fader_server.storage.ports.resources import ResourceReads
from fader_server.storage.ports.store import Store

MAX_DUE_DAYS = 3 * 366
"""How far ahead a due day may be: an item due in years is not a commitment."""
ESCALATION_BATCH = 200
"""Items one escalation run looks at; the next run takes the rest."""


class IncidentTx(
    ProjectAccess,
    ResourceReads,
    IncidentRows,
    ActionItemRows,
    AuditLog,
    UserRows,
    MemberRows,
    Protocol,
):
    """What incident use cases touch: the incident and its items, the audit log they write
    and read back as the timeline, the flag and environment an incident names, and the users
    who may own an item."""


def _text(value: str, path: str, what: str, limit: int, *, required: bool) -> str:
    """`value` stripped and bounded; a problem naming `path` otherwise."""
    text = value.strip()
    if required and not text:
        raise InvalidInputError(f"{what} is required", [FieldProblem(path, f"give the {what}")])
    if len(text) > limit:
        raise InvalidInputError(
            f"{what} is too long",
            [FieldProblem(path, f"keep the {what} within {limit} characters, not {len(text)}")],
        )
    return text


def _check_version(
    incident_or_item: Incident | ActionItem, expected: int | None, what: str
) -> None:
    if expected is not None and expected != incident_or_item.version:
        raise VersionConflictError(
            f"{what} is at version {incident_or_item.version}, not {expected}: someone changed "
            "it since you read it. Read it again and retry.",
            current_version=incident_or_item.version,
        )


def _lost(what: str) -> VersionConflictError:
    return VersionConflictError(f"{what} changed while this action ran; read it again and retry")


class IncidentService:
    def __init__(self, store: Store[IncidentTx], clock: Clock) -> None:
        self.store = store
        self.clock = clock

    # ------------------------------------------------------------------- reads
    def list_incidents(
        self,
        principal: Principal,
        project_key: str,
        *,
        limit: int,
        before_id: int | None,
        state: str | None = None,
        plan_id: int | None = None,
    ) -> list[Incident]:
        """Newest first, below `before_id` when given; only those in `state` when given."""
        if state is not None and state not in records.STATES:
            raise InvalidInputError(
                f"unknown incident state '{state}'",
                [FieldProblem("/state", f"use one of {', '.join(records.STATES)}")],
            )
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            return tx.list_incidents(
                project.id, limit=limit, before_id=before_id, plan_id=plan_id, state=state
            )

    def get(self, principal: Principal, project_key: str, incident_id: int) -> IncidentView:
        """The incident with its action items and its timeline."""
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            return self._view(tx, project, self._incident(tx, project, incident_id))

    def action_items(
        self,
        principal: Principal,
        project_key: str,
        *,
        status: str | None,
        limit: int,
        after: ItemCursor | None = None,
    ) -> list[ActionItem]:
        """The project's action items across incidents, soonest due first: ``open`` (overdue
        ones included), ``overdue`` only, ``done``, or all (`status` None)."""
        if status is not None and status not in records.ITEM_FILTERS:
            raise InvalidInputError(
                f"unknown action item status '{status}'",
                [FieldProblem("/status", f"use one of {', '.join(records.ITEM_FILTERS)}")],
            )
        due_before = records.today(self.clock()) if status == ITEM_OVERDUE else None
        stored = ITEM_OPEN if status == ITEM_OVERDUE else status
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            return tx.list_action_items(
                project.id, limit=limit, after=after, status=stored, due_before=due_before
            )

    # -------------------------------------------------------------- lifecycle
    def open(
        self,
        principal: Principal,
        project_key: str,
        *,
        title: str,
        severity: str,
        description: str = "",
        flag: str | None = None,
        environment: str | None = None,
    ) -> IncidentView:
        """Open an incident by hand (rollbacks open theirs in the rollback's transaction)."""
        title = _text(title, "/title", "title", records.MAX_TITLE, required=True)
        description = _text(
            description, "/description", "description", records.MAX_DESCRIPTION, required=False
        )
        if severity not in records.SEVERITIES:
            raise InvalidInputError(
                f"unknown severity '{severity}'",
                [FieldProblem("/severity", f"use one of {', '.join(records.SEVERITIES)}")],
            )
        now = self.clock()
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            for path, kind, key in (
                ("/environment", ResourceType.ENVIRONMENT, environment),
                ("/flag", ResourceType.FLAG, flag),
            ):
                if key is not None:
                    found = tx.get_resource(project.id, kind, PROJECT_SCOPE, key)
                    if found is None or found.deleted:
                        raise InvalidInputError(
                            f"{kind.value} '{key}' does not exist in project '{project.key}'",
                            [FieldProblem(path, f"name an existing {kind.value}, or leave it out")],
                        )
            incident = tx.insert_incident(
                NewIncident(
                    project_id=project.id,
                    title=title,
                    severity=severity,
                    opened_by=principal.actor,
                    description=description,
                    flag=flag,
                    environment=environment,
                ),
                now,
            )
            opened = [
                {"path": "/title", "after": title},
                {"path": "/severity", "after": severity},
                {"path": "/state", "after": OPEN},
            ]
            records.audit_incident(tx, incident, "opened", principal.actor, now, opened)
            return self._view(tx, project, incident)

    def acknowledge(
        self,
        principal: Principal,
        project_key: str,
        incident_id: int,
        *,
        expected: int | None = None,
        comment: str | None = None,
    ) -> IncidentView:
        """Someone is on it: open → acknowledged."""

        def step(incident: Incident, now: datetime) -> Incident:
            if incident.state != OPEN:
                raise InvalidStateError(
                    f"incident {incident.id} is {incident.state}; only an open incident can be "
                    "acknowledged" + (" (reopen it first)" if incident.state == RESOLVED else "")
                )
            return replace(
                incident, state=ACKNOWLEDGED, acknowledged_by=principal.actor, acknowledged_at=now
            )

        return self._transition(
            principal, project_key, incident_id, expected, comment, "acknowledged", step
        )

    def resolve(
        self,
        principal: Principal,
        project_key: str,
        incident_id: int,
        *,
        resolution: str,
        expected: int | None = None,
        comment: str | None = None,
    ) -> IncidentView:
        """Over, with a note of what ended it: open or acknowledged → resolved."""
        note = _text(resolution, "/resolution", "resolution", records.MAX_RESOLUTION, required=True)

        def step(incident: Incident, now: datetime) -> Incident:
            if incident.state == RESOLVED:
                raise InvalidStateError(
                    f"incident {incident.id} is resolved already (by {incident.resolved_by}); "
                    "reopen it to change the resolution"
                )
            return replace(
                incident, state=RESOLVED, resolved_by=principal.actor, resolved_at=now,
                resolution=note,
            )  # fmt: skip

        return self._transition(
            principal, project_key, incident_id, expected, comment, "resolved", step
        )

    def reopen(
        self,
        principal: Principal,
        project_key: str,
        incident_id: int,
        *,
        expected: int | None = None,
        comment: str | None = None,
    ) -> IncidentView:
        """It is back: resolved → acknowledged (if it had been) or open. The resolution is
        cleared; the audit log keeps it."""

        def step(incident: Incident, now: datetime) -> Incident:
            if incident.state != RESOLVED:
                raise InvalidStateError(
                    f"incident {incident.id} is {incident.state}; only a resolved incident can "
                    "be reopened"
                )
            back = ACKNOWLEDGED if incident.acknowledged_by is not None else OPEN
            return replace(
                incident, state=back, resolved_by=None, resolved_at=None, resolution=None
            )

        return self._transition(
            principal, project_key, incident_id, expected, comment, "reopened", step
        )

    def update_postmortem(
        self,
        principal: Principal,
        project_key: str,
        incident_id: int,
        *,
        summary: str,
        expected: int | None,
    ) -> IncidentView:
        """Replace the post-mortem's summary; `expected` (``If-Match``) is required, so that
        two people editing the write-up never overwrite each other unknowingly."""
        text = _text(summary, "/summary", "summary", records.MAX_SUMMARY, required=False)
        if expected is None:
            raise PreconditionRequiredError(
                "updating a post-mortem needs an If-Match header with the ETag you read, so "
                "that no one else's writing is overwritten"
            )

        def step(incident: Incident, now: datetime) -> Incident:
            return replace(incident, summary=text)

        return self._transition(
            principal, project_key, incident_id, expected, None, "postmortem_updated", step
        )

    # ------------------------------------------------------------ action items
    def add_item(
        self,
        principal: Principal,
        project_key: str,
        incident_id: int,
        *,
        title: str,
        owner: str,
        due_on: date,
    ) -> ActionItem:
        """A fix the post-mortem asks for; at most :data:`MAX_ACTION_ITEMS` per incident."""
        title = _text(title, "/title", "title", records.MAX_TITLE, required=True)
        owner = _text(owner, "/owner", "owner", records.MAX_OWNER, required=True)
        now = self.clock()
        _check_due(due_on, now)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            incident = self._incident(tx, project, incident_id)
            if len(tx.incident_action_items(project.id, incident.id)) >= MAX_ACTION_ITEMS:
                raise InvalidInputError(
                    f"incident {incident.id} has {MAX_ACTION_ITEMS} action items already, the "
                    f"most a post-mortem may have: a few owned fixes get done, a long list does "
                    "not. Finish or rewrite one of them instead of adding another.",
                    [FieldProblem("/title", f"at most {MAX_ACTION_ITEMS} action items")],
                )
            _check_owner(tx, project, owner)
            item = tx.insert_action_item(
                NewActionItem(project.id, incident.id, title, owner, due_on, principal.actor), now
            )
            records.audit_item(
                tx, incident, item, "added", principal.actor, now, records.item_fields(item)
            )
            return item

    def update_item(
        self,
        principal: Principal,
        project_key: str,
        incident_id: int,
        item_id: int,
        *,
        expected: int | None,
        title: str | None = None,
        owner: str | None = None,
        due_on: date | None = None,
    ) -> ActionItem:
        """Change an open item's title, owner or due day (`expected`, the item's version, is
        required). A new due day may be announced overdue again once it passes."""
        if expected is None:
            raise PreconditionRequiredError(
                "updating an action item needs an If-Match header with the ETag you read"
            )
        now = self.clock()
        if title is not None:
            title = _text(title, "/title", "title", records.MAX_TITLE, required=True)
        if owner is not None:
            owner = _text(owner, "/owner", "owner", records.MAX_OWNER, required=True)
        with self.store.transaction() as tx:
            project, incident, item = self._open_item(
                tx, principal, project_key, incident_id, item_id, expected
            )
            if owner is not None and owner != item.owner:
                _check_owner(tx, project, owner)
            if due_on is not None and due_on != item.due_on:
                _check_due(due_on, now)
            changed = replace(
                item,
                title=item.title if title is None else title,
                owner=item.owner if owner is None else owner,
                due_on=item.due_on if due_on is None else due_on,
            )
            if changed.due_on != item.due_on:
                changed = replace(changed, overdue_at=None)
            diff = records.changes(item, changed, ("title", "owner", "due_on"))
            if not diff:
                return item
            written = tx.update_action_item(changed, now)
            if written is None:
                raise _lost(f"action item {item.id}")
            records.audit_item(tx, incident, written, "updated", principal.actor, now, diff)
            return written

    def complete_item(
        self,
        principal: Principal,
        project_key: str,
        incident_id: int,
        item_id: int,
        *,
        expected: int | None = None,
        comment: str | None = None,
    ) -> ActionItem:
        """The fix is in: open → done (it leaves the open and overdue lists)."""
        now = self.clock()
        with self.store.transaction() as tx:
            _, incident, item = self._open_item(
                tx, principal, project_key, incident_id, item_id, expected
            )
            done = replace(item, status=ITEM_DONE, done_by=principal.actor, done_at=now)
            written = tx.update_action_item(done, now)
            if written is None:
                raise _lost(f"action item {item.id}")
            diff = [{"path": "/status", "before": ITEM_OPEN, "after": ITEM_DONE}]
            records.audit_item(tx, incident, written, "done", principal.actor, now, diff, comment)
            return written

    # -------------------------------------------------------------- escalation
    def escalate_overdue(self, limit: int = ESCALATION_BATCH) -> list[ActionItem]:
        """Announce every open item whose due day has passed and that was not announced yet:
        one ``overdue`` audit entry each, by ``fader:escalation``. Safe on every replica at
        once: each item is re-read under its project's lock and written by compare-and-swap,
        so whoever comes second finds it announced already and skips it."""
        now = self.clock()
        with self.store.read() as tx:
            due = tx.items_to_escalate(records.today(now), limit)
        escalated: list[ActionItem] = []
        for candidate in due:
            with self.store.transaction() as tx:
                tx.lock_project(candidate.project_id)
                item = tx.get_action_item(candidate.project_id, candidate.id)
                if item is None or item.overdue_at is not None or not records.is_overdue(item, now):
                    continue
                written = tx.update_action_item(replace(item, overdue_at=now), now)
                incident = tx.get_incident(item.project_id, item.incident_id)
                if written is None or incident is None:
                    continue
                diff = [{"path": "/overdue_at", "after": now.isoformat()}]
                comment = f"due {item.due_on.isoformat()}, owned by {item.owner}"
                records.audit_item(
                    tx, incident, written, "overdue", records.ESCALATION_ACTOR, now, diff, comment
                )
                escalated.append(written)
        return escalated

    # ----------------------------------------------------------------- helpers
    def _transition(
        self,
        principal: Principal,
        project_key: str,
        incident_id: int,
        expected: int | None,
        comment: str | None,
        action: str,
        step: _Step,
    ) -> IncidentView:
        now = self.clock()
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            incident = self._incident(tx, project, incident_id)
            _check_version(incident, expected, f"incident {incident.id}")
            changed = step(incident, now)
            written = tx.update_incident(changed, now)
            if written is None:
                raise _lost(f"incident {incident.id}")
            fields = ("state", "resolution", "summary")
            records.audit_incident(
                tx, written, action, principal.actor, now,
                records.changes(incident, written, fields), comment,
            )  # fmt: skip
            return self._view(tx, project, written)

    def _view(self, tx: IncidentTx, project: Project, incident: Incident) -> IncidentView:
        items = tx.incident_action_items(project.id, incident.id)
        return IncidentView(incident, items, records.timeline(tx, incident, items), self.clock())

    @staticmethod
    def _incident(tx: IncidentTx, project: Project, incident_id: int) -> Incident:
        found = tx.get_incident(project.id, incident_id)
        if found is None:
            raise NotFoundError(f"incident {incident_id} does not exist in project '{project.key}'")
        return found

    def _open_item(
        self,
        tx: IncidentTx,
        principal: Principal,
        project_key: str,
        incident_id: int,
        item_id: int,
        expected: int | None,
    ) -> tuple[Project, Incident, ActionItem]:
        """An item to change (editor role): of this incident, at `expected` if given, open."""
        project = load_project(tx, principal, project_key, Role.EDITOR)
        incident = self._incident(tx, project, incident_id)
        item = tx.get_action_item(project.id, item_id)
        if item is None or item.incident_id != incident.id:
            raise NotFoundError(f"action item {item_id} does not exist in incident {incident.id}")
        _check_version(item, expected, f"action item {item.id}")
        if item.status == ITEM_DONE:
            raise InvalidStateError(
                f"action item {item.id} is done already (by {item.done_by}); it cannot change"
            )
        return project, incident, item


class _Step(Protocol):
    def __call__(self, incident: Incident, now: datetime, /) -> Incident: ...


def _check_due(due_on: date, now: datetime) -> None:
    today = records.today(now)
    if due_on < today:
        raise InvalidInputError(
            f"the due day {due_on.isoformat()} has passed",
            [FieldProblem("/due_on", f"choose today ({today.isoformat()}, UTC) or a later day")],
        )
    if due_on > today + timedelta(days=MAX_DUE_DAYS):
        raise InvalidInputError(
            f"the due day {due_on.isoformat()} is too far ahead",
            [FieldProblem("/due_on", f"choose a day within {MAX_DUE_DAYS} days")],
        )


def _check_owner(tx: IncidentTx, project: Project, owner: str) -> None:
    """An owner is someone who can open the project: a member, or an instance administrator."""
    user = tx.get_user(owner)
    if user is None or not (user.instance_admin or project.id in tx.roles_of(user.id)):
        raise InvalidInputError(
            f"'{owner}' is not a member of project '{project.key}'",
            [FieldProblem("/owner", "name the username of a member of this project")],
        )
