"""The flag definition form (create and edit): fields ⇄ the flag's stored definition.

Checks here are the ones the JSON API's schema makes at its edge (key pattern, lengths, a
number of days); everything about meaning (variant values fit the type, configurations still
name existing variants) is the engine's, reported through the flag service.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from fader_server import strict_json
from fader_server.storage.ports import JSON
from fader_server.web.forms import FieldErrors, Form, pointer

KINDS = (
    ("release", "Release: ship a feature, then remove the flag"),
    ("experiment", "Experiment: compare variants, then remove the flag"),
    ("ops", "Operational: a kill switch or tuning knob that stays"),
    ("permission", "Permission: who may use a feature, stays"),
)
TYPES = (("boolean", "Boolean"), ("string", "String"), ("number", "Number"), ("object", "JSON"))
_VARIANT = re.compile(r"variants-(\d+)-name")


@dataclass
class VariantRow:
    name: str = ""
    value: str = ""


@dataclass
class DefinitionForm:
    key: str = ""
    name: str = ""
    description: str = ""
    tags: str = ""
    kind: str = "release"
    type: str = "boolean"
    owner_team: str = ""
    lifetime: str = ""
    client_side: bool = False
    variants: list[VariantRow] = field(
        default_factory=lambda: [VariantRow("on", "true"), VariantRow("off", "false")]
    )
    version: int = 0
    comment: str = ""


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def from_definition(key: str, data: JSON, version: int) -> DefinitionForm:
    lifetime = data.get("expected_lifetime_days")
    return DefinitionForm(
        key=key,
        name=str(data.get("name", "")),
        description=str(data.get("description", "")),
        tags=", ".join(data.get("tags") or []),
        kind=str(data.get("kind", "release")),
        type=str(data.get("type", "boolean")),
        owner_team=str(data.get("owner_team") or ""),
        lifetime="" if lifetime is None else str(lifetime),
        client_side=bool(data.get("client_side", False)),
        variants=[VariantRow(n, _show(v)) for n, v in (data.get("variants") or {}).items()],
        version=version,
    )


def _value(text: str, type_: str) -> Any:
    """A variant value as typed; text that does not fit the type is kept, and the engine
    explains what the type needs. JSON is read strictly (:func:`strict_json.decode`): a key
    named twice, nesting past 64 levels or a NUL character raise
    :class:`~fader_server.strict_json.JsonInputError`, which the form shows at the field."""
    try:
        if type_ == "boolean" and text in ("true", "false"):
            return text == "true"
        if type_ == "number":
            return int(text) if re.fullmatch(r"-?\d+", text) else float(text)
        if type_ == "object":
            return strict_json.decode(text)
    except ValueError:
        return text
    return text


def _json_error(exc: strict_json.JsonInputError) -> str:
    """The first thing wrong with a variant's JSON, as a sentence for the field."""
    first = exc.problems[0]
    where = f" (at {first.path})" if first.path else ""
    return f"{first.message[:1].upper()}{first.message[1:]}{where}."


def read(form: Form, *, with_key: bool) -> tuple[DefinitionForm, JSON, dict[str, str], FieldErrors]:
    """The posted form, the definition it makes, the pointer → field table and edge errors."""
    indices = sorted({int(m.group(1)) for n in form.names() if (m := _VARIANT.fullmatch(n))})
    rows = [
        VariantRow(form.text(f"variants-{i}-name"), form.text(f"variants-{i}-value"))
        for i in indices
    ]
    version = form.text("version")
    definition = DefinitionForm(
        key=form.text("key") if with_key else "",
        name=form.text("name"),
        description=form.get("description").strip(),
        tags=form.text("tags"),
        kind=form.text("kind") or "release",
        type=form.text("type") or "boolean",
        owner_team=form.text("owner-team"),
        lifetime=form.text("lifetime"),
        client_side=form.checked("client-side"),
        variants=rows,
        version=int(version) if version.isdigit() else 0,
        comment=form.text("comment"),
    )
    errors = FieldErrors()
    fields = {
        "/name": "name",
        "/description": "description",
        "/tags": "tags",
        "/kind": "kind",
        "/type": "type",
        "/variants": "variants",
        "/metadata": "owner-team",
        # a configuration that names a variant this change removes
        "/offVariant": "variants",
        "/rules": "variants",
        "/default": "variants",
        "/prerequisites": "variants",
    }
    if not definition.name:
        errors.add("name", "Enter a name people will recognise, e.g. “New checkout”.")
    elif len(definition.name) > 200:
        errors.add("name", "The name is longer than 200 characters; shorten it.")
    if len(definition.description) > 5000:
        errors.add("description", "The description is longer than 5000 characters.")
    tags = [t.strip() for t in definition.tags.split(",") if t.strip()]
    if any(len(t) > 64 for t in tags):
        errors.add("tags", "Each tag can have at most 64 characters.")
    if definition.kind not in dict(KINDS):
        errors.add("kind", "Choose one of the kinds listed.")
    if definition.type not in dict(TYPES):
        errors.add("type", "Choose one of the types listed.")
    if len(definition.owner_team) > 200:
        errors.add("owner-team", "The team name is longer than 200 characters.")
    lifetime: int | None = None
    if definition.lifetime:
        if not definition.lifetime.isdigit() or not 1 <= int(definition.lifetime) <= 3650:
            errors.add("lifetime", "Enter a whole number of days from 1 to 3650, or leave empty.")
        else:
            lifetime = int(definition.lifetime)
    variants: dict[str, Any] = {}
    for i, row in enumerate(rows):
        if not row.name and not row.value:
            continue
        if not row.name:
            errors.add(f"variants-{i}-name", "Give this variant a name, or empty its value.")
        elif row.name in variants:
            errors.add(f"variants-{i}-name", f"The name “{row.name}” is used twice.")
        else:
            try:
                variants[row.name] = _value(row.value, definition.type)
            except strict_json.JsonInputError as exc:
                errors.add(f"variants-{i}-value", _json_error(exc))
                continue
            fields[pointer("variants", row.name)] = f"variants-{i}-value"
    if not variants and not errors.of("variants-0-name"):
        errors.add("variants", "Give the flag at least one variant, e.g. on = true, off = false.")
    data: JSON = {
        "name": definition.name,
        "description": definition.description,
        "tags": tags,
        "kind": definition.kind,
        "type": definition.type,
        "variants": variants,
        "owner_team": definition.owner_team or None,
        "expected_lifetime_days": lifetime,
        "client_side": definition.client_side,
    }
    return definition, data, fields, errors


def apply(definition: DefinitionForm, action: str) -> str:
    """Add or remove a variant row; returns the id of the field to focus next."""
    name, _, rest = action.partition(":")
    if name == "add-variant":
        definition.variants.append(VariantRow())
        return f"variants-{len(definition.variants) - 1}-name"
    if name == "remove-variant" and rest.isdigit() and int(rest) < len(definition.variants):
        del definition.variants[int(rest)]
        return "add-variant"
    return ""
