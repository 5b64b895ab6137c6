"""Change-request use cases: propose, read, review, update, apply, cancel, and the scheduled
application the runtime drives (docs/change-control.md).

Statuses::

    open ──(enough approvals)──▶ approved ──(apply)──▶ applied
      │  ◀──(update resets approvals)──┘    │
      ├──▶ rejected        (a reviewer)     ├──▶ needs_update (a base moved: the author updates)
      └──▶ cancelled       (author/admin)   └──▶ apply_failed (a scheduled apply met a conflict)

A request that no policy governs (it changes no environment that requires change requests) is
``approved`` as soon as it is proposed: it may be applied, or wait for its `apply_at`.

Who may do what: anyone who can see the project reads and comments; editors propose and apply
(an approved request); approving and rejecting takes a role the policy of an affected
environment names, and never the author's own request; the author (or an admin) updates and
cancels. Every step appends a ``change_request`` audit entry in its own transaction, and the
writes an application makes keep their usual audit entries, their comment naming the request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, Protocol

from fader_server.errors import (
    FaderServerError,
    FieldProblem,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionRequiredError,
    VersionConflictError,
)
from fader_server.services import protected_environments, versioning
from fader_server.services.access import Clock, Principal, Role, load_project
from fader_server.services.change_requests import impact, operations, policy
from fader_server.services.change_requests.impact import Impact
from fader_server.services.change_requests.operations import OperationsTx, Writers
from fader_server.services.versioning import Change
from fader_server.storage.ports import JSON, Project
from fader_server.storage.ports.change_requests import (
    OPEN_STATUSES,
    ChangeRequest,
    ChangeRequestRows,
    NewChangeRequest,
)
from fader_server.storage.ports.store import Store
from fader_server.storage.ports.usage import UsageReads

MAX_TITLE = 200
MAX_TEXT = 5_000
MAX_REVIEWS = 500
PROPOSAL_FIELDS = ("problem", "change", "alternatives", "rollback")
REQUIRED_PROPOSAL = ("problem", "change")
ENTITY = "change_request"
DUE_BATCH = 50
Verdict = Literal["comment", "approve", "reject"]


class ChangeRequestTx(OperationsTx, ChangeRequestRows, UsageReads, Protocol):
    """What change requests touch: their rows, what operations write, usage for samples."""


@dataclass(frozen=True, slots=True)
class Requirement:
    """What one environment that requires change requests asks of this request, and how far
    the approvals got."""

    environment: str
    approvals: int
    approver_roles: tuple[str, ...]
    approved_by: tuple[str, ...]
    reasons: tuple[str, ...]

    @property
    def met(self) -> bool:
        return len(self.approved_by) >= self.approvals


@dataclass(frozen=True, slots=True)
class ChangeRequestView:
    """A request as read: the stored record, each operation's diff (the audit log's format),
    what each governing environment asks, the protected environments it affects, and which
    bases moved since it was proposed (empty: it can be applied as is)."""

    request: ChangeRequest
    diffs: list[list[JSON]]
    requirements: list[Requirement]
    affected: dict[str, list[str]]
    moved: list[str] = field(default_factory=list)

    @property
    def approved(self) -> bool:
        return all(r.met for r in self.requirements)


class _MovedError(Exception):
    """Raised inside an apply's transaction to roll its writes back; carries the reasons."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class ChangeRequestService:
    def __init__(self, store: Store[ChangeRequestTx], clock: Clock, writers: Writers) -> None:
        self.store = store
        self.clock = clock
        self.writers = writers

    # ------------------------------------------------------------------------ reads
    def get(self, principal: Principal, project_key: str, request_id: int) -> ChangeRequestView:
        """One request with its diffs, requirements and moved bases (viewer role)."""
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            return self._view(tx, project, _request(tx, project, request_id))

    def list_requests(
        self,
        principal: Principal,
        project_key: str,
        *,
        limit: int,
        before_id: int | None = None,
        statuses: Sequence[str] | None = None,
        scheduled: bool = False,
    ) -> list[ChangeRequest]:
        """Requests newest first, below `before_id`; `statuses` and `scheduled` (those with an
        ``apply_at`` still to come) narrow the list (viewer role)."""
        if scheduled and statuses is None:
            statuses = OPEN_STATUSES
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            return tx.list_change_requests(
                project.id,
                limit=limit,
                before_id=before_id,
                statuses=statuses,
                scheduled=scheduled,
            )

    def scheduled_for_flag(
        self, principal: Principal, project_key: str, flag: str, *, limit: int = 20
    ) -> list[ChangeRequest]:
        """Requests with an ``apply_at`` still to come that change `flag` (its definition, its
        configuration in any environment, its deletion or a release plan of it): what the
        flag page shows as scheduled. Earliest first."""
        found: list[ChangeRequest] = []
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            scheduled = tx.list_change_requests(
                project.id, limit=500, before_id=None, statuses=OPEN_STATUSES, scheduled=True
            )
        for request in scheduled:
            if any(op.get("flag") == flag for op in request.operations):
                found.append(request)
        found.sort(key=lambda r: (r.apply_at or r.created_at, r.id))
        return found[:limit]

    def preview_impact(self, principal: Principal, project_key: str, request_id: int) -> Impact:
        """Who gets what before and after the request, per affected flag and environment,
        evaluated by the engine on a sample (:mod:`.impact`; viewer role)."""
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            request = _request(tx, project, request_id)
            return impact.preview(tx, project, request.operations, request.contexts, self.clock)

    def preview_operations(
        self,
        principal: Principal,
        project_key: str,
        raw_operations: Sequence[Mapping[str, Any]],
        contexts: Sequence[JSON] = (),
    ) -> tuple[list[JSON], Impact]:
        """Resolve operations and preview their impact without proposing anything (the
        console's promotion page shows this before proposing; viewer role)."""
        sample = impact.check_contexts(list(contexts))
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            resolved = operations.resolve(tx, project, raw_operations)
            return resolved, impact.preview(tx, project, resolved, sample, self.clock)

    # --------------------------------------------------------------------- commands
    def propose(
        self,
        principal: Principal,
        project_key: str,
        *,
        title: str,
        proposal: Mapping[str, Any],
        operations_in: Sequence[Mapping[str, Any]],
        contexts: Sequence[JSON] = (),
        apply_at: datetime | None = None,
    ) -> ChangeRequestView:
        """Propose a change (editor role). `operations_in`: see :mod:`.operations` (each may
        carry ``base_version``, checked like ``If-Match``); `contexts`: an impact sample
        (≤ 1,000 contexts, ≤ 64 KiB); `apply_at`: apply it then, once approved. A request that
        no policy governs is approved at once."""
        title, stored_proposal = _check_texts(title, proposal)
        sample = impact.check_contexts(list(contexts))
        now = self.clock()
        _check_apply_at(apply_at, now)
        change = Change(principal, self.clock)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            resolved = operations.resolve(tx, project, operations_in)
            request = tx.insert_change_request(
                NewChangeRequest(
                    project_id=project.id,
                    title=title,
                    proposal=stored_proposal,
                    author=principal.actor,
                    author_user_id=principal.user_id,
                    status="open",
                    operations=resolved,
                    contexts=sample,
                    apply_at=apply_at,
                ),
                now,
            )
            view = self._view(tx, project, request)
            _check_schedulable(principal, project, view)
            if view.approved:
                request = self._write(tx, replace(request, status="approved"))
                view = replace(view, request=request)
            diff: list[JSON] = [
                {"path": "/title", "after": title},
                {"path": "/operations", "after": [operations.describe(o) for o in resolved]},
            ]
            if apply_at is not None:
                diff.append({"path": "/apply_at", "after": apply_at.isoformat()})
            versioning.audit_entity(tx, project, change, "proposed", ENTITY, str(request.id), diff)
            return view

    def update(
        self,
        principal: Principal,
        project_key: str,
        request_id: int,
        *,
        expected_version: int | None,
        title: str | None = None,
        proposal: Mapping[str, Any] | None = None,
        operations_in: Sequence[Mapping[str, Any]] | None = None,
        contexts: Sequence[JSON] | None = None,
        apply_at: datetime | None = None,
        clear_apply_at: bool = False,
    ) -> ChangeRequestView:
        """Change a request that is not finished (its author, or an admin). New operations are
        resolved against the current versions; a request that needs an update (a base moved,
        whether or not an apply noticed it yet) and is given none has its own operations
        resolved again, the same intent on what is there now. Either way the approvals given
        so far are discarded: reviewers approved another diff."""
        now = self.clock()
        _check_apply_at(apply_at, now)
        change = Change(principal, self.clock)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            request = _request(tx, project, request_id)
            _check_expected(request, expected_version)
            _require_author_or_admin(principal, project, request, "update")
            _require_status(request, (*OPEN_STATUSES, "apply_failed"), "updated")
            before = request
            new_title, new_proposal = _check_texts(
                title if title is not None else request.title,
                proposal if proposal is not None else request.proposal,
            )
            request = replace(request, title=new_title, proposal=new_proposal)
            if contexts is not None:
                request = replace(request, contexts=impact.check_contexts(list(contexts)))
            if apply_at is not None or clear_apply_at:
                request = replace(request, apply_at=apply_at)
            stale = request.status in ("needs_update", "apply_failed") or bool(
                operations.moved(tx, project, request.operations)
            )
            reset = operations_in is not None or stale
            if operations_in is None and stale:
                # Brought up to date as proposed: the same intent on the current versions.
                operations_in = [operations.as_proposed(op) for op in request.operations]
            if operations_in is not None:
                request = replace(
                    request, operations=operations.resolve(tx, project, operations_in)
                )
            if reset:
                entry = _review_entry(request, principal, project, "updated", None, now)
                request = replace(
                    request, reviews=[*request.reviews, entry], failure=None, status="open"
                )
            view = self._view(tx, project, request)
            _check_schedulable(principal, project, view)
            status = "approved" if view.approved else "open"
            if request.status in ("open", "approved"):
                request = replace(request, status=status)
            written = self._write(tx, request)
            diff = versioning.diff(_summary(before), _summary(written))
            versioning.audit_entity(tx, project, change, "updated", ENTITY, str(request.id), diff)
            return replace(view, request=written)

    def review(
        self,
        principal: Principal,
        project_key: str,
        request_id: int,
        verdict: Verdict,
        body: str | None = None,
    ) -> ChangeRequestView:
        """Comment (viewer role), approve or reject (a role an affected environment's policy
        names, which may be viewer; the editor role when no policy governs it; never the
        author). Enough approvals for every governing environment make the
        request ``approved``; a rejection ends it."""
        if body is not None and len(body) > MAX_TEXT:
            raise InvalidInputError(
                f"a review is at most {MAX_TEXT} characters",
                [FieldProblem("/body/body", f"at most {MAX_TEXT} characters")],
            )
        if verdict == "comment" and not (body or "").strip():
            raise InvalidInputError(
                "a comment needs a body", [FieldProblem("/body/body", "write the comment")]
            )
        now = self.clock()
        change = Change(principal, self.clock, body)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            request = _request(tx, project, request_id)
            previous = request.status
            if len(request.reviews) >= MAX_REVIEWS:
                raise InvalidStateError(
                    f"change request {request.id} has {MAX_REVIEWS} reviews, the most it keeps"
                )
            if verdict != "comment":
                _require_reviewer(
                    principal, project, request, self._view(tx, project, request), verdict
                )
                _require_status(request, OPEN_STATUSES, f"{verdict}d")
            entry = _review_entry(request, principal, project, verdict, body, now)
            request = replace(request, reviews=[*request.reviews, entry])
            if verdict == "reject":
                request = replace(request, status="rejected")
            view = self._view(tx, project, request)
            if verdict == "approve" and request.status == "open" and view.approved:
                request = replace(request, status="approved")
            written = self._write(tx, request)
            action = {"comment": "commented", "approve": "approved", "reject": "rejected"}[verdict]
            diff: list[JSON] = []
            if written.status != previous:
                diff = [{"path": "/status", "before": previous, "after": written.status}]
            versioning.audit_entity(tx, project, change, action, ENTITY, str(request.id), diff)
            return replace(view, request=written)

    def cancel(
        self, principal: Principal, project_key: str, request_id: int, comment: str | None = None
    ) -> ChangeRequestView:
        """Withdraw a request that is not finished, scheduled or not (its author, or an
        admin)."""
        change = Change(principal, self.clock, comment)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            request = _request(tx, project, request_id)
            _require_status(request, (*OPEN_STATUSES, "apply_failed"), "cancelled")
            _require_author_or_admin(principal, project, request, "cancel")
            written = self._write(tx, replace(request, status="cancelled"))
            diff = [{"path": "/status", "before": request.status, "after": "cancelled"}]
            versioning.audit_entity(tx, project, change, "cancelled", ENTITY, str(request.id), diff)
            return self._view(tx, project, written)

    def apply(
        self, principal: Principal, project_key: str, request_id: int, comment: str | None = None
    ) -> ChangeRequestView:
        """Apply an approved request now, all operations in one transaction (editor role, and
        the admin role when it changes a protected environment that has no policy).

        If any base version moved, nothing is written: the request becomes ``needs_update``
        (audited ``apply_failed``) and :class:`InvalidStateError` (409) names what moved."""
        try:
            with self.store.transaction() as tx:
                project = load_project(tx, principal, project_key, Role.EDITOR)
                request = _request(tx, project, request_id)
                return self._apply(tx, project, request, principal, comment, scheduled=False)
        except _MovedError as moved:
            self._record_moved(principal, project_key, request_id, moved.reasons)
            raise InvalidStateError(
                f"change request {request_id} cannot be applied: {'; '.join(moved.reasons)}. "
                "Nothing was changed; its author must update it against the current versions "
                f"(`fader change-requests update {request_id} …`)."
            ) from None

    # --------------------------------------------------------------------- schedule
    def apply_due(self, now: datetime | None = None) -> list[tuple[int, str]]:
        """Apply every approved request whose ``apply_at`` has come (the scheduled-changes
        runner calls this on every replica). Each is applied in its own transaction that
        takes the project's write lock and re-reads the request, so whichever replica comes
        second finds it applied and skips it: applied once. A conflict is recorded on the
        request (``apply_failed`` and why), never forced. Returns (id, outcome) pairs."""
        moment = self.clock() if now is None else now
        with self.store.read() as tx:
            due = tx.due_change_requests(moment, DUE_BATCH)
        outcomes: list[tuple[int, str]] = []
        for seen in due:
            outcomes.append((seen.id, self._apply_scheduled(seen, moment)))
        return outcomes

    def _apply_scheduled(self, seen: ChangeRequest, now: datetime) -> str:
        actor = Principal(f"change-request:{seen.id}", instance_admin=True)
        try:
            with self.store.transaction() as tx:
                project = tx.get_project_by_id(seen.project_id)
                if project is None:
                    return "skipped"
                tx.lock_project(project.id)
                request = tx.get_change_request(project.id, seen.id)
                if (
                    request is None
                    or request.status != "approved"
                    or request.apply_at is None
                    or request.apply_at > now
                ):
                    return "skipped"  # another replica applied it, or it changed meanwhile
                self._apply(tx, project, request, actor, "scheduled", scheduled=True)
                return "applied"
        except _MovedError as moved:
            reason = "; ".join(moved.reasons)
        except FaderServerError as exc:
            reason = exc.detail
        self._record_failure(seen, actor, reason)
        return "apply_failed"

    # ------------------------------------------------------------------- internals
    def _apply(
        self,
        tx: ChangeRequestTx,
        project: Project,
        request: ChangeRequest,
        principal: Principal,
        comment: str | None,
        *,
        scheduled: bool,
    ) -> ChangeRequestView:
        if request.status != "approved":
            raise InvalidStateError(_not_approved(request))
        view = self._view(tx, project, request)
        if view.moved:
            raise _MovedError(view.moved)
        if not view.approved:
            missing = [r for r in view.requirements if not r.met]
            raise InvalidStateError(
                f"change request {request.id} needs more approvals: "
                + "; ".join(
                    f"'{r.environment}' needs {r.approvals} from "
                    f"{policy.roles_text(r.approver_roles)}, has {len(r.approved_by)}"
                    for r in missing
                )
            )
        if not scheduled:
            _require_unpolicied_role(principal, project, view)
        note = f"change request #{request.id}: {request.title}"
        if comment:
            note = f"{note} ({comment})"
        change = Change(principal, self.clock, note)
        operations.apply_all(tx, project, request.operations, self.writers, principal, change)
        written = self._write(tx, replace(request, status="applied", applied_by=principal.actor))
        diff = [{"path": "/status", "before": "approved", "after": "applied"}]
        versioning.audit_entity(
            tx, project, Change(principal, self.clock, comment), "applied", ENTITY,
            str(request.id), diff,
        )  # fmt: skip
        return replace(view, request=written)

    def _record_moved(
        self, principal: Principal, project_key: str, request_id: int, reasons: list[str]
    ) -> None:
        reason = "; ".join(reasons)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            request = _request(tx, project, request_id)
            written = self._write(tx, replace(request, status="needs_update", failure=reason))
            diff = [{"path": "/status", "before": request.status, "after": written.status}]
            versioning.audit_entity(
                tx, project, Change(principal, self.clock, reason), "apply_failed", ENTITY,
                str(request.id), diff,
            )  # fmt: skip

    def _record_failure(self, seen: ChangeRequest, actor: Principal, reason: str) -> None:
        with self.store.transaction() as tx:
            project = tx.get_project_by_id(seen.project_id)
            if project is None:
                return
            tx.lock_project(project.id)
            request = tx.get_change_request(project.id, seen.id)
            if request is None or request.status != "approved":
                return
            self._write(tx, replace(request, status="apply_failed", failure=reason[:MAX_TEXT]))
            diff = [{"path": "/status", "before": "approved", "after": "apply_failed"}]
            versioning.audit_entity(
                tx, project, Change(actor, self.clock, reason[:MAX_TEXT]), "apply_failed",
                ENTITY, str(request.id), diff,
            )  # fmt: skip

    def _write(self, tx: ChangeRequestTx, request: ChangeRequest) -> ChangeRequest:
        written = tx.update_change_request(request, self.clock())
        if written is None:
            raise VersionConflictError(
                f"change request {request.id} changed while you were writing; read it again"
            )
        return written

    def _view(
        self, tx: ChangeRequestTx, project: Project, request: ChangeRequest
    ) -> ChangeRequestView:
        affected = operations.affected(tx, project, request.operations)
        policies = policy.environment_policies(tx, project)
        approvals = _current_approvals(request)
        requirements = [
            Requirement(
                environment=env,
                approvals=p.approvals,
                approver_roles=p.approver_roles,
                approved_by=tuple(
                    dict.fromkeys(a["actor"] for a in approvals if a["role"] in p.approver_roles)
                ),
                reasons=tuple(affected[env]),
            )
            for env, p in policies.items()
            if env in affected
        ]
        finished = request.status in ("applied", "rejected", "cancelled")
        return ChangeRequestView(
            request=request,
            diffs=[versioning.diff(op["before"], op["after"]) for op in request.operations],
            requirements=requirements,
            affected=affected,
            moved=[] if finished else operations.moved(tx, project, request.operations),
        )

    # The name the console and the API use; defined last so that `list[...]` annotations
    # above refer to the builtin.
    list = list_requests


