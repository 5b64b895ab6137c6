"""Exporting a whole project as a bundle and importing one, for backups and for moving a
project between Fader instances (docs/backup-and-move.md).

**Export** (:meth:`ProjectBundleService.export`) writes what defines how the project behaves:
the project's name, its environments and their settings, flag and segment definitions, every
written flag configuration and the rollout templates (format: :mod:`.bundle_format`). It leaves
out every secret (API tokens, SDK keys, webhooks and their signing secrets, single sign-on
settings; credentials in a template gate's URL are removed), who has access (members, users),
and what happened rather than what is (audit history, versions, release plans, incidents,
change requests, usage data).

Exporting takes the **editor** role: a bundle is the project's whole behaviour in one file, made
to be written elsewhere, so it is the first half of a write, and those who can change the
project are who should carry it away; viewers keep reading every piece through its own
endpoint. Each export is recorded in the project's audit log (who took a copy, and when).

**Import** (:meth:`ProjectBundleService.import_bundle`) validates the whole bundle first
(:func:`.bundle_format.parse`), then writes it in one transaction (:mod:`.bundle_import`), then
*proves* it: for every environment, every flag of the bundle is evaluated on the same contexts
by Fader's engine over the bundle's document and over the document read back from the
project, through the parity check every import uses
(:func:`fader_server.migration.parity.check_parity`). Below 100% agreement the import is refused
and rolled back unless the caller accepts the differences; a dry run does everything, reports,
and rolls back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fader_server.__about__ import __version__
from fader_server.errors import FieldProblem, InvalidInputError, InvalidStateError
from fader_server.migration import contexts as context_generation
from fader_server.migration.fader_source import FaderEvaluator, identity_translation
from fader_server.migration.parity import ParityReport, check_parity
from fader_server.services import bundle_fields, bundle_format, documents
from fader_server.services.access import Clock, Principal, Role, load_project
from fader_server.services.bundle_import import BundleImport, BundleTx, Written
from fader_server.services.definitions import DefinitionService
from fader_server.services.outbound_policy import DENY_INTERNAL, OutboundPolicy
from fader_server.services.versioning import Change, audit_entity
from fader_server.storage.ports import JSON, PROJECT_SCOPE, ResourceType, RolloutTemplate
from fader_server.storage.ports.store import Store

MAX_EVALUATIONS = 2_000_000
"""Flags x contexts x environments one import may evaluate (twice each): the parity check
runs inside the request, so its cost is bounded like any other input."""


class ParityRefusedError(InvalidStateError):
    """What would be written does not evaluate as the bundle does; `report` is the import
    report (with `written` false) whose ``parity`` shows which flags and contexts differ."""

    def __init__(self, detail: str, report: JSON) -> None:
        super().__init__(detail)
        self.report = report


class _RolledBackError(Exception):
    """Raised inside the transaction to undo a dry run (or a refused import) after reporting."""

    def __init__(self, report: JSON) -> None:
        super().__init__("rolled back")
        self.report = report


def _without_credentials(url: Any) -> Any:
    """A gate URL without ``user:password@``: credentials are secrets and never leave."""
    if not isinstance(url, str):
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _template_entry(template: RolloutTemplate) -> JSON:
    gates = [
        {**gate, "url": _without_credentials(gate["url"])} if "url" in gate else dict(gate)
        for gate in template.data.get("gates") or []
    ]
    return {
        "key": template.key,
        "name": template.name,
        "stages": template.data["stages"],
        "gates": gates,
        "split_by": template.data.get("split_by"),
    }


def _only(data: JSON, spec: bundle_fields.Spec, *, drop_none: bool = False) -> JSON:
    """The stored fields a bundle carries (anything else the row holds is instance-local)."""
    return {k: v for k, v in data.items() if k in spec and not (drop_none and v is None)}


class ProjectBundleService:
    def __init__(
        self,
        store: Store[BundleTx],
        clock: Clock,
        flags: DefinitionService,
        segments: DefinitionService,
        outbound: OutboundPolicy = DENY_INTERNAL,
    ) -> None:
        self.store = store
        self.clock = clock
        self.flags = flags
        self.segments = segments
        self.outbound = outbound

    # ------------------------------------------------------------------------------ export
    def export(self, principal: Principal, project_key: str) -> JSON:
        """The project as a ``fader-bundle/v1`` bundle (editor role; audited)."""
        change = Change(principal, self.clock, "exported as a project bundle")
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            limit = documents.MAX_ENTITIES

            def live(type: ResourceType, scope: str = PROJECT_SCOPE) -> list[Any]:
                return tx.list_resources(project.id, type, scope, limit=limit)

            environments = live(ResourceType.ENVIRONMENT)
            flags = live(ResourceType.FLAG)
            flag_keys = {f.key for f in flags}
            configurations = {
                env.key: {
                    c.key: _only(c.data, bundle_fields.CONFIG, drop_none=True)
                    for c in live(ResourceType.CONFIG, env.key)
                    if c.key in flag_keys and not c.deleted
                }
                for env in environments
            }
            bundle: JSON = {
                "format": bundle_format.FORMAT,
                "exported_at": self.clock().isoformat(),
                "fader_version": __version__,
                "project": {"key": project.key, "name": project.name},
                "environments": [_environment_entry(env.key, env.data) for env in environments],
                "flags": [{"key": f.key, **_only(f.data, bundle_fields.FLAG)} for f in flags],
                "segments": [
                    {"key": s.key, **_only(s.data, bundle_fields.SEGMENT, drop_none=True)}
                    for s in live(ResourceType.SEGMENT)
                ],
                "configurations": {env: found for env, found in configurations.items() if found},
                "rollout_templates": [_template_entry(t) for t in tx.list_templates(project.id)],
            }
            audit_entity(tx, project, change, "export", "project", project.key, [])
        return bundle

    # ------------------------------------------------------------------------------ import
    def import_bundle(
        self,
        principal: Principal,
        project_key: str,
        bundle: Any,
        *,
        contexts: Sequence[Mapping[str, Any]] | None = None,
        generate_contexts: int | None = None,
        accept_differences: bool = False,
        dry_run: bool = False,
    ) -> JSON:
        """Import `bundle` into project `project_key` (created when missing), verified by
        parity on `contexts` (or `generate_contexts` of them generated from each
        environment's document, 200 by default). Returns the report; raises
        :class:`InvalidInputError` for an invalid bundle, :class:`ParityRefusedError` when the
        result does not evaluate as the bundle and `accept_differences` is false."""
        parsed = bundle_format.parse(bundle)
        given = _checked_contexts(contexts)
        per_env = {
            env: given if given is not None else _generated(parsed.document(env), generate_contexts)
            for env in parsed.environments
        }
        evaluations = sum(len(c) for c in per_env.values()) * max(len(parsed.flags), 1)
        if evaluations > MAX_EVALUATIONS:
            raise InvalidInputError(
                f"verifying this import would take {evaluations:,} evaluations (at most "
                f"{MAX_EVALUATIONS:,}); give fewer contexts",
                [FieldProblem("/body/contexts", "too many for this bundle")],
            )
        comment = f"imported from a bundle of project '{parsed.project_key}'"
        if parsed.exported_at:
            comment += f" exported at {parsed.exported_at}"
        change = Change(principal, self.clock, comment)
        try:
            with self.store.transaction() as tx:
                written = BundleImport(
                    tx,
                    principal,
                    parsed,
                    change,
                    flags=self.flags,
                    segments=self.segments,
                    outbound=self.outbound,
                ).run(project_key)
                parity = {
                    env: check_parity(
                        identity_translation(written.documents[env]),
                        FaderEvaluator(parsed.document(env)),
                        per_env[env],
                        flags=list(parsed.flags),
                    )
                    for env in parsed.environments
                }
                report = _report(written, parity, per_env, dry_run=dry_run)
                differing = [env for env, found in parity.items() if not found.complete]
                if differing and not accept_differences:
                    raise _RolledBackError({**report, "written": False, "refused": True})
                if dry_run:
                    raise _RolledBackError({**report, "written": False})
        except _RolledBackError as undone:
            if undone.report.get("refused"):
                raise ParityRefusedError(_refusal(undone.report), undone.report) from None
            return undone.report
        return report


def _environment_entry(key: str, data: JSON) -> JSON:
    entry: JSON = {
        "key": key,
        "name": data.get("name") or key,
        "protected": bool(data.get("protected")),
        "bucketing": data.get("bucketing") or "v2",
    }
    if data.get("change_requests") is not None:
        entry["change_requests"] = data["change_requests"]
    return entry


def _checked_contexts(contexts: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    if contexts is None:
        return None
    try:
        return context_generation.check_contexts(list(contexts))
    except context_generation.ContextsError as exc:
        raise InvalidInputError(
            f"the contexts are invalid: {exc}", [FieldProblem("/body/contexts", str(exc))]
        ) from None


def _generated(document: JSON, count: int | None) -> list[dict[str, Any]]:
    try:
        return context_generation.generate(
            document, context_generation.DEFAULT_COUNT if count is None else count
        )
    except context_generation.ContextsError as exc:
        raise InvalidInputError(
            f"cannot generate contexts: {exc}", [FieldProblem("/body/generate_contexts", str(exc))]
        ) from None


def _report(
    written: Written,
    parity: Mapping[str, ParityReport],
    contexts: Mapping[str, Sequence[Any]],
    *,
    dry_run: bool,
) -> JSON:
    return {
        "source": "fader",
        "project": written.project.key,
        "project_created": written.project_created,
        "environments": written.environments,
        "counts": {kind: counts.as_json() for kind, counts in written.counts.items()},
        "kept": written.kept,
        "contexts": {env: len(found) for env, found in contexts.items()},
        "parity": {env: found.as_json() for env, found in parity.items()},
        "dry_run": dry_run,
        "written": written.changed and not dry_run,
    }


def _refusal(report: JSON) -> str:
    parts = []
    for env, found in report["parity"].items():
        if found["complete"]:
            continue
        flags = [f"'{f['flag']}'" for f in found["flags"] if f["disagreed"]]
        parts.append(
            f"in '{env}', {found['disagreed']} of {found['evaluations']} evaluations differ "
            f"(flags {', '.join(flags[:5])}{' and more' if len(flags) > 5 else ''})"
        )
    return (
        "the project as imported would not evaluate as the bundle does: "
        + "; ".join(parts)
        + ". Nothing was imported. Check the parity report (a dry run shows it), or accept "
        "the differences to import anyway"
    )
