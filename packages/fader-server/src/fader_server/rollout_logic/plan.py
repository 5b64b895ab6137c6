"""Release plans and their state, as plain data.

A plan moves one flag in one environment from a *control* variant to a *treatment* variant
through stages. Stages are cumulative and start from what the flag serves today: a user who has
the treatment, before the plan or at a stage, keeps it at every later stage (a segment stage adds
a rule; a percentage stage grows the treatment's share of the default split, never below what
the flag already served, and Fader's bucketing only ever adds users as a share grows; see
:mod:`.apply`). Gates are checked at every stage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

JSON = dict[str, Any]
KeyKind = Literal["server", "client"]
TRUSTED_BY_DEFAULT: tuple[KeyKind, ...] = ("server",)
"""Client keys ship inside browsers and apps, so anyone can read one and report summaries with
it: by default a metric gate counts only what server SDK keys reported."""


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of a plan: who gets the treatment, for at least how long, and whether a human
    must approve leaving it. Exactly one of `segment` and `percent` is set."""

    name: str
    min_duration: float
    segment: str | None = None
    percent: float | None = None
    approval: bool = False


@dataclass(frozen=True, slots=True)
class MetricGate:
    """Treatment against control on what SDK summaries report, by the sequential test of
    :mod:`.stats`.

    - ``error_rate``: per variant, the measurements of the custom metric named `event` over
      the evaluations that served the variant — a rate comparison.
    - ``latency``: the mean of the values measured for the metric named `event` — a mean
      comparison.

    Each stage window counts the whole minutes of its stage, by the server's receive time
    (never the interval an SDK claims; a minute in which the stage changed counts in neither,
    :mod:`.minute_windows`), and only what keys of a kind in `trust` reported.
    """

    kind: Literal["error_rate", "latency"]
    event: str
    alpha: float = 0.01
    min_samples: int = 200
    margin: float = 0.0
    detect: float | None = None
    """The smallest regression a stage must be able to catch before it may end (absolute:
    0.01 = one percentage point of error rate; milliseconds for latency). None: only
    `min_samples` is required."""
    trust: tuple[KeyKind, ...] = TRUSTED_BY_DEFAULT
    """The kinds of SDK key whose summaries count (``server``, ``client``)."""


@dataclass(frozen=True, slots=True)
class PrometheusGate:
    """A PromQL query whose (first) value must stay within bounds; `trip_after` consecutive
    bad readings are a regression (one bad scrape is not)."""

    url: str
    query: str
    max_value: float | None = None
    min_value: float | None = None
    trip_after: int = 2
    kind: Literal["prometheus"] = "prometheus"


@dataclass(frozen=True, slots=True)
class HttpCheckGate:
    """A synthetic check: GET `url` every `interval` seconds; a status other than
    `expect_status`, a timeout, or a response slower than `max_latency_ms` is a failure;
    `trip_after` consecutive failures are a regression."""

    url: str
    interval: float = 10.0
    max_latency_ms: float = 1000.0
    expect_status: int = 200
    trip_after: int = 3
    kind: Literal["http_check"] = "http_check"


Gate = MetricGate | PrometheusGate | HttpCheckGate


@dataclass(frozen=True, slots=True)
class Plan:
    flag: str
    environment: str
    control: str
    treatment: str
    stages: tuple[Stage, ...]
    gates: tuple[Gate, ...] = ()
    split_by: str | None = None
    """The context attribute splits bucket on (default: the targeting key, or the attribute the
    flag's default split already buckets on)."""
    enable: bool = False
    """Turn the flag on if it is off in the environment when the plan starts. Without it a plan
    refuses to start on a disabled flag: starting would serve the treatment to people who get
    the off variant today, a change nobody asked for by name."""

    def to_dict(self) -> JSON:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: JSON) -> Plan:
        """Trusted input only (stored plans); the API validates requests with its models."""
        return cls(
            flag=data["flag"],
            environment=data["environment"],
            control=data["control"],
            treatment=data["treatment"],
            stages=tuple(Stage(**s) for s in data["stages"]),
            gates=tuple(gate_from_dict(g) for g in data.get("gates", ())),
            split_by=data.get("split_by"),
            enable=bool(data.get("enable", False)),
        )


def gate_from_dict(data: JSON) -> Gate:
    kind = data.get("kind")
    if kind == "prometheus":
        return PrometheusGate(**data)
    if kind == "http_check":
        return HttpCheckGate(**data)
    trust = data.get("trust")
    return MetricGate(**{**data, "trust": tuple(trust) if trust else TRUSTED_BY_DEFAULT})


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    AWAITING_APPROVAL = "awaiting_approval"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"

    @property
    def finished(self) -> bool:
        return self in (Status.COMPLETED, Status.ROLLED_BACK, Status.ABORTED)


ACTIVE = (Status.RUNNING, Status.PAUSED, Status.AWAITING_APPROVAL)
"""Started and unfinished: the plan owns its flag's configuration in its environment, and the
scheduler looks at it every tick."""


@dataclass(frozen=True, slots=True)
class State:
    """Where a plan is. Times are seconds since the epoch, from the scheduler's injected clock.

    `stage_started_at` is shifted forward by the time spent paused, so a stage's minimum
    duration counts running time only. `stage_starts` holds when each stage reached so far
    began serving (not shifted): metric gates count each stage's evaluations and metrics in its
    own window, the current one from its start on, pauses included, since a paused plan serves
    the same configuration and its gates still guard it.
    `gate_strikes` counts consecutive bad readings of the threshold gates (Prometheus, HTTP),
    by gate index.
    """

    status: Status = Status.PENDING
    stage: int = 0
    started_at: float | None = None
    stage_started_at: float | None = None
    paused_at: float | None = None
    finished_at: float | None = None
    stage_starts: tuple[float, ...] = ()
    gate_strikes: dict[int, int] = field(default_factory=dict)
    last_checks: dict[int, float] = field(default_factory=dict)

    def to_dict(self) -> JSON:
        data = asdict(self)
        data["status"] = self.status.value
        data["stage_starts"] = list(self.stage_starts)
        data["gate_strikes"] = {str(k): v for k, v in self.gate_strikes.items()}
        data["last_checks"] = {str(k): v for k, v in self.last_checks.items()}
        return data

    @classmethod
    def from_dict(cls, data: JSON) -> State:
        return cls(
            status=Status(data["status"]),
            stage=data["stage"],
            started_at=data.get("started_at"),
            stage_started_at=data.get("stage_started_at"),
            paused_at=data.get("paused_at"),
            finished_at=data.get("finished_at"),
            stage_starts=tuple(data.get("stage_starts") or ()),
            gate_strikes={int(k): v for k, v in (data.get("gate_strikes") or {}).items()},
            last_checks={int(k): v for k, v in (data.get("last_checks") or {}).items()},
        )

    def evolve(self, **changes: Any) -> State:
        return replace(self, **changes)

    @property
    def windows(self) -> tuple[float, ...]:
        """Where the stage windows begin, oldest first; the last is the current stage's. A plan
        stored before stage windows existed has one window, from its start."""
        if self.stage_starts:
            return self.stage_starts
        return () if self.started_at is None else (self.started_at,)
