"""The rollout scheduler: every few seconds, look at each active plan and apply a decision.

One background thread per server process calls :meth:`Scheduler.tick`; tests and simulations
call it directly with a simulated `now` (the clock is injected, nothing here sleeps on its own).

Every tenant is served, whatever another one's gates do: each plan is handled on its own, by a
small pool of worker threads (:class:`_FairQueue`: projects take turns, and one project holds
at most `per_project` workers at once), and a plan's threshold gates are read by a deadline
(`plan_deadline`; each read is also bounded in time and bytes by :mod:`.outbound_http`).
A gate that cannot be read, answers garbage, drips or is too slow is a bad reading of its own
plan, never an exception that stops the others; a plan still being handled from an earlier
tick is skipped, not queued twice. So one project's bad or slow gates delay another project's
decision by at most one tick.

Why it is safe to run on every replica at once: a plan's threshold gates are read over HTTP
*outside* any transaction (a slow Prometheus must not hold a database lock), then the plan goes
to :meth:`~fader_server.services.rollouts.commands.RolloutService.step`, which sums the usage
rollups of its stage windows in a read transaction, then locks the plan's row (PostgreSQL
``FOR UPDATE SKIP LOCKED``: a replica that finds it taken moves on; SQLite serialises write
transactions), checks that the plan is still at the version everything was observed for,
decides and applies in that one transaction. A decision therefore commits once, on one
replica, and a replica whose observations are stale discards them. State lives only in the
database, so a restarted server resumes every plan where it was: a stage's clock is the
`stage_started_at` stored with the plan.

A decision's audit entry carries its notifications (the outbox, written in the decision's
transaction); :mod:`.webhook_delivery` posts them after the commit, once across replicas.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from fader_server.errors import FaderServerError, StorageUnavailableError
from fader_server.logs import get_logger
from fader_server.rollout_logic.decide import Action
from fader_server.rollout_logic.gates import Reading, due_checks
from fader_server.rollout_logic.plan import HttpCheckGate, Plan, PrometheusGate, State
from fader_server.runtime.gate_reader import GateReader, timed_out
from fader_server.services.rollouts.commands import RolloutService
from fader_server.services.rollouts.step import Step
from fader_server.storage.ports import StoredPlan
from fader_server.storage.ports.rollouts import PlanReads
from fader_server.storage.ports.store import Store

WORKERS = 8
"""Plans handled at once by one process (each mostly waits on HTTP or the database)."""
PER_PROJECT = 2
"""Workers one project may hold at once, so a project full of slow gates leaves the others
free for every other project."""
PLAN_DEADLINE = 30.0
"""Seconds a plan's threshold gates may take together in one tick; a gate not read by then is
a bad reading of class ``timeout``."""


@dataclass(eq=False)
class _Job:
    stored: StoredPlan
    now: float | None
    done: Future[Step | None] = field(default_factory=Future)


class _FairQueue:
    """Plans waiting for a worker: projects take turns (round robin), at most `per_project` of
    a project's plans are handled at once, and a plan is never queued twice."""

    def __init__(self, per_project: int) -> None:
        self._per_project = per_project
        self._cond = threading.Condition()
        self._waiting: dict[int, collections.deque[_Job]] = {}  # in turn order
        self._running: collections.Counter[int] = collections.Counter()
        self._plans: set[int] = set()
        self._closed = False

    def put(self, job: _Job) -> bool:
        """Queue `job`; False when its plan is still queued or running (or the queue closed)."""
        with self._cond:
            if self._closed or job.stored.id in self._plans:
                return False
            self._plans.add(job.stored.id)
            self._waiting.setdefault(job.stored.project_id, collections.deque()).append(job)
            self._cond.notify()
            return True

    def take(self) -> _Job | None:
        """The next job of the first project in turn that may run one; None once closed."""
        with self._cond:
            while not self._closed:
                for project in self._waiting:
                    if self._running[project] < self._per_project:
                        queue = self._waiting.pop(project)
                        job = queue.popleft()
                        if queue:
                            self._waiting[project] = queue  # to the back of the line
                        self._running[project] += 1
                        return job
                self._cond.wait()
            return None

    def finish(self, job: _Job) -> None:
        with self._cond:
            self._running[job.stored.project_id] -= 1
            self._plans.discard(job.stored.id)
            self._cond.notify_all()

    def close(self) -> list[_Job]:
        """Stop handing out jobs; returns those never taken."""
        with self._cond:
            self._closed = True
            left = [job for queue in self._waiting.values() for job in queue]
            self._waiting.clear()
            self._cond.notify_all()
            return left


