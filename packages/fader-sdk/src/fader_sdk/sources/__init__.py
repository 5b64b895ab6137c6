"""Where configuration comes from: the server's stream, polling, a file, or test data.

A source fills a :class:`~fader_sdk.holder.FlagSetHolder` and knows nothing of evaluation. The
client starts exactly one source; the streaming source carries its own polling fallback so that the
switch between them is one thread's decision, never a race between two writers.
"""

from __future__ import annotations

from typing import Protocol

from fader_sdk.holder import FlagSetHolder

FLAGS_PATH = "/api/v1/sdk/flags"
STREAM_PATH = "/api/v1/sdk/stream"
STREAM_PARAMS = {"patches": "true"}
"""Opts in to `patch` events (docs/delivery-protocol.md): changed entries, not whole documents."""


class DataSource(Protocol):
    """What the client needs of a source: start filling the holder, and stop."""

    def start(self, holder: FlagSetHolder) -> None:
        """Begin delivering (in the background when the source does I/O); must not block."""
        ...

    def close(self) -> None:
        """Stop delivering and release threads and connections; idempotent."""
        ...