# ----------------------------------------------------------------------- helpers
def _request(tx: ChangeRequestRows, project: Project, request_id: int) -> ChangeRequest:
    found = tx.get_change_request(project.id, request_id)
    if found is None:
        raise NotFoundError(
            f"change request {request_id} does not exist in project '{project.key}'"
        )
    return found


def _check_texts(title: str, proposal: Mapping[str, Any]) -> tuple[str, JSON]:
    problems: list[FieldProblem] = []
    title = title.strip()
    if not 1 <= len(title) <= MAX_TITLE:
        problems.append(FieldProblem("/body/title", f"1 to {MAX_TITLE} characters"))
    stored: JSON = {}
    unknown = set(proposal) - set(PROPOSAL_FIELDS)
    problems.extend(FieldProblem(f"/body/proposal/{k}", "unknown field") for k in sorted(unknown))
    for name in PROPOSAL_FIELDS:
        value = proposal.get(name, "")
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            problems.append(
                FieldProblem(f"/body/proposal/{name}", f"text of at most {MAX_TEXT} characters")
            )
            continue
        if name in REQUIRED_PROPOSAL and not value.strip():
            problems.append(FieldProblem(f"/body/proposal/{name}", "say it in a few words"))
        stored[name] = value
    if problems:
        raise InvalidInputError(
            "a change request needs a title and a proposal (the problem and the change; "
            "alternatives and a rollback plan are welcome)",
            problems,
        )
    return title, stored


