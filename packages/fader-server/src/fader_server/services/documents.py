"""An environment's Fader document (``docs/flag-format.md``): built from storage, checked by
the engine.

The engine is the only judge of what a valid configuration is: before any flag, configuration
or segment write commits, every environment document it affects is rebuilt with the change and
passed to :func:`fader_engine.parse.parse_document`. The server never re-implements those rules,
so a configuration the API accepts is one every SDK can load.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fader_engine.errors import ConfigurationError
from fader_engine.model import FORMAT_ID
from fader_engine.parse import parse_document
from fader_server.errors import FieldProblem, InvalidInputError
from fader_server.storage.ports import JSON, PROJECT_SCOPE, Project, ResourceType
from fader_server.storage.ports.resources import ResourceReads

MAX_ENTITIES = 100_000
CONFIG_FIELDS = ("enabled", "offVariant", "rules", "default", "prerequisites")
_DESCRIPTIVE = ("name", "description", "kind", "tags")


def default_config(flag: JSON) -> JSON:
    """The configuration of a flag in an environment where nobody configured it yet: off,
    serving its first variant, so a new flag is dark everywhere until someone turns it on."""
    variants: dict[str, Any] = flag.get("variants") or {"off": False}
    off = next(
        (name for name, value in variants.items() if name == "off" or value is False),
        next(iter(variants)),
    )
    return {
        "enabled": False,
        "offVariant": off,
        "rules": [],
        "default": {"variant": off},
        "prerequisites": [],
    }


def flag_entry(flag: JSON, config: JSON) -> JSON:
    """One flag of a document: descriptive fields from the flag, behaviour from the config."""
    entry: JSON = {k: flag[k] for k in _DESCRIPTIVE if flag.get(k) not in (None, "")}
    entry["type"] = flag["type"]
    entry["variants"] = flag["variants"]
    for field in CONFIG_FIELDS:
        if field in config:
            entry[field] = config[field]
    metadata: JSON = {}
    if flag.get("owner_team"):
        metadata["owner_team"] = flag["owner_team"]
    if flag.get("client_side"):
        metadata["client_side"] = True  # OFREP serves it to client keys
    if metadata:
        entry["metadata"] = metadata
    return entry


def with_config(entry: JSON, config: JSON) -> JSON:
    """A document's flag entry with its configuration replaced by `config`: what
    :func:`flag_entry` builds from the same flag definition and `config` (the definition's
    fields are the entry's other fields, in the same order)."""
    replaced: JSON = {k: v for k, v in entry.items() if k not in CONFIG_FIELDS and k != "metadata"}
    for field in CONFIG_FIELDS:
        if field in config:
            replaced[field] = config[field]
    if "metadata" in entry:
        replaced["metadata"] = entry["metadata"]
    return replaced


def segment_entry(segment: JSON) -> JSON:
    return {k: v for k, v in segment.items() if k != "name" and v is not None}


def build(
    tx: ResourceReads,
    project: Project,
    environment: str,
    *,
    flags: dict[str, JSON | None] | None = None,
    configs: dict[str, JSON | None] | None = None,
    segments: dict[str, JSON | None] | None = None,
) -> JSON:
    """The document of one environment; the keyword mappings overlay pending changes
    (a key mapped to None is removed) so a write can be validated before it commits."""
    flag_data = _live(tx, project, ResourceType.FLAG, PROJECT_SCOPE, flags)
    config_data = _live(tx, project, ResourceType.CONFIG, environment, configs)
    segment_data = _live(tx, project, ResourceType.SEGMENT, PROJECT_SCOPE, segments)
    env = tx.get_resource(project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, environment)
    return {
        "format": FORMAT_ID,
        "bucketing": (env.data.get("bucketing") if env else None) or "v2",
        "metadata": {"project": project.key, "environment": environment},
        "segments": {k: segment_entry(v) for k, v in sorted(segment_data.items())},
        "flags": {
            k: flag_entry(v, config_data.get(k) or default_config(v))
            for k, v in sorted(flag_data.items())
        },
    }


def _live(
    tx: ResourceReads,
    project: Project,
    type: ResourceType,
    scope: str,
    overlay: dict[str, JSON | None] | None,
) -> dict[str, JSON]:
    found: dict[str, Any] = {
        r.key: r.data for r in tx.list_resources(project.id, type, scope, limit=MAX_ENTITIES)
    }
    for key, value in (overlay or {}).items():
        if value is None:
            found.pop(key, None)
        else:
            found[key] = value
    return found


def environments(tx: ResourceReads, project: Project) -> list[str]:
    return [
        r.key
        for r in tx.list_resources(
            project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, limit=MAX_ENTITIES
        )
    ]


def validate(documents: Iterable[tuple[str, JSON]]) -> None:
    """Raise :class:`InvalidInputError` listing every problem of every (environment, document)."""
    problems: list[FieldProblem] = []
    for environment, document in documents:
        try:
            parse_document(document)
        except ConfigurationError as exc:
            problems.extend(
                FieldProblem(path=p.path, message=f"in environment '{environment}': {p.message}")
                for p in exc.problems
            )
    if problems:
        raise InvalidInputError(
            "the change would make the flag configuration invalid; fix the fields listed "
            "in `errors` and retry",
            problems,
        )
