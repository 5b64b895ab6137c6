"""The rules editor's model: a flag configuration as form rows, and back to configuration JSON.

The form carries the whole configuration (off variant, ordered rules with clauses, segment
references and a variant or split each, the default, prerequisites), so it round-trips
without JavaScript: "add a clause", "move rule up" and friends are submit buttons whose
``action`` the server applies before rendering the form again. The JSON built here is not
judged here: the engine validates it (through the flag service) and its problems come back
to the fields by the pointer → field id table :func:`read` fills in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fader_server.storage.ports import JSON
from fader_server.web import split_bucketing
from fader_server.web.clauses import ClauseRow, read_rows, rows_from_clauses
from fader_server.web.forms import Form, indices, pointer, renumbered, show_value

SPLIT = "split"


@dataclass
class ServeRow:
    """What a rule (or the default) serves: ``variant:<name>`` or a split with weights."""

    mode: str = ""
    by: str = ""
    weights: list[str] = field(default_factory=list)
    """The weight typed for each of the flag's variants, in variant order ('' = not in it)."""
    bucketing: str = ""
    """The split's vendor bucketing as JSON, carried in a hidden field ('' = Fader's own):
    saving must keep an imported rollout's users where its vendor put them
    (:mod:`fader_server.web.split_bucketing`)."""

    @property
    def bucketing_words(self) -> str:
        """Whose hash places this split's users, for the editor ('' for Fader's own)."""
        return split_bucketing.describe(split_bucketing.read(self.bucketing))


@dataclass
class RuleRow:
    id: str = ""
    description: str = ""
    clauses: list[ClauseRow] = field(default_factory=list)
    serve: ServeRow = field(default_factory=ServeRow)


@dataclass
class PrerequisiteRow:
    flag: str = ""
    variants: str = ""


@dataclass
class ConfigForm:
    enabled: bool
    off_variant: str
    rules: list[RuleRow]
    default: ServeRow
    prerequisites: list[PrerequisiteRow]
    version: int
    comment: str = ""


def serve_row(owner: JSON, variants: list[str]) -> ServeRow:
    if "split" in owner:
        split = owner.get("split") or {}
        weights = {w.get("variant"): w.get("weight") for w in split.get("weights") or []}
        return ServeRow(
            SPLIT,
            str(split.get("by") or ""),
            ["" if weights.get(v) is None else show_value(weights[v]) for v in variants],
            split_bucketing.as_text(split.get("bucketing")),
        )
    return ServeRow(f"variant:{owner.get('variant', '')}", "", ["" for _ in variants])


def from_config(data: JSON, version: int, variants: list[str]) -> ConfigForm:
    return ConfigForm(
        enabled=bool(data.get("enabled", True)),
        off_variant=str(data.get("offVariant", "")),
        rules=[
            RuleRow(
                str(rule.get("id") or ""),
                str(rule.get("description") or ""),
                rows_from_clauses(rule.get("clauses") or []),
                serve_row(rule, variants),
            )
            for rule in data.get("rules") or []
        ],
        default=serve_row(data.get("default") or {}, variants),
        prerequisites=[
            PrerequisiteRow(str(p.get("flag", "")), ", ".join(p.get("variants") or []))
            for p in data.get("prerequisites") or []
        ],
        version=version,
    )