def _check_apply_at(apply_at: datetime | None, now: datetime) -> None:
    if apply_at is not None and apply_at <= now:
        raise InvalidInputError(
            f"apply_at must be in the future (now is {now.isoformat()})",
            [FieldProblem("/body/apply_at", "a time after now, in UTC")],
        )


def _check_expected(request: ChangeRequest, expected: int | None) -> None:
    """``If-Match`` on a request: required, and must name the version read."""
    if expected is None:
        raise PreconditionRequiredError(
            f"updating change request {request.id} needs an If-Match header with the ETag "
            "you read, so that no one else's change is overwritten"
        )
    if expected not in (-1, request.version):
        raise VersionConflictError(
            f"change request {request.id} is at version {request.version}, not {expected}: "
            "someone changed it since you read it. Read it again and retry.",
            current_version=request.version,
        )


def _same_person(principal: Principal, request: ChangeRequest) -> bool:
    if principal.user_id is not None and request.author_user_id is not None:
        return principal.user_id == request.author_user_id
    return principal.actor == request.author


def _require_author_or_admin(
    principal: Principal, project: Project, request: ChangeRequest, verb: str
) -> None:
    if _same_person(principal, request) or principal.role_in(project) is Role.ADMIN:
        return
    raise PermissionDeniedError(
        f"only the author of change request {request.id} ({request.author}) or a project "
        f"admin can {verb} it"
    )


