"""What SDKs report (summaries, docs/events.md), and which of its items a key may report: client
keys speak only for client-side flags.

A client key is public: it ships in a web page, so anyone can post summaries with it. Release
plans read evaluations and custom metrics per flag and variant, so an item about a flag is a
vote on that flag's release. A client key may therefore report items only about flags it can
evaluate itself (flags marked ``client_side`` in its environment, as OFREP serves them to it).
An item about any other flag, or about a flag that does not exist there, is refused, the rest
of the summary is stored: one stray item must not cost a browser the whole summary, and the
refusal is a fact about the server's configuration that the browser could not know when it
sent it. Metrics without a flag are stored (they feed no gate: gates read flag and variant).
Every stored row records the kind of key that reported it, so a gate can trust server keys
alone (the default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fader_engine.sketches import DistinctSketch
from fader_server.storage.ports import JSON
from fader_server.storage.ports.usage import EVALUATIONS as EVALUATION_METRIC
from fader_server.storage.ports.usage import DebugEvent, UsageCount

ListName = Literal["evaluations", "metrics", "events"]
EVALUATIONS: ListName = "evaluations"
METRICS: ListName = "metrics"
EVENTS: ListName = "events"
"""The lists of a summary, as the wire format names them (and refusals name their list)."""


@dataclass(frozen=True, slots=True)
class Summary:
    """One report of an SDK, as the server stores it: evaluations (metric ``""``, with their
    distinct-context sketches), custom metrics, and debug events. The server's receive time,
    not anything in here, decides which minute it counts in."""

    evaluations: Sequence[UsageCount] = ()
    metrics: Sequence[UsageCount] = ()
    events: Sequence[DebugEvent] = ()

    @property
    def items(self) -> int:
        """What the rate limit counts: items, whatever evaluations they stand for."""
        return len(self.evaluations) + len(self.metrics) + len(self.events)


@dataclass(frozen=True, slots=True)
class Refusal:
    """One item of a summary that was not stored: its list, its position there, and why."""

    list: ListName
    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class Recorded:
    """What became of a summary: how many items were stored, and which were refused;
    `duplicate` when the key had delivered this summary already (nothing was added again)."""

    accepted: int
    refused: tuple[Refusal, ...] = ()
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class LegacyEvent:
    """One item of the deprecated ``POST /api/v1/sdk/events``: an exposure (one evaluation) or
    a custom event (one measurement). Its timestamp is not kept: rollups count by the server's
    receive time, as they always counted."""

    kind: Literal["exposure", "custom"]
    flag: str | None
    variant: str | None
    name: str | None = None
    value: float | None = None
    targeting_key: str | None = None


def fold(events: Sequence[LegacyEvent]) -> Summary:
    """Events as the summary an SDK would have sent for them: an exposure counts one
    evaluation of its variant (its targeting key in the distinct-context sketch), a custom
    event one measurement of its metric (a missing value as 0, as gates always counted it).
    Items of the same row are added up here, one sketch per row, so a batch of 1,000 exposures
    costs 1,000 hashes rather than 1,000 sketches."""
    evaluations: dict[tuple[str, str], tuple[int, DistinctSketch | None]] = {}
    metrics: dict[tuple[str, str, str], tuple[int, float, float]] = {}
    for event in events:
        variant = event.variant or ""
        if event.kind == "exposure" and event.flag:
            count, sketch = evaluations.get((event.flag, variant), (0, None))
            if event.targeting_key is not None:
                sketch = (sketch or DistinctSketch()).update([event.targeting_key])
            evaluations[(event.flag, variant)] = (count + 1, sketch)
        elif event.kind == "custom" and event.name:
            value = event.value or 0.0
            key = (event.flag or "", event.name, variant)
            count, total, squares = metrics.get(key, (0, 0.0, 0.0))
            metrics[key] = (count + 1, total + value, squares + value * value)
    return Summary(
        [
            UsageCount(flag, EVALUATION_METRIC, variant, count, contexts=_bytes(sketch))
            for (flag, variant), (count, sketch) in evaluations.items()
        ],
        [
            UsageCount(flag, name, variant, count, total, squares)
            for (flag, name, variant), (count, total, squares) in metrics.items()
        ],
    )


def _bytes(sketch: DistinctSketch | None) -> bytes | None:
    return None if sketch is None else sketch.to_bytes()


def client_refusals(document: JSON, summary: Summary) -> list[Refusal]:
    """The items of `summary` a client key may not report, given its environment's document
    (in the order of the lists, then of the items)."""
    return refusals(
        document,
        [
            (EVALUATIONS, [item.flag for item in summary.evaluations]),
            (METRICS, [item.flag for item in summary.metrics]),
            (EVENTS, [event.flag for event in summary.events]),
        ],
    )


def refusals(
    document: JSON, lists: Sequence[tuple[ListName, Sequence[str | None]]]
) -> list[Refusal]:
    """The items a client key may not report, given its environment's document: `lists` names
    each list and the flag each of its items is about (None or ``""``: none)."""
    flags: JSON = document.get("flags") or {}
    refused: list[Refusal] = []
    for name, about in lists:
        for index, flag in enumerate(about):
            if not flag:
                continue  # a metric about no flag
            entry = flags.get(flag)
            if entry is None:
                reason = f"no flag '{flag}' in this key's environment"
            elif not (entry.get("metadata") or {}).get("client_side"):
                reason = (
                    f"flag '{flag}' is not available to client keys (it is not client_side); "
                    "report it with a server SDK key"
                )
            else:
                continue
            refused.append(Refusal(name, index, reason))
    return refused


def without(summary: Summary, refused: Sequence[Refusal]) -> Summary:
    """`summary` less the refused items."""
    skipped = {(r.list, r.index) for r in refused}
    return Summary(
        [e for i, e in enumerate(summary.evaluations) if (EVALUATIONS, i) not in skipped],
        [m for i, m in enumerate(summary.metrics) if (METRICS, i) not in skipped],
        [e for i, e in enumerate(summary.events) if (EVENTS, i) not in skipped],
    )
