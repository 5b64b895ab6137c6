"""The scheduled-changes runner: every few seconds, apply the approved change requests whose
``apply_at`` has come (docs/change-control.md).

It runs on every replica, and each request is still applied once:
:meth:`~fader_server.services.change_requests.service.ChangeRequestService.apply_due` applies
each due request in its own write transaction, which takes the project's write lock
(PostgreSQL advisory lock; SQLite serialises writers) and re-reads the request before writing;
the replica that comes second finds it ``applied`` and skips it, and the request's row is
written compare-and-swap on its version besides. A base that moved since the request was
approved is recorded on the request (``apply_failed``, audited with the reason), never forced.

The clock is injected (the services' clock in ``app``; tests move it), and :meth:`tick` can be
called directly with a time; nothing here sleeps except the background loop between ticks. A
failed tick (the database down, a bug) is logged and the next one tries again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fader_server.logs import get_logger
from fader_server.runtime.periodic import Periodic
from fader_server.services.change_requests.service import ChangeRequestService

INTERVAL = 5.0
"""Seconds between ticks (``FADER_SCHEDULED_CHANGES_TICK_SECONDS``)."""


class ScheduledChanges:
    def __init__(self, service: ChangeRequestService, clock: Callable[[], datetime]) -> None:
        self._service = service
        self._clock = clock
        self._log = get_logger()
        self._periodic = Periodic("scheduled_changes", self.tick)

    def tick(self, now: datetime | None = None) -> list[tuple[int, str]]:
        """Apply what is due at `now` (default: the clock); (request id, outcome) pairs."""
        outcomes = self._service.apply_due(self._clock() if now is None else now)
        for request_id, outcome in outcomes:
            self._log.info("scheduled_change", change_request=request_id, outcome=outcome)
        return outcomes

    def start(self, interval: float = INTERVAL) -> None:
        """Tick every `interval` seconds in a daemon thread until :meth:`close`."""
        self._periodic.start(interval)

    def close(self) -> None:
        self._periodic.close()