def _require_status(request: ChangeRequest, allowed: Sequence[str] | None, verb: str) -> None:
    if allowed is None:
        return
    if request.status not in allowed:
        raise InvalidStateError(
            f"change request {request.id} is {request.status.replace('_', ' ')}; it can no "
            f"longer be {verb}"
        )


def _require_reviewer(
    principal: Principal,
    project: Project,
    request: ChangeRequest,
    view: ChangeRequestView,
    verdict: str,
) -> None:
    if _same_person(principal, request):
        raise PermissionDeniedError(
            f"you proposed change request {request.id}: someone else must {verdict} it"
        )
    role = principal.role_in(project)
    if not view.requirements:
        # No policy governs it: any editor may review.
        if role is None or role < Role.EDITOR:
            had = role.label if role is not None else "no role"
            raise PermissionDeniedError(
                f"to {verdict} change request {request.id} you need the editor role in "
                f"project '{project.key}'; you have {had}"
            )
        return
    allowed = {r for req in view.requirements for r in req.approver_roles}
    if role is None or role.label not in allowed:
        had = role.label if role is not None else "no role"
        raise PermissionDeniedError(
            f"to {verdict} change request {request.id} you need the "
            f"{policy.roles_text(sorted(allowed, key=policy.ROLE_NAMES.index))} role in "
            f"project '{project.key}' (as the policy of "
            f"{', '.join(repr(r.environment) for r in view.requirements)} says); you have {had}"
        )


