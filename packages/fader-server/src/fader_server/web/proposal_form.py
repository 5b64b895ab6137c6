"""The title and proposal fields every console form that proposes a change request shares
(the promotion page, "propose as change request" from a flag's rules): reading them, and
putting the change-request service's problems next to the right field.

The service is the judge of what a valid title and proposal are
(:mod:`fader_server.services.change_requests.service`); the console only bounds what it
passes on and maps ``/body/title`` and ``/body/proposal/<section>`` back to its fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fader_server.errors import FieldProblem
from fader_server.web.forms import FieldErrors, Form, sentence

MAX_TEXT = 5_000


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    label: str
    hint: str
    rows: int


SECTIONS = (
    Section("problem", "Problem", "What is wrong or missing, and for whom.", 3),
    Section("change", "Change", "What this request changes, in words.", 3),
    Section("alternatives", "Alternatives considered (optional)", "", 2),
    Section("rollback", "Rollback (optional)", "How it will be undone if it goes wrong.", 2),
)


@dataclass(frozen=True, slots=True)
class Proposal:
    title: str
    sections: dict[str, str]

    def values(self) -> dict[str, str]:
        """The form's values, by field name, to render it again."""
        return {"cr-title": self.title} | {f"cr-{k}": v for k, v in self.sections.items()}


def read(form: Form) -> Proposal:
    """Title and sections as typed (over-long text is cut: the service refuses nothing the
    console could have bounded, and a 5,000-character section is far beyond any proposal)."""
    return Proposal(
        form.text("cr-title")[:200],
        {s.name: form.get(f"cr-{s.name}").strip()[:MAX_TEXT] for s in SECTIONS},
    )


def field_of(path: str) -> str | None:
    """The field id of a service problem's path (None: not one of the proposal's fields)."""
    if path == "/body/title":
        return "cr-title"
    if path.startswith("/body/proposal/"):
        name = path.removeprefix("/body/proposal/")
        if any(s.name == name for s in SECTIONS):
            return f"cr-{name}"
    return None


def add_problems(errors: FieldErrors, detail: str, problems: Iterable[FieldProblem]) -> FieldErrors:
    """The service's problems next to their fields; the rest (and the detail when none maps to
    a field) in the summary at the top."""
    before = len(errors.summary)
    for problem in problems:
        field_id = field_of(problem.path)
        if field_id is None:
            errors.add(None, f"{detail[:1].upper()}{detail[1:]}: {problem.message}.")
        else:
            errors.add(field_id, sentence(problem.message))
    if len(errors.summary) == before:
        errors.add(None, sentence(detail))
    return errors
