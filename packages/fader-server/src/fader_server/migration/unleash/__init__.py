"""Importing from Unleash: its client-features payload in, one Fader environment out.

See docs/migration-unleash.md for what is translated, the context and answer conventions, and
what is refused and why.
"""

from __future__ import annotations

from typing import Any

from fader_server.migration.model import SourceEvaluator, SourceSystem
from fader_server.migration.unleash.translate import translate


def _evaluator(data: Any) -> SourceEvaluator:
    from fader_server.migration.unleash.sdk import evaluator  # noqa: PLC0415 - optional SDK

    return evaluator(data)


SOURCE = SourceSystem(name="unleash", title="Unleash", translate=translate, evaluator=_evaluator)

__all__ = ["SOURCE", "translate"]
