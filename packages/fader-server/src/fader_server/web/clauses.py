"""The clause editor shared by flag rules and segment rules: form rows ⇄ clause JSON.

A clause row has an attribute, an operator, values (one per line) and "not". Form fields are
named ``<prefix>-clauses-<j>-<field>`` and rows are numbered 0, 1, ... again on every render, so
the JSON index of a clause is its row number; that is what lets an engine problem at
``.../clauses/2/values/0`` land next to the values box of row 2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fader_server.storage.ports import JSON
from fader_server.web.forms import Form, lines, parse_value, pointer, show_value

OPERATORS: tuple[tuple[str, str], ...] = (
    ("in", "is one of"),
    ("starts_with", "starts with"),
    ("ends_with", "ends with"),
    ("contains", "contains"),
    ("matches", "matches the regular expression"),
    ("lt", "is less than"),
    ("lte", "is at most"),
    ("gt", "is greater than"),
    ("gte", "is at least"),
    ("semver_eq", "is version"),
    ("semver_lt", "is a version before"),
    ("semver_lte", "is a version up to"),
    ("semver_gt", "is a version after"),
    ("semver_gte", "is a version from"),
    ("before", "is a date before"),
    ("after", "is a date after"),
    ("ip_in", "is an IP address in"),
    ("unleash_rollout", "is in the Unleash rollout"),
    ("in_segment", "is in the segment"),
    ("exists", "exists"),
)
OPERATOR_LABELS = dict(OPERATORS)
TEXT_OPERATORS = frozenset(
    {"starts_with", "ends_with", "contains", "matches", "in_segment", "ip_in"}
    | {op for op, _ in OPERATORS if op.startswith("semver_")}
)
"""Operators whose values are always text: each line is taken literally, quotes and all."""
ROLLOUT = "unleash_rollout"
"""Its values are a pair, ``[group id, percentage]``: two lines, a text then a number. The
group is written like any value (quoted when it would read as something else, so a group
``"25"`` or one with spaces at its ends comes back exactly) but read as text whatever it looks
like, since a group id is always one; the percentage is read like any value, so a typo stays
text and the engine says what it needs."""


@dataclass
class ClauseRow:
    attribute: str = ""
    op: str = "in"
    values: str = ""
    negate: bool = False


@dataclass
class Rows:
    """The clause rows of one rule, and the JSON they make."""

    rows: list[ClauseRow] = field(default_factory=list)
    clauses: list[JSON] = field(default_factory=list)


def rows_from_clauses(clauses: list[JSON]) -> list[ClauseRow]:
    rows = []
    for clause in clauses:
        op = str(clause.get("op", "in"))
        values = clause.get("values") or []
        text = "\n".join(
            str(v) if op in TEXT_OPERATORS and isinstance(v, str) else show_value(v) for v in values
        )
        rows.append(
            ClauseRow(str(clause.get("attribute", "")), op, text, bool(clause.get("negate")))
        )
    return rows


def read_rows(form: Form, prefix: str, at: str, fields: dict[str, str]) -> Rows:
    """The clause rows posted under `prefix`; `at` is the JSON pointer of the rule they are in,
    and `fields` receives the pointer → field id of everything read."""
    pattern = re.compile(re.escape(prefix) + r"-clauses-(\d+)-op")
    indices = sorted({int(m.group(1)) for n in form.names() if (m := pattern.fullmatch(n))})
    out = Rows()
    fields[at + "/clauses"] = f"{prefix}-clauses"
    for j, index in enumerate(indices):
        name = f"{prefix}-clauses-{index}"
        row = ClauseRow(
            form.text(f"{name}-attribute"),
            form.text(f"{name}-op"),
            form.get(f"{name}-values").strip(),
            form.checked(f"{name}-negate"),
        )
        out.rows.append(row)
        out.clauses.append(clause_json(row))
        field_id = f"{prefix}-clauses-{j}"
        clause_at = at + pointer("clauses", j)
        fields[clause_at] = field_id
        for part in ("attribute", "op", "values", "negate"):
            fields[f"{clause_at}/{part}"] = f"{field_id}-{part}"
    return out


def clause_json(row: ClauseRow) -> JSON:
    clause: JSON = {"op": row.op}
    if row.op != "in_segment" and row.attribute:
        clause["attribute"] = row.attribute
    if row.op != "exists":
        values: list[Any] = lines(row.values)
        if row.op == ROLLOUT:
            values = [_group(v) if i == 0 else parse_value(v) for i, v in enumerate(values)]
        elif row.op not in TEXT_OPERATORS:
            values = [parse_value(v) for v in values]
        clause["values"] = values
    if row.negate:
        clause["negate"] = True
    return clause


def _group(line: str) -> Any:
    """The group id line of an Unleash rollout: text, unquoted if it was quoted."""
    value = parse_value(line)
    return value if isinstance(value, str) else line


def describe(clause: JSON) -> str:
    """A clause in words: ``email ends with "@example.com"``."""
    op = str(clause.get("op"))
    label = OPERATOR_LABELS.get(op, op)
    values = ", ".join(
        f'"{v}"' if isinstance(v, str) else show_value(v) for v in clause.get("values") or []
    )
    negated = "not " if clause.get("negate") else ""
    if op == "in_segment":
        return f"the user is {negated}in the segment {values}"
    if op == "exists":
        return f"{clause.get('attribute')} {'does not exist' if negated else 'exists'}"
    raw = clause.get("values") or []
    if op == ROLLOUT and len(raw) == 2:
        return (
            f"{clause.get('attribute')} {'does not fall' if negated else 'falls'} in the first "
            f"{show_value(raw[1])}% of the Unleash rollout of group “{raw[0]}”"
        )
    return f"{clause.get('attribute')} {negated}{label} {values}".strip()
