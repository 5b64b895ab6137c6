"""Promotion: copy chosen flags' configurations from one environment to another (staging →
production) as ONE change request.

The request's operations are ``flag_config`` operations, each setting the target's
configuration of one flag to the source's (effective) configuration, with the target's
current version as its base. Reviewers see each flag's diff and the impact preview like any
request's; applying it writes every flag at once or none, and if someone changed one of the
target's configurations after the promotion was proposed, the apply is refused and names it.

A promotion is always a change request, even into an environment that does not require
them: the point of promoting is a reviewable, atomic step with a record of what was copied,
and the change-request service approves a request no policy governs at once, so there it
costs one extra click (apply) and nothing more.

The source's configurations are read when the promotion is proposed: what is copied is what
the comparison showed, and a later change in the source does not leak into the request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fader_server.errors import FieldProblem, InvalidInputError, NotFoundError
from fader_server.services import documents
from fader_server.services.access import Principal, Role, load_project
from fader_server.services.change_requests.operations import MAX_OPERATIONS
from fader_server.services.change_requests.service import (
    MAX_TEXT,
    ChangeRequestService,
    ChangeRequestView,
)
from fader_server.services.environment_compare import (
    STATUS_TEXT,
    CompareReads,
    EnvironmentComparison,
    FlagComparison,
    compare_in,
)
from fader_server.storage.ports import JSON
from fader_server.storage.ports.store import Store

MAX_FLAGS = MAX_OPERATIONS
"""One operation per flag, and a request holds at most this many."""


def operations_for(comparison: EnvironmentComparison, flags: Sequence[str]) -> list[JSON]:
    """The ``flag_config`` operations that copy `flags` from ``comparison.a`` to
    ``comparison.b``, based on B's current versions. Refuses an unknown flag, and a flag that
    is already the same in both (a request that changes nothing would only confuse reviewers)."""
    chosen = list(dict.fromkeys(flags))
    if not chosen:
        raise InvalidInputError(
            "choose at least one flag to promote", [FieldProblem("/body/flags", "empty")]
        )
    if len(chosen) > MAX_FLAGS:
        raise InvalidInputError(
            f"a promotion copies at most {MAX_FLAGS} flags; split it into several",
            [FieldProblem("/body/flags", f"at most {MAX_FLAGS}")],
        )
    found: list[FlagComparison] = []
    same: list[str] = []
    for key in chosen:
        flag = comparison.flag(key)
        if flag is None:
            raise NotFoundError(f"flag '{key}' does not exist in this project")
        if not flag.promotable:
            same.append(key)
        found.append(flag)
    if same:
        raise InvalidInputError(
            f"{', '.join(same)} already {'has' if len(same) == 1 else 'have'} the same "
            f"configuration in '{comparison.a}' and '{comparison.b}'; leave "
            f"{'it' if len(same) == 1 else 'them'} out",
            [FieldProblem("/body/flags", f"'{key}' is the same in both") for key in same],
        )
    return [
        {
            "kind": "flag_config",
            "environment": comparison.b,
            "flag": flag.flag,
            "base_version": flag.b.version,
            "config": {k: flag.a.data[k] for k in documents.CONFIG_FIELDS if k in flag.a.data},
        }
        for flag in found
    ]


def change_text(comparison: EnvironmentComparison, flags: Sequence[str]) -> str:
    """The proposal's "change" section when the author left it empty: what is copied, and
    how each flag differed."""
    lines = [f"Promote {len(flags)} flag(s) from '{comparison.a}' to '{comparison.b}':"]
    for key in dict.fromkeys(flags):
        flag = comparison.flag(key)
        if flag is None:
            continue
        status = STATUS_TEXT[flag.status].format(a=comparison.a, b=comparison.b)
        fields = "; ".join(f"{c.label}: {c.b} → {c.a}" for c in flag.changes)
        lines.append(f"- {key} ({status}): {fields}")
    text = "\n".join(lines)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


class PromotionService:
    def __init__(self, store: Store[CompareReads], change_requests: ChangeRequestService) -> None:
        self.store = store
        self.change_requests = change_requests

    def promote(
        self,
        principal: Principal,
        project_key: str,
        source: str,
        target: str,
        flags: Sequence[str],
        title: str,
        proposal: Mapping[str, Any],
    ) -> ChangeRequestView:
        """Propose copying `flags` from `source` to `target` as one change request (who may
        propose is the change-request service's rule: the editor role)."""
        with self.store.read() as tx:
            # proposing takes the editor role: say so before judging the flags
            project = load_project(tx, principal, project_key, Role.EDITOR)
            comparison = compare_in(tx, project, source, target)
        ops = operations_for(comparison, flags)
        sections = dict(proposal)
        if not str(sections.get("change") or "").strip():
            sections["change"] = change_text(comparison, flags)
        return self.change_requests.propose(
            principal, project_key, title=title, proposal=sections, operations_in=ops
        )
