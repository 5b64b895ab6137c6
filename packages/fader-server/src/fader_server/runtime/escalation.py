"""Escalation of overdue action items: by itself, on every replica.

Every `interval` seconds the job asks :meth:`IncidentService.escalate_overdue
<fader_server.services.incidents.service.IncidentService.escalate_overdue>` to announce the
open action items whose due day (UTC) has passed: each gets its ``overdue`` audit entry once,
which the notification outbox delivers, and the console's dashboard and action-items page list
it until it is done. The due day is read from the services' clock, so tests that move that
clock see items fall due without waiting.

Why it needs no leader: the use case re-reads each item under its project's lock and marks it
by compare-and-swap on its version, so when two replicas run at once the second finds the item
announced already. The job never raises out of its thread: a failed run (the database down, a
bug) is logged, and the next interval tries again.
"""

from __future__ import annotations

from fader_server.logs import get_logger
from fader_server.runtime.periodic import Periodic
from fader_server.services.incidents.service import IncidentService

INTERVAL = 60.0
"""Seconds between runs: due days are whole days, a minute late is on time."""
FIRST_DELAY = 5.0


class Escalation:
    def __init__(self, incidents: IncidentService) -> None:
        self._incidents = incidents
        self._log = get_logger()
        self._periodic = Periodic("escalation", self.run)

    def run(self) -> int:
        """One run; how many items it announced overdue."""
        escalated = self._incidents.escalate_overdue()
        for item in escalated:
            self._log.info(
                "action_item_overdue",
                project_id=item.project_id,
                incident=item.incident_id,
                item=item.id,
                due_on=item.due_on.isoformat(),
            )
        return len(escalated)

    def start(self, interval: float = INTERVAL, first_delay: float = FIRST_DELAY) -> None:
        """Run after `first_delay` seconds, then every `interval`, in a daemon thread until
        :meth:`close`."""
        self._periodic.start(interval, first_delay)

    def close(self) -> None:
        self._periodic.close()