def _number(text: str) -> int | float | str:
    """A weight as typed: a number when it reads as one, else the text (the engine says why)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _read_serve(
    form: Form, prefix: str, at: str, variants: list[str], fields: dict[str, str]
) -> tuple[ServeRow, JSON]:
    row = ServeRow(
        form.text(f"{prefix}-serve"),
        form.text(f"{prefix}-by"),
        [form.text(f"{prefix}-weight-{i}") for i in range(len(variants))],
        form.text(f"{prefix}-bucketing"),
    )
    fields[at + "/variant"] = fields[at + "/split"] = f"{prefix}-serve"
    fields[at + "/split/by"] = f"{prefix}-by"
    fields[at + "/split/weights"] = fields[at + "/split/bucketing"] = f"{prefix}-weights"
    if row.mode != SPLIT:
        return row, {"variant": row.mode.removeprefix("variant:")}
    weights: list[JSON] = []
    for i, text in enumerate(row.weights):
        if text:
            fields[at + pointer("split", "weights", len(weights))] = f"{prefix}-weight-{i}"
            weights.append({"variant": variants[i], "weight": _number(text)})
    split: JSON = {"weights": weights}
    if row.by:
        split["by"] = row.by
    bucketing = split_bucketing.read(row.bucketing)
    if bucketing is not None:
        split["bucketing"] = bucketing
    return row, {"split": split}


def read(form: Form, variants: list[str]) -> tuple[ConfigForm, JSON, dict[str, str]]:
    """The posted form as rows, as configuration JSON, and the pointer → field id table."""
    form = renumbered(form, "rules", r"rules-(\d+)-serve")
    form = renumbered(form, "prerequisites", r"prerequisites-(\d+)-flag")
    fields: dict[str, str] = {"/offVariant": "off-variant", "/rules": "rules"}
    rules: list[RuleRow] = []
    rules_json: list[JSON] = []
    for i in range(len(indices(form, r"rules-(\d+)-serve"))):
        at = pointer("rules", i)
        fields[at] = f"rules-{i}"
        fields[at + "/id"] = f"rules-{i}-id"
        fields[at + "/description"] = f"rules-{i}-description"
        rows = read_rows(form, f"rules-{i}", at, fields)
        serve, serve_json = _read_serve(form, f"rules-{i}", at, variants, fields)
        rule = RuleRow(
            form.text(f"rules-{i}-id"), form.text(f"rules-{i}-description"), rows.rows, serve
        )
        rules.append(rule)
        entry: JSON = {"clauses": rows.clauses, **serve_json}
        if rule.id:
            entry = {"id": rule.id, **entry}
        if rule.description:
            entry["description"] = rule.description
        rules_json.append(entry)
    default, default_json = _read_serve(form, "default", "/default", variants, fields)
    fields["/default"] = "default-serve"
    fields["/prerequisites"] = "prerequisites"
    prerequisites: list[PrerequisiteRow] = []
    prerequisites_json: list[JSON] = []
    for k in range(len(indices(form, r"prerequisites-(\d+)-flag"))):
        row = PrerequisiteRow(
            form.text(f"prerequisites-{k}-flag"), form.text(f"prerequisites-{k}-variants")
        )
        prerequisites.append(row)
        names = [v.strip() for v in row.variants.replace("\n", ",").split(",") if v.strip()]
        prerequisites_json.append({"flag": row.flag, "variants": names})
        at = pointer("prerequisites", k)
        fields[at] = f"prerequisites-{k}"
        fields[at + "/flag"] = f"prerequisites-{k}-flag"
        fields[at + "/variants"] = f"prerequisites-{k}-variants"
    version = form.text("version")
    config = ConfigForm(
        enabled=form.get("enabled") == "true",
        off_variant=form.text("off-variant"),
        rules=rules,
        default=default,
        prerequisites=prerequisites,
        version=int(version) if version.isdigit() else 0,
        comment=form.text("comment"),
    )
    data: JSON = {
        "enabled": config.enabled,
        "offVariant": config.off_variant,
        "rules": rules_json,
        "default": default_json,
        "prerequisites": prerequisites_json,
    }
    return config, data, fields


def apply(config: ConfigForm, action: str, variants: list[str], first_segment: str) -> str:
    """Apply a structural action ("add-rule", "remove-clause:1:0"...) to the rows; returns the
    id of the field to focus next (so keyboard users land where they were working)."""
    name, _, rest = action.partition(":")
    args = [int(a) for a in rest.split(":") if a.isdigit()]
    rules = config.rules
    blank_weights = ["" for _ in variants]
    if name == "add-rule":
        rules.append(
            RuleRow(
                clauses=[ClauseRow()], serve=ServeRow(f"variant:{variants[0]}", "", blank_weights)
            )
        )
        return f"rules-{len(rules) - 1}-id"
    if name == "add-prerequisite":
        config.prerequisites.append(PrerequisiteRow())
        return f"prerequisites-{len(config.prerequisites) - 1}-flag"
    if name == "remove-prerequisite" and args and args[0] < len(config.prerequisites):
        del config.prerequisites[args[0]]
        return "add-prerequisite"
    if not args or args[0] >= len(rules):
        return ""
    i = args[0]
    if name in ("add-clause", "add-segment-clause"):
        op = "in_segment" if name == "add-segment-clause" else "in"
        values = first_segment if name == "add-segment-clause" else ""
        rules[i].clauses.append(ClauseRow(op=op, values=values))
        return f"rules-{i}-clauses-{len(rules[i].clauses) - 1}-" + (
            "values" if op == "in_segment" else "attribute"
        )
    if name == "remove-clause" and len(args) == 2 and args[1] < len(rules[i].clauses):
        del rules[i].clauses[args[1]]
        return f"rules-{i}-add-clause"
    if name == "remove-rule":
        del rules[i]
        return "add-rule"
    if name == "move-rule-up" and i > 0:
        rules[i - 1], rules[i] = rules[i], rules[i - 1]
        return f"rules-{i - 1}-up" if i - 1 > 0 else f"rules-{i - 1}-down"
    if name == "move-rule-down" and i + 1 < len(rules):
        rules[i + 1], rules[i] = rules[i], rules[i + 1]
        return f"rules-{i + 1}-down" if i + 2 < len(rules) else f"rules-{i + 1}-up"
    return ""
