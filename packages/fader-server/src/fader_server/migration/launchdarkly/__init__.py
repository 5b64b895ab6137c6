"""LaunchDarkly as a source system: the flag data its server SDKs consume, translated into a
Fader document (:mod:`.translate`) and verified by LaunchDarkly's own Python SDK (:mod:`.sdk`).

docs/migration-launchdarkly.md says what is translated, how exactly, and what is not.
"""

from __future__ import annotations

from fader_server.migration.launchdarkly.sdk import evaluator
from fader_server.migration.launchdarkly.translate import translate
from fader_server.migration.model import SourceSystem

SOURCE = SourceSystem(
    name="launchdarkly", title="LaunchDarkly", translate=translate, evaluator=evaluator
)

__all__ = ["SOURCE"]
