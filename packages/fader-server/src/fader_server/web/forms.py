"""Submitted forms and the errors shown next to their fields.

Every POST handler receives a :class:`Form` through :func:`checked_form`, which has already
checked the CSRF token. Validation problems come back as :class:`FieldErrors`: each message is
attached to the id of the field it is about (rendered next to it, linked with
``aria-describedby`` and ``aria-invalid``) and listed in the error summary at the top of the form.

The engine reports problems by JSON pointer into an environment document
(``/flags/new-checkout/rules/0/split/weights``); :func:`from_problems` maps them to fields with
the path → field table a form parser builds while it turns fields into JSON, choosing the
deepest field that contains the path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from fader_server.errors import FieldProblem, InvalidInputError
from fader_server.web import csrf
from fader_server.web.session import CurrentSession

_ENV_PREFIX = re.compile(r"^in environment '[^']*': ")


class Form:
    """The text fields of a submitted form, in order; repeated names keep every value."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self.items = [(k, v) for k, v in items if k != csrf.FIELD]

    def get(self, name: str, default: str = "") -> str:
        return next((v for k, v in self.items if k == name), default)

    def text(self, name: str) -> str:
        return self.get(name).strip()

    def names(self) -> list[str]:
        return [k for k, _ in self.items]

    def checked(self, name: str) -> bool:
        return self.get(name) in ("on", "yes", "true")


async def _fields(request: Request) -> list[tuple[str, str]]:
    """The text fields of the posted form (no files), checked by :func:`refuse_nul`."""
    data = await request.form(max_files=0)
    fields = [(k, v) for k, v in data.multi_items() if isinstance(v, str)]
    refuse_nul(fields)
    return fields


def refuse_nul(fields: list[tuple[str, str]]) -> None:
    """Refuse text fields holding a NUL character, for every form at once: PostgreSQL cannot
    store one and SQLite can, and a console that saved it on one backend only would differ by
    backend (the JSON API refuses it the same way)."""
    refused = [k for k, v in fields if "\x00" in k or "\x00" in v]
    if refused:
        names = ", ".join(repr(name.replace("\x00", "")) for name in refused)
        which = f"The fields {names} contain" if len(refused) > 1 else f"The field {names} contains"
        raise InvalidInputError(
            f"{which} a NUL character (U+0000), which Fader does not store. Nothing was "
            "changed: remove it and send the form again.",
            [FieldProblem(f"/form/{name}", "contains a NUL character") for name in refused],
        )


async def checked_form(request: Request, session: CurrentSession) -> Form:
    """The form of a logged-in user's POST, once its CSRF token matches the session's."""
    items = await _fields(request)
    csrf.verify(session.csrf, (v for k, v in items if k == csrf.FIELD))
    return Form(items)


async def login_form(request: Request) -> Form:
    """The login form: no session yet, so the token is checked against the login cookie."""
    items = await _fields(request)
    secret = request.cookies.get(csrf.LOGIN_COOKIE)
    expected = csrf.login_token(secret) if secret else "no login cookie"
    csrf.verify(expected, (v for k, v in items if k == csrf.FIELD))
    return Form(items)


CheckedForm = Annotated[Form, Depends(checked_form)]
LoginForm = Annotated[Form, Depends(login_form)]


@dataclass
class FieldErrors:
    """Messages per field id, plus the ordered summary (field id or None, message)."""

    by_field: dict[str, list[str]] = field(default_factory=dict)
    summary: list[tuple[str | None, str]] = field(default_factory=list)

    def add(self, field_id: str | None, message: str) -> None:
        if (field_id, message) in self.summary:
            return
        self.summary.append((field_id, message))
        if field_id is not None:
            self.by_field.setdefault(field_id, []).append(message)

    def of(self, field_id: str) -> list[str]:
        return self.by_field.get(field_id, [])

    def __bool__(self) -> bool:
        return bool(self.summary)

    def as_json(self) -> list[dict[str, str | None]]:
        return [{"field": f, "message": m} for f, m in self.summary]


def from_problems(
    problems: Iterable[FieldProblem],
    prefix: str,
    fields: Mapping[str, str],
    errors: FieldErrors | None = None,
) -> FieldErrors:
    """Attach each problem under `prefix` (``/flags/<key>``) to the deepest mapped field."""
    errors = FieldErrors() if errors is None else errors
    for problem in problems:
        message = _ENV_PREFIX.sub("", problem.message)
        field_id = None
        if problem.path == prefix or problem.path.startswith(prefix + "/"):
            path = problem.path[len(prefix) :]
            while True:
                if path in fields:
                    field_id = fields[path]
                    break
                if not path:
                    break
                path = path.rsplit("/", 1)[0]
        errors.add(field_id, message)
    return errors


def indices(form: Form, marker: str) -> list[int]:
    """The row numbers of the fields named like `marker` (a pattern with one number group)."""
    compiled = re.compile(marker)
    return sorted({int(m.group(1)) for n in form.names() if (m := compiled.fullmatch(n))})


def renumbered(form: Form, group: str, marker: str) -> Form:
    """The form with `group` rows numbered 0, 1, 2... in their posted order: a stale or
    hand-made form may have gaps, and the rendered rows, the JSON and the field ids must agree.
    `marker` names the field every row has, e.g. ``rules-(\\d+)-serve``."""
    position = {old: new for new, old in enumerate(indices(form, marker))}
    prefix = re.compile(re.escape(group) + r"-(\d+)-")

    def rename(name: str) -> str:
        match = prefix.match(name)
        if match is None or int(match.group(1)) not in position:
            return name
        return f"{group}-{position[int(match.group(1))]}-" + name[match.end() :]

    return Form((rename(k), v) for k, v in form.items)


def pointer(*tokens: str | int) -> str:
    """A JSON pointer (RFC 6901) from tokens, as the engine spells paths."""
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


def parse_value(text: str) -> Any:
    """A clause value from one line: JSON numbers, booleans and quoted strings are read as
    such, anything else is the text itself (so ``@example.com`` needs no quotes)."""
    stripped = text.strip()
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):  # deeply nested brackets are not a scalar either
        return stripped
    return value if isinstance(value, str | int | float | bool) else stripped


def show_value(value: Any) -> str:
    """The inverse of :func:`parse_value`: text that reads back as the same value."""
    if isinstance(value, str):
        return json.dumps(value) if parse_value(value) != value else value
    return json.dumps(value)


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def sentence(text: str) -> str:
    """A service's message as a sentence on a page: capitalised, with a full stop."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