def _require_unpolicied_role(
    principal: Principal, project: Project, view: ChangeRequestView
) -> None:
    """A protected environment without a policy keeps its rule: the admin role applies."""
    governed = {r.environment for r in view.requirements}
    plain = [
        protected_environments.Impact(env, tuple(why))
        for env, why in view.affected.items()
        if env not in governed
    ]
    protected_environments.require_role(
        principal, project, f"applying change request {view.request.id}", plain
    )


def _check_schedulable(principal: Principal, project: Project, view: ChangeRequestView) -> None:
    """A scheduled request is applied by the scheduler, not by a person: whoever schedules a
    change to a protected environment without a policy must hold the role it requires."""
    if view.request.apply_at is not None:
        _require_unpolicied_role(principal, project, view)


def _review_entry(
    request: ChangeRequest,
    principal: Principal,
    project: Project,
    kind: str,
    body: str | None,
    at: datetime,
) -> JSON:
    role = principal.role_in(project)
    return {
        "id": len(request.reviews) + 1,
        "kind": kind,
        "actor": principal.actor,
        "user_id": principal.user_id,
        "role": role.label if role is not None else None,
        "body": body,
        "at": at.isoformat(),
    }


def _current_approvals(request: ChangeRequest) -> list[JSON]:
    """Approvals given since the operations last changed (an update discards the earlier
    ones: reviewers approved something else)."""
    found: list[JSON] = []
    for entry in request.reviews:
        if entry["kind"] == "updated":
            found = []
        elif entry["kind"] == "approve":
            found.append(entry)
    return found


def _not_approved(request: ChangeRequest) -> str:
    if request.status in ("open",):
        return f"change request {request.id} is not approved yet"
    if request.status == "needs_update":
        why = request.failure or "a base moved"
        return f"change request {request.id} needs an update first: {why}"
    return (
        f"change request {request.id} is {request.status.replace('_', ' ')}; it cannot be applied"
    )


def _summary(request: ChangeRequest) -> JSON:
    return {
        "title": request.title,
        "proposal": request.proposal,
        "operations": [operations.describe(o) for o in request.operations],
        "apply_at": None if request.apply_at is None else request.apply_at.isoformat(),
        "status": request.status,
    }
