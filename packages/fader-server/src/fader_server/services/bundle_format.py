"""The project bundle: one JSON file holding everything that defines how a project behaves
(docs/backup-and-move.md), for backups and for moving a project between Fader instances.

::

    {"format": "fader-bundle/v1", "exported_at": "...", "fader_version": "0.1.0",
     "project": {"key": "shop", "name": "Shop"},
     "environments": [{"key": "production", "name": "Production", "protected": true,
                       "bucketing": "v2", "change_requests": {...}}],
     "flags": [{"key": "checkout", "name": "...", "type": "boolean", "variants": {...}, ...}],
     "segments": [{"key": "internal", "included": [...], "excluded": [], "rules": [...]}],
     "configurations": {"production": {"checkout": {"enabled": true, ...}}},
     "rollout_templates": [{"key": "careful", "name": "...", "stages": [...], "gates": [...]}]}

Entries hold what the API stores, keyed as the API keys them, and nothing an instance assigns
(ids, versions, timestamps, authors): those mean nothing on another instance. A configuration
appears only where one was written; a flag absent from an environment's configurations is
served its default there (off), exactly as on the instance it came from.

:func:`parse` reads a bundle as hostile input: the format is checked first (an unknown version
is refused, never guessed at), then sizes, then every entry field by field
(:mod:`.bundle_fields`), then every environment's document built from the bundle is validated
by the engine, so a flag naming a segment the bundle lacks is refused before anything is
written. Problems name their place as JSON pointers under ``/body/document``, where the import
endpoint carries the bundle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fader_engine.model import FORMAT_ID
from fader_server.errors import FieldProblem, InvalidInputError
from fader_server.services import bundle_fields as fields
from fader_server.services import documents
from fader_server.services.change_requests import policy as change_policy
from fader_server.storage.ports import JSON

FORMAT = "fader-bundle/v1"
FORMAT_FAMILY = "fader-bundle/"
ROOT = "/body/document"
MAX_ENVIRONMENTS = 100
MAX_FLAGS = 10_000
MAX_SEGMENTS = 10_000
MAX_TEMPLATES = 1_000
_TOP_LEVEL = (
    "format",
    "exported_at",
    "fader_version",
    "project",
    "environments",
    "flags",
    "segments",
    "configurations",
    "rollout_templates",
)
_ENVIRONMENT: fields.Spec = {
    "name": (fields.text(1, 200), fields.REQUIRED),
    "protected": (fields.boolean, False),
    "bucketing": (fields.one_of("v2", "v3"), "v2"),
}


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    data: JSON
    """``stages``, ``gates`` and ``split_by``, as the template service stores them."""


@dataclass(frozen=True, slots=True)
class Bundle:
    """A validated bundle: every mapping ordered as in the file, values in stored form."""

    project_key: str
    project_name: str
    environments: dict[str, JSON]
    flags: dict[str, JSON]
    segments: dict[str, JSON]
    configurations: dict[str, dict[str, JSON]]
    templates: dict[str, Template]
    exported_at: str | None = None

    def document(self, environment: str) -> JSON:
        """The ``fader/v1`` document of `environment` as the bundle defines it, built with the
        server's own entry builders (:mod:`.documents`), so it is what the exporting instance
        served."""
        configs = self.configurations.get(environment, {})
        return {
            "format": FORMAT_ID,
            "bucketing": self.environments[environment].get("bucketing") or "v2",
            "metadata": {"project": self.project_key, "environment": environment},
            "segments": {k: documents.segment_entry(v) for k, v in sorted(self.segments.items())},
            "flags": {
                k: documents.flag_entry(v, configs.get(k) or documents.default_config(v))
                for k, v in sorted(self.flags.items())
            },
        }

    def desired_config(self, environment: str, flag: str) -> JSON:
        """What flag `flag` is configured with in `environment` after an import: the bundle's
        configuration, or the default (off) where the bundle has none."""
        found = self.configurations.get(environment, {}).get(flag)
        return found if found is not None else documents.default_config(self.flags[flag])


def parse(raw: Any) -> Bundle:
    """Validate a bundle completely, or raise :class:`InvalidInputError` listing every
    problem (nothing is read from storage: this is the bundle judged on its own)."""
    if not isinstance(raw, Mapping):
        raise InvalidInputError(
            "a project bundle is a JSON object", [FieldProblem(ROOT, "must be an object")]
        )
    declared = raw.get("format")
    if declared != FORMAT:
        if isinstance(declared, str) and declared.startswith(FORMAT_FAMILY):
            detail = (
                f"this server reads bundles in format '{FORMAT}', not '{declared}': import it "
                "into a Fader version that knows that format, or export it again from this one"
            )
        else:
            detail = f"not a Fader project bundle: its \"format\" must be '{FORMAT}'"
        raise InvalidInputError(detail, [FieldProblem(f"{ROOT}/format", f"must be '{FORMAT}'")])
    problems: list[FieldProblem] = []
    for name in sorted(set(raw) - set(_TOP_LEVEL)):
        problems.append(FieldProblem(f"{ROOT}/{name}", "unknown field"))
    project = fields.check_fields(
        raw.get("project"),
        {"key": (fields.key_problem, fields.REQUIRED), "name": (fields.text(1, 200), "")},
        f"{ROOT}/project",
        problems,
    )
    environments = _keyed(raw, "environments", MAX_ENVIRONMENTS, problems, _environment)
    flags = _keyed(raw, "flags", MAX_FLAGS, problems, _with_spec(fields.FLAG))
    segments = _keyed(raw, "segments", MAX_SEGMENTS, problems, _with_spec(fields.SEGMENT))
    templates = _keyed(raw, "rollout_templates", MAX_TEMPLATES, problems, fields.check_template)
    configurations = _configurations(raw.get("configurations", {}), environments, flags, problems)
    if not environments and not problems:
        problems.append(FieldProblem(f"{ROOT}/environments", "a project needs an environment"))
    exported_at = raw.get("exported_at")
    if problems:
        raise InvalidInputError(
            "the project bundle is invalid; nothing was imported. Fix the fields listed in "
            "`errors` (or export the project again)",
            problems,
        )
    bundle = Bundle(
        project_key=project["key"],
        project_name=project["name"] or project["key"],
        environments=environments,
        flags=flags,
        segments={k: {f: v for f, v in d.items() if v is not None} for k, d in segments.items()},
        configurations=configurations,
        templates={
            k: Template(v["name"], {n: v[n] for n in ("stages", "gates", "split_by")})
            for k, v in templates.items()
        },
        exported_at=exported_at if isinstance(exported_at, str) else None,
    )
    _validate_documents(bundle)
    return bundle


def _with_spec(spec: fields.Spec) -> Any:
    def check(value: Any, path: str, problems: list[FieldProblem]) -> JSON:
        return fields.check_fields(value, spec, path, problems, allow=("key",))

    return check


def _environment(value: Any, path: str, problems: list[FieldProblem]) -> JSON:
    found = fields.check_fields(
        value, _ENVIRONMENT, path, problems, allow=("key", "change_requests")
    )
    raw_policy = value.get("change_requests") if isinstance(value, dict) else None
    if raw_policy is not None:
        try:
            found["change_requests"] = change_policy.parse(
                raw_policy, protected=found.get("protected") is True
            )
        except InvalidInputError as exc:
            problems.extend(
                FieldProblem(
                    p.path.replace("/body/change_requests", f"{path}/change_requests"), p.message
                )
                for p in exc.problems
            )
            if not exc.problems:
                problems.append(FieldProblem(f"{path}/change_requests", exc.detail))
    return found


def _keyed(
    raw: Mapping[str, Any],
    name: str,
    limit: int,
    problems: list[FieldProblem],
    check: Any,
) -> dict[str, Any]:
    """A list of entries with unique keys → key: checked entry (its key left out)."""
    path = f"{ROOT}/{name}"
    entries = raw.get(name, [])
    if not isinstance(entries, list):
        problems.append(FieldProblem(path, "must be a list"))
        return {}
    if len(entries) > limit:
        problems.append(FieldProblem(path, f"at most {limit} entries"))
        return {}
    found: dict[str, Any] = {}
    for index, entry in enumerate(entries):
        at = f"{path}/{index}"
        key = entry.get("key") if isinstance(entry, dict) else None
        if (wrong := fields.key_problem(key)) is not None:
            problems.append(FieldProblem(f"{at}/key", f"must be {wrong}"))
        elif key in found:
            problems.append(FieldProblem(f"{at}/key", f"'{key}' appears twice"))
        checked = check(entry, at, problems)
        if isinstance(key, str) and key not in found:
            found[key] = checked
    return found


def _configurations(
    raw: Any,
    environments: Mapping[str, JSON],
    flags: Mapping[str, JSON],
    problems: list[FieldProblem],
) -> dict[str, dict[str, JSON]]:
    path = f"{ROOT}/configurations"
    if not isinstance(raw, dict):
        problems.append(FieldProblem(path, "must be an object: environment → flag → config"))
        return {}
    found: dict[str, dict[str, JSON]] = {}
    for env, configs in raw.items():
        at = f"{path}/{env}"
        if env not in environments:
            problems.append(FieldProblem(at, f"no environment '{env}' in the bundle"))
            continue
        if not isinstance(configs, dict) or len(configs) > MAX_FLAGS:
            problems.append(FieldProblem(at, f"must be an object of at most {MAX_FLAGS} flags"))
            continue
        found[env] = {}
        for flag, config in configs.items():
            if flag not in flags:
                problems.append(FieldProblem(f"{at}/{flag}", f"no flag '{flag}' in the bundle"))
                continue
            found[env][flag] = fields.check_fields(config, fields.CONFIG, f"{at}/{flag}", problems)
    return found


def _validate_documents(bundle: Bundle) -> None:
    """Every environment's document, judged by the engine (the same check as every write)."""
    try:
        documents.validate((env, bundle.document(env)) for env in bundle.environments)
    except InvalidInputError as exc:
        raise InvalidInputError(
            "the project bundle is invalid: the flags, segments and configurations it holds "
            "do not form valid documents (a segment or flag they name may be missing). "
            "Nothing was imported; fix the problems listed in `errors`",
            [
                FieldProblem(f"{ROOT}/documents{p.path}" if p.path else ROOT, p.message)
                for p in exc.problems
            ],
        ) from None
