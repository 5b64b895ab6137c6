"""Which reported SDK events a key may report: client keys speak only for client-side flags.

A client key is public: it ships in a web page, so anyone can post events with it. Release
plans read exposures and custom events per flag and variant, so an event about a flag is a vote
on that flag's release. A client key may therefore report events only about flags it can
evaluate itself (flags marked ``client_side`` in its environment, as OFREP serves them to it).
An event about any other flag, or about a flag that does not exist there, is refused, the rest
of the batch is stored: one stray event must not cost a browser the whole batch, and the
refusal is a fact about the server's configuration that the browser could not know when it
sent it. Custom events without a flag are stored (they feed no gate: gates read flag and
variant). Every stored event records the kind of key that reported it, so a gate can trust
server keys alone (the default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fader_server.storage.ports import JSON, SdkEvent


@dataclass(frozen=True, slots=True)
class Refusal:
    """One event of a batch that was not stored: its position in the batch, and why."""

    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class Recorded:
    """What became of a batch: how many events were stored, and which were refused."""

    accepted: int
    refused: tuple[Refusal, ...] = ()


def client_refusals(document: JSON, events: Sequence[SdkEvent]) -> list[Refusal]:
    """The events of `events` a client key may not report, given its environment's document."""
    flags: JSON = document.get("flags") or {}
    refused: list[Refusal] = []
    for index, event in enumerate(events):
        if event.flag is None:
            continue
        entry = flags.get(event.flag)
        if entry is None:
            reason = f"no flag '{event.flag}' in this key's environment"
        elif not (entry.get("metadata") or {}).get("client_side"):
            reason = (
                f"flag '{event.flag}' is not available to client keys (it is not client_side); "
                "report its events with a server SDK key"
            )
        else:
            continue
        refused.append(Refusal(index, reason))
    return refused
