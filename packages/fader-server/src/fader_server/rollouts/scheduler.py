"""The rollout scheduler: every few seconds, look at each active plan and apply a decision.

One background thread per server process calls :meth:`Scheduler.tick`; tests and simulations
call it directly with a simulated `now` (the clock is injected, nothing here sleeps on its own).

Why it is safe to run on every replica at once: a tick reads the active plans, reads their
threshold gates over HTTP *outside* any transaction (a slow Prometheus must not hold a database
lock), then hands each plan to :meth:`RolloutService.step`, which aggregates the SDK events in a
read transaction, then locks the plan's row (PostgreSQL ``FOR UPDATE SKIP LOCKED``: a replica
that finds it taken moves on; SQLite serialises write transactions), checks that the plan is
still at the version everything was observed for, decides and applies in that one transaction.
A decision therefore commits once, on one replica, and a replica whose observations are stale
discards them. State lives only in the database, so a restarted server resumes every
plan where it was: a stage's clock is the `stage_started_at` stored with the plan.

Notifications are handed to the :class:`~fader_server.rollouts.notify.Notifier` after the
commit, by the replica whose decision committed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from fader_server.errors import FaderServerError, StorageUnavailableError
from fader_server.logs import get_logger
from fader_server.rollouts.decide import Action
from fader_server.rollouts.gates import Reading, due_checks
from fader_server.rollouts.gates_io import GateReader
from fader_server.rollouts.notify import Notifier
from fader_server.rollouts.plan import HttpCheckGate, Plan, PrometheusGate, State
from fader_server.services.rollouts import RolloutService, Step
from fader_server.storage.ports import Store, StoredPlan


class Scheduler:
    def __init__(
        self,
        store: Store,
        rollouts: RolloutService,
        *,
        clock: Callable[[], float] = time.time,
        reader: GateReader | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self._store = store
        self._rollouts = rollouts
        self._clock = clock
        self._reader = reader or GateReader()
        self.notifier = notifier or Notifier()
        self._log = get_logger()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._decisions: Counter | None = None
        self._active: Gauge | None = None
        self._duration: Histogram | None = None

    def export_metrics(self, registry: CollectorRegistry) -> None:
        """Count this process's decisions, time its ticks, and show how many plans are active."""
        self._decisions = Counter(
            "fader_rollout_decisions",
            "Rollout decisions applied by this process",
            ["action"],
            registry=registry,
        )
        self._active = Gauge(
            "fader_rollouts_active", "Release plans running, paused or waiting", registry=registry
        )
        self._duration = Histogram(
            "fader_rollout_tick_duration_seconds", "Duration of scheduler ticks", registry=registry
        )

    def tick(self, now: float | None = None) -> list[Step]:
        """One pass over every active plan; returns the steps this process applied."""
        now = self._clock() if now is None else now
        started = time.perf_counter()
        with self._store.read() as tx:
            plans = tx.active_plans()
        if self._active is not None:
            self._active.set(len(plans))
        steps = []
        for stored in plans:
            step = self._one(stored, now)
            if step is None:
                continue
            steps.append(step)
            if self._decisions is not None:
                self._decisions.labels(step.action.value).inc()
            if step.action is not Action.WAIT:
                self._log.info(
                    "rollout_decision",
                    plan=stored.id,
                    flag=stored.flag,
                    environment=stored.environment,
                    action=step.action.value,
                    reason=step.reason,
                )
            self.notifier.submit(step.deliveries)
        if self._duration is not None:
            self._duration.observe(time.perf_counter() - started)
        return steps

    def _one(self, stored: StoredPlan, now: float) -> Step | None:
        plan, state = Plan.from_dict(stored.plan), State.from_dict(stored.state)
        readings: dict[int, Reading] = {}
        for index in due_checks(plan, state, now):
            gate = plan.gates[index]
            assert isinstance(gate, PrometheusGate | HttpCheckGate)
            readings[index] = self._reader.read(gate)
        try:
            return self._rollouts.step(stored, readings, now)
        except StorageUnavailableError:
            self._log.warning("rollout_step_deferred", plan=stored.id, reason="database busy")
        except FaderServerError as exc:
            # e.g. the flag was deleted, or its variants changed so a stage no longer validates
            self._log.warning("rollout_step_failed", plan=stored.id, detail=exc.detail)
            self._rollouts.record_failure(stored.id, exc.detail, now)
        except Exception:  # a bug with one plan must not stop the others
            self._log.exception("rollout_step_failed", plan=stored.id)
        return None

    # ------------------------------------------------------------- background
    def start(self, interval: float) -> None:
        """Tick every `interval` seconds in a daemon thread until :meth:`close`."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="fader-rollouts", daemon=True
        )
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.tick()
            except StorageUnavailableError:
                self._log.warning("rollout_tick_deferred", reason="database unavailable")
            except Exception:  # a bug in one tick must not stop every later one
                self._log.exception("rollout_tick_failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.notifier.close()
        self._reader.close()
