"""An import report (:mod:`fader_server.services.imports`, :mod:`fader_server.services.
project_bundle`) as the import page shows it: counts, what could not be translated, and the
parity tables with their disagreements.

Agreement is shown the way the import decides: the share of *deterministic* answers that
agreed (contexts the source answers by chance are counted apart), rounded **down**, so a page
never shows "100%" for an import the server would refuse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fader_server.storage.ports import JSON

SOURCES = (
    ("launchdarkly", "LaunchDarkly"),
    ("unleash", "Unleash"),
    ("flagd", "flagd"),
    ("fader", "Fader project bundle"),
)
SOURCE_LABELS = dict(SOURCES)
BUNDLE = "fader"
_BUNDLE_KINDS = (
    ("flags", "Flags"),
    ("segments", "Segments"),
    ("configurations", "Flag configurations"),
    ("rollout_templates", "Rollout templates"),
)


def percent(agreed: int, disagreed: int) -> str:
    """``agreed / (agreed + disagreed)`` as a percentage with two decimals, rounded down
    (integers only); nothing decided is full agreement, as the import counts it."""
    decided = agreed + disagreed
    if decided == 0 or disagreed == 0:
        return "100%"
    hundredths = agreed * 10_000 // decided
    return f"{hundredths // 100}.{hundredths % 100:02d}%"


@dataclass(frozen=True, slots=True)
class CountRow:
    what: str
    created: int
    updated: int
    unchanged: int
    keys: str = ""
    """The keys created or updated, for the reader who wants to know which."""


@dataclass(frozen=True, slots=True)
class ParityRow:
    flag: str
    fader_flag: str
    contexts: int
    agreed: int
    disagreed: int
    nondeterministic: int
    agreement: str


@dataclass(frozen=True, slots=True)
class Disagreement:
    flag: str
    context: str
    source: str
    fader: str


@dataclass(frozen=True, slots=True)
class ParityTable:
    environment: str
    contexts: int
    evaluations: int
    agreed: int
    disagreed: int
    agreement: str
    complete: bool
    rows: list[ParityRow]
    disagreements: list[Disagreement]


@dataclass(frozen=True, slots=True)
class Unsupported:
    where: str
    construct: str
    detail: str


@dataclass(slots=True)
class ReportView:
    source: str
    environment: str
    counts: list[CountRow] = field(default_factory=list)
    unsupported: list[Unsupported] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    parity: list[ParityTable] = field(default_factory=list)
    written: bool = False

    @property
    def source_label(self) -> str:
        return SOURCE_LABELS.get(self.source, self.source)

    @property
    def verified(self) -> bool:
        return bool(self.parity)

    @property
    def complete(self) -> bool:
        """Every deterministic answer agreed (or nothing was verified)."""
        return all(table.complete for table in self.parity)

    @property
    def changes(self) -> int:
        return sum(row.created + row.updated for row in self.counts)


def _answer(answer: Mapping[str, Any]) -> str:
    value = json.dumps(answer.get("value"), ensure_ascii=False, sort_keys=True)
    parts = [value]
    if answer.get("variant") is not None:
        parts.append(f"variant “{answer['variant']}”")
    if answer.get("detail"):
        parts.append(str(answer["detail"]))
    return "; ".join(parts)


def _parity(environment: str, found: Mapping[str, Any]) -> ParityTable:
    rows = []
    disagreements = []
    for flag in found.get("flags") or []:
        agreed, disagreed = int(flag["agreed"]), int(flag["disagreed"])
        rows.append(
            ParityRow(
                str(flag["flag"]),
                str(flag.get("fader_flag") or flag["flag"]),
                int(flag["contexts"]),
                agreed,
                disagreed,
                int(flag.get("nondeterministic") or 0),
                percent(agreed, disagreed),
            )
        )
        for example in flag.get("examples") or []:
            disagreements.append(
                Disagreement(
                    str(flag["flag"]),
                    json.dumps(example.get("context"), ensure_ascii=False, sort_keys=True),
                    _answer(example.get("source") or {}),
                    _answer(example.get("fader") or {}),
                )
            )
    agreed, disagreed = int(found["agreed"]), int(found["disagreed"])
    return ParityTable(
        environment,
        int(found["contexts"]),
        int(found["evaluations"]),
        agreed,
        disagreed,
        percent(agreed, disagreed),
        bool(found["complete"]),
        rows,
        disagreements,
    )


def _keys(*groups: list[str]) -> str:
    return ", ".join(key for group in groups for key in group)


def from_import(report: JSON) -> ReportView:
    """The report of an import from LaunchDarkly, Unleash or flagd."""
    view = ReportView(str(report["source"]), str(report["environment"]))
    for kind, label in (("flags", "Flags"), ("segments", "Segments")):
        created = list(report["created"].get(kind) or [])
        updated = list(report["updated"].get(kind) or [])
        unchanged = list(report["unchanged"].get(kind) or [])
        row = CountRow(label, len(created), len(updated), len(unchanged), _keys(created, updated))
        view.counts.append(row)
    for item in report.get("unsupported") or []:
        where = item.get("flag") or item.get("segment") or ""
        if item.get("segment") and not item.get("flag"):
            where = f"segment {where}"
        found = Unsupported(str(where), str(item["construct"]), str(item["detail"]))
        view.unsupported.append(found)
    view.notes = [str(note) for note in report.get("notes") or []]
    view.renamed = sorted((str(k), str(v)) for k, v in (report.get("keys") or {}).items())
    if report.get("parity") is not None:
        view.parity.append(_parity(view.environment, report["parity"]))
    view.written = bool(report.get("written"))
    return view


def from_bundle(report: JSON) -> ReportView:
    """The report of a Fader project bundle's import (one parity table per environment)."""
    names = ", ".join(str(e.get("key")) for e in report.get("environments") or [])
    view = ReportView(BUNDLE, names)
    counts = report.get("counts") or {}
    for kind, label in _BUNDLE_KINDS:
        found = counts.get(kind) or {}
        view.counts.append(
            CountRow(
                label,
                int(found.get("created") or 0),
                int(found.get("updated") or 0),
                int(found.get("unchanged") or 0),
            )
        )
    for kind, keys in sorted((report.get("kept") or {}).items()):
        if keys:
            view.notes.append(
                f"Kept {kind.replace('_', ' ')} the project has and the bundle lacks: "
                + ", ".join(str(k) for k in keys)
            )
    for environment, found in sorted((report.get("parity") or {}).items()):
        view.parity.append(_parity(str(environment), found))
    view.written = bool(report.get("written"))
    return view


def view_of(report: JSON) -> ReportView:
    return from_bundle(report) if report.get("source") == BUNDLE else from_import(report)
