"""Importing another system's flags into one environment of a project, verified before it is
written (docs/migration.md).

An import is: translate the source document (:mod:`fader_server.migration.sources`); turn the
translation into the flag definitions, segment definitions and configurations it sets; build
the environment's document *as it will be after the import* (the stored one with those
changes laid over it, by the same builder every SDK's document comes from); evaluate every
translated flag for every context with the source system's own SDK and with Fader's engine
over that document (:func:`~fader_server.migration.parity.check_parity`); refuse when any
deterministic answer differs, unless the caller accepts the differences; then write every
change in ONE transaction as change-request operations: validated together by the engine in
every environment they touch (:func:`~fader_server.services.change_requests.operations.validate`),
written as versions with audit entries as a change request's application writes them, and the
document read back to prove it is the one that was verified.

The verification runs outside the transaction (the source SDKs are slow next to a database
write, and a write lock held for seconds would stall the project); the write then checks that
the environment's document before the import is still the one the verification started from,
and refuses with a version conflict if anyone changed the project in between.

Who may import is who may make the same changes directly: the editor role; the admin role for
a protected environment, or for definitions that change what a protected environment serves;
and nobody, directly, where the environment requires change requests.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fader_server.errors import (
    FieldProblem,
    InvalidInputError,
    NotFoundError,
    VersionConflictError,
)
from fader_server.migration import contexts as context_tools
from fader_server.migration import sources
from fader_server.migration.model import SourceContextError, SourceDocumentError, Translation
from fader_server.migration.parity import ParityReport, check_parity
from fader_server.services import documents, protected_environments, versioning
from fader_server.services.access import Clock, Principal, Role, load_project
from fader_server.services.change_requests import operations
from fader_server.services.change_requests import policy as change_policy
from fader_server.services.change_requests.operations import OperationsTx, Writers
from fader_server.services.protected_environments import ProtectedState
from fader_server.services.versioning import Change
from fader_server.storage.ports import JSON, PROJECT_SCOPE, Project, Resource, ResourceType
from fader_server.storage.ports.store import Store

MAX_CONTEXTS = context_tools.MAX_CONTEXTS
MAX_EVALUATIONS = 250_000
"""Flags x contexts one verification evaluates (each twice: the source SDK and Fader); about
25 seconds of one core (flagd's provider and Fader do about 10,000 pairs a second), which keeps
a request within a proxy's usual timeout."""
MAX_FLAGS = 5_000
"""Flags one import writes: each write validates the documents it changes, as direct writes do."""
_EXAMPLES_IN_PROBLEM = 20
_FLAG_DEFAULTS: JSON = {
    "description": "",
    "tags": [],
    "kind": "release",
    "owner_team": None,
    "expected_lifetime_days": None,
    "client_side": False,
}
_KINDS = ("release", "experiment", "ops", "permission")


class ParityRefusedError(InvalidInputError):
    """The source SDK and Fader disagree for some contexts and the caller did not accept it;
    `report` is the import report (with the parity table) the refusal is about."""

    def __init__(self, detail: str, problems: Sequence[FieldProblem], report: JSON) -> None:
        super().__init__(detail, problems)
        self.report = report


@dataclass(frozen=True, slots=True)
class ImportRequest:
    """One import: `document` is the source system's document, parsed; `contexts` the contexts
    to verify with, or `generate` how many to derive from the translation (neither: no
    verification)."""

    source: str
    environment: str
    document: Any
    contexts: Sequence[Mapping[str, Any]] | None = None
    generate: int | None = None
    accept_differences: bool = False
    dry_run: bool = False
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the import changes, as change-request operations, and what it leaves alone."""

    ops: list[JSON]
    created: dict[str, list[str]]
    updated: dict[str, list[str]]
    unchanged: dict[str, list[str]]
    flags: dict[str, JSON]
    configs: dict[str, JSON]
    segments: dict[str, JSON]


def _flag_definition(key: str, entry: Mapping[str, Any], current: JSON | None) -> JSON:
    """The stored definition: what the source says (type, variants, name, description, tags,
    kind) over what Fader already holds (owner, client-side, lifetime) or the defaults."""
    base: JSON = {"name": key, **_FLAG_DEFAULTS, **(current or {})}
    base["type"] = entry["type"]
    base["variants"] = entry["variants"]
    if isinstance(entry.get("name"), str) and 0 < len(entry["name"]) <= 200:
        base["name"] = entry["name"]
    if isinstance(entry.get("description"), str):
        base["description"] = entry["description"][:5000]
    if isinstance(entry.get("tags"), list):
        base["tags"] = [t for t in entry["tags"] if isinstance(t, str) and 0 < len(t) <= 64]
    if entry.get("kind") in _KINDS:
        base["kind"] = entry["kind"]
    return base


def _flag_config(entry: Mapping[str, Any]) -> JSON:
    """A document entry's behaviour, with the format's defaults written out."""
    return {
        "enabled": entry.get("enabled", True),
        "offVariant": entry["offVariant"],
        "rules": entry.get("rules") or [],
        "default": entry["default"],
        "prerequisites": entry.get("prerequisites") or [],
    }


def _segment_definition(entry: Mapping[str, Any], current: JSON | None) -> JSON:
    found: JSON = {
        "included": list(entry.get("included") or []),
        "excluded": list(entry.get("excluded") or []),
        "rules": list(entry.get("rules") or []),
    }
    for descriptive in ("name", "description"):
        value = entry.get(descriptive, (current or {}).get(descriptive))
        if isinstance(value, str):
            found[descriptive] = value
    return found


def _live_data(tx: OperationsTx, project: Project, type: ResourceType, key: str) -> Resource | None:
    found = tx.get_resource(project.id, type, PROJECT_SCOPE, key)
    return None if found is None or found.deleted else found


def _plan(tx: OperationsTx, project: Project, environment: str, translation: Translation) -> _Plan:
    created: dict[str, list[str]] = {"flags": [], "segments": []}
    updated: dict[str, list[str]] = {"flags": [], "segments": []}
    unchanged: dict[str, list[str]] = {"flags": [], "segments": []}
    definition_ops: list[JSON] = []
    config_ops: list[JSON] = []
    segment_ops: list[JSON] = []
    flags: dict[str, JSON] = {}
    configs: dict[str, JSON] = {}
    segments: dict[str, JSON] = {}
    for key, entry in _dependencies_first(translation.document.get("segments") or {}):
        current = _live_data(tx, project, ResourceType.SEGMENT, key)
        after = _segment_definition(entry, None if current is None else current.data)
        segments[key] = after
        if current is not None and current.data == after:
            unchanged["segments"].append(key)
            continue
        (created if current is None else updated)["segments"].append(key)
        segment_ops.append(_definition_op("segment", key, current, after))
    for key, entry in sorted((translation.document.get("flags") or {}).items()):
        current = _live_data(tx, project, ResourceType.FLAG, key)
        definition = _flag_definition(key, entry, None if current is None else current.data)
        config = _flag_config(entry)
        stored = tx.get_resource(project.id, ResourceType.CONFIG, environment, key)
        flags[key], configs[key] = definition, config
        same_definition = current is not None and current.data == definition
        same_config = stored is not None and not stored.deleted and stored.data == config
        if same_definition and same_config:
            unchanged["flags"].append(key)
            continue
        (created if current is None else updated)["flags"].append(key)
        if not same_definition:
            definition_ops.append(_definition_op("flag", key, current, definition))
        if not same_config:
            config_ops.append(
                {
                    "kind": "flag_config",
                    "environment": environment,
                    "flag": key,
                    "base_version": 0 if stored is None else stored.version,
                    "source": "set",
                    "before": None if stored is None else stored.data,
                    "after": config,
                }
            )
    # Segments before the flags whose rules name them; every definition before the
    # configurations (a prerequisite names another imported flag).
    return _Plan(
        segment_ops + definition_ops + config_ops,
        created,
        updated,
        unchanged,
        flags,
        configs,
        segments,
    )


def _dependencies_first(segments: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Segments ordered so that one naming another (``in_segment``) comes after it: each is
    written, and validated, on its own. A cycle keeps key order (the engine refuses it)."""
    ordered: dict[str, Any] = {}
    visiting: set[str] = set()

    def visit(key: str) -> None:
        if key in ordered or key in visiting or key not in segments:
            return
        visiting.add(key)
        for rule in segments[key].get("rules") or []:
            for clause in rule.get("clauses") or []:
                if clause.get("op") == "in_segment":
                    for named in sorted(str(v) for v in clause.get("values") or []):
                        visit(named)
        visiting.discard(key)
        ordered[key] = segments[key]

    for key in sorted(segments):
        visit(key)
    return list(ordered.items())


def _definition_op(noun: str, key: str, current: Resource | None, after: JSON) -> JSON:
    return {
        "kind": noun,
        noun: key,
        "base_version": 0 if current is None else current.version,
        "before": None if current is None else current.data,
        "after": after,
    }


def _document_after(tx: OperationsTx, project: Project, environment: str, plan: _Plan) -> JSON:
    """The environment's document with the import laid over it (what SDKs will be served)."""
    return documents.build(
        tx,
        project,
        environment,
        flags=dict(plan.flags),
        configs=dict(plan.configs),
        segments=dict(plan.segments),
    )


def _environment(tx: OperationsTx, project: Project, key: str) -> Resource:
    env = tx.get_resource(project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, key)
    if env is None or env.deleted:
        raise NotFoundError(f"environment '{key}' does not exist in project '{project.key}'")
    return env


def _authorise(
    tx: OperationsTx, principal: Principal, project: Project, env: Resource, plan: _Plan
) -> None:
    """The checks the same changes would meet as direct writes (flags.py, definitions.py)."""
    if not plan.ops:
        return
    what = f"importing flags into '{env.key}'"
    if any(op["kind"] == "flag_config" for op in plan.ops):
        protected_environments.require_environment_role(principal, project, env, what)
        change_policy.refuse_direct_in(project, env, what)
    flag_defs = {op["flag"]: op["after"] for op in plan.ops if op["kind"] == "flag"}
    segment_defs = {op["segment"]: op["after"] for op in plan.ops if op["kind"] == "segment"}
    if not (flag_defs or segment_defs):
        return
    policies = change_policy.environment_policies(tx, project)
    if not policies and protected_environments.holds_required_role(principal, project):
        return
    impacts = ProtectedState.read(tx, project).impacts(flags=flag_defs, segments=segment_defs)
    change_policy.refuse_direct(project, what, impacts, policies)
    protected_environments.require_role(principal, project, what, impacts)


def _source_errors(exc: Exception, path: str) -> InvalidInputError:
    return InvalidInputError(str(exc), [FieldProblem(path, str(exc))])


def _dropped_metadata(translation: Translation) -> list[str]:
    """A note for each flag whose source metadata has no place in a Fader flag definition."""
    return [
        f"flag '{key}': its metadata ({', '.join(sorted(entry['metadata']))}) is not kept; "
        "Fader flags carry a name, description, tags and owner instead"
        for key, entry in sorted((translation.document.get("flags") or {}).items())
        if entry.get("metadata")
    ]


def _refusal(report: JSON, parity: ParityReport) -> ParityRefusedError:
    problems = [
        FieldProblem(
            f"/flags/{row.source_key}",
            f"{row.disagreed} of {row.contexts} contexts answered differently by the source "
            "and by Fader",
        )
        for row in parity.flags
        if row.disagreed
    ][:_EXAMPLES_IN_PROBLEM]
    return ParityRefusedError(
        f"the source system and Fader disagree on {parity.disagreed} of "
        f"{parity.agreed + parity.disagreed} evaluations ({parity.agreement:.2%} agreement); "
        "nothing was written. Fix the differences listed in the report, or import anyway with "
        "accept_differences (`--accept-differences`)",
        problems,
        report,
    )


def _apply(
    tx: OperationsTx, project: Project, ops: Sequence[JSON], writers: Writers, change: Change
) -> None:
    """Write every operation as a new version with its audit entry, in the caller's transaction.

    These are the writes :func:`~fader_server.services.change_requests.operations.apply_all`
    ends in, without its validation of each operation on its own: every document the import
    changes was validated once with all of them (:func:`operations.validate`), and rebuilding
    each document per operation made a 300-flag import take 40 seconds instead of one. The
    caller reads the document back and compares it with the one verified.
    """
    for op in ops:
        if op["kind"] == "flag_config":
            environment, key = str(op["environment"]), str(op["flag"])
            stored = tx.get_resource(project.id, ResourceType.CONFIG, environment, key)
            versioning.upsert(
                tx, project, ResourceType.CONFIG, environment, key, stored, op["after"], change
            )
            continue
        service = writers.definitions(str(op["kind"]))
        key = str(op[op["kind"]])
        text = service.search_text(key, op["after"])
        current = tx.get_resource(project.id, service.resource_type, PROJECT_SCOPE, key)
        if current is None or current.deleted:
            versioning.create(
                tx, project, service.resource_type, PROJECT_SCOPE, key, op["after"], text, change
            )
        else:
            versioning.update(tx, project, current, op["after"], text, change)


class ImportService:
    def __init__(self, store: Store[OperationsTx], clock: Clock, writers: Writers) -> None:
        self.store = store
        self.clock = clock
        self.writers = writers

    def translate(
        self, source: str, document: Any, environment: str, bucketing: str | None = None
    ) -> Translation:
        """The source document in Fader's terms (no storage involved)."""
        try:
            system = sources.get(source, bucketing=bucketing)
        except sources.UnknownSourceError as exc:
            raise _source_errors(exc, "/body/source") from exc
        try:
            return system.translate(document, environment)
        except SourceDocumentError as exc:
            raise _source_errors(exc, "/body/document") from exc

    def import_flags(self, principal: Principal, project_key: str, request: ImportRequest) -> JSON:
        """Translate, verify, and (unless a dry run, or refused) write; the import report.

        Raises :class:`ParityRefusedError` when verification found differences that were not
        accepted, and :class:`~fader_server.migration.model.SourceSDKMissingError` when the
        source's SDK (the ``migrate`` extra) is not installed.
        """
        given = self._contexts(request)
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            env = _environment(tx, project, request.environment)
            bucketing = str(env.data.get("bucketing") or "v2")
            translation = self.translate(
                request.source, request.document, request.environment, bucketing
            )
            self._check_size(translation)
            plan = _plan(tx, project, request.environment, translation)
            _authorise(tx, principal, project, env, plan)
            operations.validate(tx, project, plan.ops)
            before = documents.build(tx, project, request.environment)
            after = _document_after(tx, project, request.environment, plan)
        verified = dataclasses.replace(translation, document=after)
        contexts = given
        if contexts is None and request.generate is not None:
            contexts = self._generated(translation, request.generate)
        parity = None if contexts is None else self._verify(request, verified, contexts)
        refused = parity is not None and not parity.complete and not request.accept_differences
        report = self._report(request, translation, plan, parity, written=False, refused=refused)
        if refused and not request.dry_run:
            assert parity is not None
            raise _refusal(report, parity)
        if request.dry_run or not plan.ops:
            return report
        self._write(principal, project_key, request, translation, before, after)
        return {**report, "written": True}

    def _contexts(self, request: ImportRequest) -> list[dict[str, Any]] | None:
        if request.contexts is None:
            return None
        try:
            return context_tools.check_contexts(request.contexts)
        except context_tools.ContextsError as exc:
            raise _source_errors(exc, "/body/contexts") from exc

    def _generated(self, translation: Translation, count: int) -> list[dict[str, Any]]:
        try:
            return context_tools.generate(translation.document, count)
        except context_tools.ContextsError as exc:
            raise _source_errors(exc, "/body/generate_contexts") from exc

    def _check_size(self, translation: Translation) -> None:
        count = len(translation.document.get("flags") or {})
        if count > MAX_FLAGS:
            raise InvalidInputError(
                f"the document translates to {count:,} flags; one import writes at most "
                f"{MAX_FLAGS:,}: split the document",
                [FieldProblem("/body/document", f"at most {MAX_FLAGS:,} flags")],
            )

    def _verify(
        self, request: ImportRequest, verified: Translation, contexts: Sequence[Mapping[str, Any]]
    ) -> ParityReport:
        evaluations = len(verified.keys) * len(contexts)
        if evaluations > MAX_EVALUATIONS:
            raise InvalidInputError(
                f"{len(verified.keys):,} flags x {len(contexts):,} contexts is "
                f"{evaluations:,} evaluations; a verification runs at most "
                f"{MAX_EVALUATIONS:,}: send fewer contexts",
                [FieldProblem("/body/contexts", f"at most {MAX_EVALUATIONS:,} evaluations")],
            )
        system = sources.get(request.source)
        try:
            evaluator = system.evaluator(request.document)
        except SourceDocumentError as exc:
            raise _source_errors(exc, "/body/document") from exc
        try:
            return check_parity(verified, evaluator, contexts, clock=time.time)
        except SourceContextError as exc:
            where = "/body/contexts" if exc.index is None else f"/body/contexts/{exc.index}"
            raise _source_errors(exc, where) from exc
        finally:
            evaluator.close()

    def _report(
        self,
        request: ImportRequest,
        translation: Translation,
        plan: _Plan,
        parity: ParityReport | None,
        *,
        written: bool,
        refused: bool,
    ) -> JSON:
        return {
            "source": request.source,
            "environment": request.environment,
            "dry_run": request.dry_run,
            "created": plan.created,
            "updated": plan.updated,
            "unchanged": plan.unchanged,
            "keys": {k: v for k, v in sorted(translation.keys.items()) if k != v},
            "unsupported": [u.as_json() for u in translation.unsupported],
            "notes": [*translation.notes, *_dropped_metadata(translation)],
            "parity": None if parity is None else parity.as_json(),
            "refused": refused,
            "written": written,
        }

    def _write(
        self,
        principal: Principal,
        project_key: str,
        request: ImportRequest,
        translation: Translation,
        before: JSON,
        verified: JSON,
    ) -> None:
        comment = request.comment or f"imported from {request.source}"
        change = Change(principal, self.clock, comment)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            env = _environment(tx, project, request.environment)
            if documents.build(tx, project, request.environment) != before:
                raise VersionConflictError(
                    f"environment '{request.environment}' changed while the import was being "
                    "verified; run the import again"
                )
            plan = _plan(tx, project, request.environment, translation)
            _authorise(tx, principal, project, env, plan)
            operations.validate(tx, project, plan.ops)
            _apply(tx, project, plan.ops, self.writers, change)
            if documents.build(tx, project, request.environment) != verified:
                # The writes are the ones verified; a difference is a bug, never written.
                raise RuntimeError(
                    "the document written differs from the one verified; nothing was written"
                )