class Scheduler:
    def __init__(
        self,
        store: Store[PlanReads],
        rollouts: RolloutService,
        *,
        clock: Callable[[], float] = time.time,
        reader: GateReader | None = None,
        workers: int = WORKERS,
        per_project: int = PER_PROJECT,
        plan_deadline: float = PLAN_DEADLINE,
    ) -> None:
        self._store = store
        self._rollouts = rollouts
        self._clock = clock
        self._reader = reader or GateReader()
        self._log = get_logger()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._queue = _FairQueue(per_project)
        self._workers_wanted = workers
        self._workers: list[threading.Thread] = []
        self._workers_lock = threading.Lock()
        self._plan_deadline = plan_deadline
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

    def tick(self, now: float | None = None, *, wait: float | None = None) -> list[Step]:
        """One pass over every active plan; returns the steps this process applied.

        Waits for the plans of this pass up to `wait` seconds (None: until each is done, which
        its deadlines bound); a plan not done by then finishes on its worker, which logs and
        notifies its step itself, and is skipped by later ticks until it is done."""
        started = time.perf_counter()
        with self._store.read() as tx:
            plans = tx.active_plans()
        if self._active is not None:
            self._active.set(len(plans))
        self._start_workers()
        jobs = [job for job in (_Job(stored, now) for stored in plans) if self._queue.put(job)]
        wait_for([job.done for job in jobs], timeout=wait)
        steps = [
            step
            for job in jobs
            if job.done.done() and not job.done.cancelled()
            for step in [job.done.result()]
            if step is not None
        ]
        if self._duration is not None:
            self._duration.observe(time.perf_counter() - started)
        return steps

    def _start_workers(self) -> None:
        with self._workers_lock:
            while len(self._workers) < self._workers_wanted and not self._stop.is_set():
                worker = threading.Thread(
                    target=self._work, name=f"fader-rollouts-{len(self._workers)}", daemon=True
                )
                worker.start()
                self._workers.append(worker)

    def _work(self) -> None:
        while (job := self._queue.take()) is not None:
            step: Step | None = None
            try:
                step = self._one(job.stored, job.now)
            except Exception:  # _one handles its own failures; this is the last line
                self._log.exception("rollout_step_failed", plan=job.stored.id)
            finally:
                self._queue.finish(job)
                job.done.set_result(step)

    def _one(self, stored: StoredPlan, now: float | None) -> Step | None:
        """Read the plan's due gates by its deadline, then decide and apply; never raises."""
        try:
            now = self._clock() if now is None else now
            plan, state = Plan.from_dict(stored.plan), State.from_dict(stored.state)
            deadline = time.monotonic() + self._plan_deadline
            readings: dict[int, Reading] = {}
            for index in due_checks(plan, state, now):
                gate = plan.gates[index]
                if not isinstance(gate, PrometheusGate | HttpCheckGate):
                    continue
                in_time = time.monotonic() < deadline
                readings[index] = self._reader.read(gate, deadline) if in_time else timed_out()
            step = self._rollouts.step(stored, readings, now)
        except StorageUnavailableError:
            self._log.warning("rollout_step_deferred", plan=stored.id, reason="database busy")
            return None
        except FaderServerError as exc:
            # e.g. the next stage no longer validates (a segment it names was deleted since
            # the plan was created): keep the reason where the plan's status shows it
            self._log.warning("rollout_step_failed", plan=stored.id, detail=exc.detail)
            self._record_failure(stored.id, exc.detail, now)
            return None
        except Exception:  # a bug with one plan must not stop the others
            self._log.exception("rollout_step_failed", plan=stored.id)
            return None
        if step is None:
            return None
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
        return step

    def _record_failure(self, plan_id: int, detail: str, now: float | None) -> None:
        try:
            self._rollouts.record_failure(plan_id, detail, self._clock() if now is None else now)
        except Exception:  # the failure is logged already; recording it is a courtesy
            self._log.exception("rollout_step_failed", plan=plan_id)

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
                # Waiting at most one interval for slow plans keeps the others on time.
                self.tick(wait=interval)
            except StorageUnavailableError:
                self._log.warning("rollout_tick_deferred", reason="database unavailable")
            except Exception:  # a bug in one tick must not stop every later one
                self._log.exception("rollout_tick_failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for job in self._queue.close():
            job.done.cancel()
        # A worker still reading a slow gate is a daemon thread: give it a moment, not its
        # whole deadline (its reading would be discarded anyway).
        deadline = time.monotonic() + 5
        for worker in self._workers:
            worker.join(timeout=max(0.1, deadline - time.monotonic()))
        self._reader.close()
