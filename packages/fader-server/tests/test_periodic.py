"""The background loop shared by retention, escalation and scheduled changes keeps running
through its job's failures, and stops when closed."""

from __future__ import annotations

import threading

from fader_server.errors import StorageUnavailableError
from fader_server.runtime.periodic import Periodic


def test_a_failing_run_does_not_stop_the_runs_after_it() -> None:
    calls: list[int] = []
    third = threading.Event()

    def job() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise StorageUnavailableError("database down")
        if len(calls) == 2:
            raise RuntimeError("a bug in one run")
        third.set()

    periodic = Periodic("test_job", job)
    periodic.start(0.01, first_delay=0.0)
    try:
        assert third.wait(30), f"the loop stopped after {len(calls)} runs"
    finally:
        periodic.close()
    assert calls[:3] == [0, 1, 2]
    assert not [t for t in threading.enumerate() if t.name == "fader-test-job" and t.is_alive()]


def test_close_ends_the_wait_at_once_and_start_twice_starts_one_thread() -> None:
    ran = threading.Event()
    periodic = Periodic("test_idle", ran.set)
    periodic.start(3600.0)
    periodic.start(3600.0)
    named = [t for t in threading.enumerate() if t.name == "fader-test-idle"]
    assert len(named) == 1
    periodic.close()
    assert not named[0].is_alive()
    assert not ran.is_set()
