"""Fader's Python SDK: evaluates flags locally and keeps serving through server outages.

    from fader_sdk import FaderClient

    with FaderClient("fdr_srv_...", base_url="http://fader:8400", cache_path="flags.json") as fader:
        if fader.boolean("new-checkout", {"targetingKey": user.id}, False):
            ...

Usage: every evaluation and every ``fader.track(...)`` is counted into a summary sent every
5 s (docs/events.md); ``FaderClient(..., events=False)`` turns that off, ``debug_flags={...}``
also sends individual evaluations of the flags named.

OpenFeature users: ``fader_sdk.openfeature.FaderProvider`` (extra ``fader-sdk[openfeature]``).
Tests without a server: ``fader_sdk.testing.TestData`` with ``FaderClient.for_testing``.
"""

from fader_sdk.client import NOT_READY_MESSAGE, FaderClient, __version__
from fader_sdk.flag_set import FlagSet, Origin
from fader_sdk.holder import FlagSetHolder

__all__ = ["NOT_READY_MESSAGE", "FaderClient", "FlagSet", "FlagSetHolder", "Origin", "__version__"]
