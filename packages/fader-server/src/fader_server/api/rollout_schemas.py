"""Pydantic models of the rollout API (release plans and templates; incidents are in
:mod:`.incident_schemas`, webhooks in :mod:`.webhook_schemas`).

Stage and gate fields carry the names of :mod:`fader_server.rollout_logic.plan`, so a plan reads the
same in a request, in a response, in the audit log and in ``docs/rollouts.md``. Durations are
seconds. The models check shape and ranges; whether segments and variants exist and whether
percentages grow is checked against the project by the service, which names the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints, field_validator

from fader_server.api.schemas import Comment, Key, Name, Page, Strict

Seconds = Annotated[float, Field(ge=0, le=365 * 86400)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
Variant = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Attribute = Annotated[str, StringConstraints(min_length=1, max_length=200)]


KeyKind = Literal["server", "client"]


def _server_keys() -> list[KeyKind]:
    return ["server"]


class Finite(Strict):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class StageIn(Finite):
    name: Text
    min_duration: Seconds = Field(
        description="seconds the stage lasts at least (running time: pauses do not count)"
    )
    segment: Key | None = Field(default=None, description="a segment gets the treatment")
    percent: Annotated[float, Field(gt=0, le=100)] | None = Field(
        default=None, description="this share of everyone gets the treatment"
    )
    approval: bool = Field(default=False, description="wait for a person before leaving it")


class MetricGateIn(Finite):
    """Treatment against control on SDK summaries (evaluations and custom metrics), by a
    sequential test (docs/rollouts.md)."""

    kind: Literal["error_rate", "latency"]
    event: Text = Field(
        description="custom metric name (`track`): failures (error_rate) or values (latency)"
    )
    alpha: Annotated[float, Field(gt=0, le=0.2)] = 0.01
    min_samples: Annotated[int, Field(ge=1, le=100_000_000)] = 200
    margin: Annotated[float, Field(ge=0)] = 0.0
    detect: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="the smallest regression a stage must be able to catch"
    )
    trust: Annotated[list[KeyKind], Field(min_length=1, max_length=2)] = Field(
        default_factory=_server_keys,
        description="the kinds of SDK key whose summaries count. Client keys are public (they "
        "ship in browsers and apps), so anyone can report with one: add `client` only if the "
        "metrics come from client SDKs and that risk is acceptable",
    )

    @field_validator("trust")
    @classmethod
    def _each_kind_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("list each key kind once")
        return value


class PrometheusGateIn(Finite):
    kind: Literal["prometheus"]
    url: Url = Field(description="Prometheus base URL, e.g. http://prometheus:9090")
    query: Annotated[str, StringConstraints(min_length=1, max_length=5000)]
    max_value: float | None = None
    min_value: float | None = None
    trip_after: Annotated[int, Field(ge=1, le=1000)] = 2


class HttpCheckGateIn(Finite):
    kind: Literal["http_check"]
    url: Url
    interval: Annotated[float, Field(ge=0.1, le=86400)] = 10.0
    max_latency_ms: Annotated[float, Field(gt=0, le=60_000)] = 1000.0
    expect_status: Annotated[int, Field(ge=100, le=599)] = 200
    trip_after: Annotated[int, Field(ge=1, le=1000)] = 3


GateIn = Annotated[MetricGateIn | PrometheusGateIn | HttpCheckGateIn, Field(discriminator="kind")]
Stages = Annotated[list[StageIn], Field(min_length=1, max_length=50)]
Gates = Annotated[list[GateIn], Field(max_length=50)]


class TemplateIn(Finite):
    key: Key
    name: Name
    stages: Stages
    gates: Gates = Field(default_factory=list)
    split_by: Attribute | None = Field(
        default=None, description="context attribute splits bucket on (default: targeting key)"
    )
    comment: Comment = None


class TemplateOut(Strict):
    key: str
    name: str
    stages: list[dict[str, Any]]
    gates: list[dict[str, Any]]
    split_by: str | None
    created_by: str
    created_at: datetime


class TemplateList(Strict):
    items: list[TemplateOut]


class PlanIn(Finite):
    flag: Key
    environment: Key
    control: Variant = Field(description="the variant served today")
    treatment: Variant = Field(description="the variant being rolled out")
    template: Key | None = Field(default=None, description="take stages and gates from it")
    stages: Stages | None = None
    gates: Gates | None = None
    split_by: Attribute | None = Field(
        default=None,
        description="context attribute splits bucket on (default: the targeting key, or what "
        "the flag's default split already buckets on)",
    )
    enable: bool = Field(
        default=False,
        description="turn the flag on if it is off in the environment when the plan starts "
        "(without it, a plan on a disabled flag is refused)",
    )
    start: bool = Field(default=False, description="start at once")
    comment: Comment = None


class CommandIn(Strict):
    comment: Comment = None


class StartIn(CommandIn):
    enable: bool = Field(
        default=False, description="turn the flag on if it is off in the environment"
    )


class PlanOut(Strict):
    id: int
    flag: str
    environment: str
    control: str
    treatment: str
    template: str | None
    status: Literal[
        "pending", "running", "paused", "awaiting_approval", "completed", "rolled_back", "aborted"
    ]
    stage: int = Field(description="index of the current stage in `stages`")
    stage_name: str
    time_in_stage: float | None = Field(description="running seconds in the current stage")
    stages: list[dict[str, Any]]
    gates: list[dict[str, Any]]
    split_by: str | None
    enable: bool = Field(description="the plan turns the flag on if it is off when it starts")
    served_before: float | None = Field(
        description="the percentage of the default's users the flag served the treatment "
        "before the plan (known once started); a stage below it serves this much"
    )
    served_percents: list[float] | None = Field(
        description="per stage, the percentage of the default's users it serves the treatment "
        "(its own, or `served_before` if higher); known once started"
    )
    started_at: datetime | None
    finished_at: datetime | None
    last_evaluation: dict[str, Any] | None = Field(
        description="the scheduler's latest look: `at`, `action`, `reason`, `gates` results"
    )
    incident: int | None = Field(description="the incident a rollback opened")
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int


class PlanPage(Page):
    items: list[PlanOut]
