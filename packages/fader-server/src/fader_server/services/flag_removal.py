"""The rule between deleting a flag and its release plans: not while a plan moves it.

A running, paused or awaiting-approval plan owns the flag's configuration in its environment:
it serves the next stage, and a rollback or an abort restores the configuration the flag had
when the plan started. Deleting the flag under it would leave a plan that can neither advance
nor restore anything (the scheduler could only record failures), so the deletion is refused
with :class:`InvalidStateError` naming the plan to abort first. The other direction needs no
code here: a plan starts only on a live flag, and both writes hold the project's write lock
(docs/adr/0005-project-write-lock.md), so whichever comes second sees the first.

A pending plan (created, never started) does not block a deletion: it has changed nothing
yet, and starting it later fails because the flag no longer exists.
"""

from __future__ import annotations

from fader_server.errors import InvalidStateError
from fader_server.rollout_logic.plan import ACTIVE
from fader_server.storage.ports import Project
from fader_server.storage.ports.rollouts import PlanReads


def refuse_while_rolling_out(tx: PlanReads, project: Project, flag: str) -> None:
    """Raise :class:`InvalidStateError` if a release plan of `flag` is running, paused or
    awaiting approval in any environment of `project`."""
    for status in ACTIVE:
        found = tx.list_plans(project.id, limit=1, before_id=None, flag=flag, status=status.value)
        if found:
            plan = found[0]
            raise InvalidStateError(
                f"flag '{flag}' is being rolled out in '{plan.environment}' by release plan "
                f"{plan.id} ({status.value.replace('_', ' ')}); abort release plan {plan.id} "
                "first, which restores the flag's configuration, then delete the flag"
            )
