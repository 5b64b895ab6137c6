"""A server clock tests can move forward: wall time plus an offset.

Summaries count in the minute the server received them in, and a release plan's window counts
whole minutes only (docs/events.md, section 4): the minute in which a plan started counts in
none of its windows. A test that starts a plan and reports traffic at once would wait for the
next minute of the wall clock. Instead, the server under test reads this clock (plans, the
scheduler and the receive time of summaries alike) and the test moves it to the next minute,
which takes no time at all.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from fader_server.app import open_services
from fader_server.services import Services
from fader_server.settings import Settings


class ServerClock:
    """The time the server sees: the wall clock, moved forward by the test (never back)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._offset += max(0.0, seconds)
        return self.now()

    def next_minute(self, second: float = 1.0) -> float:
        """Move to `second` seconds into the next minute; the new time."""
        now = self.now()
        return self.advance(60.0 - now % 60.0 + second)


def clocked_services(settings: Settings, clock: ServerClock) -> Services:
    """The services a server over `settings` opens, reading `clock`."""
    services, _ = open_services(settings, clock)
    return services
