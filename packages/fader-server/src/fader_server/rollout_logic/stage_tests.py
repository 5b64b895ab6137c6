"""The two sequential tests a metric gate runs over a plan's stage windows.

A plan's stages serve different mixes: internal users, then 1% of everyone, then 25%, at
different hours of the day. Comparing the arms pooled over the whole plan mixes those
populations: when error rates rise for everyone between stages (evening traffic, an incident
elsewhere) while the treatment's share grows, the pooled treatment arm is mostly late traffic
and the pooled control mostly early traffic, and a perfectly healthy treatment "regresses"
(Simpson's paradox; ``bench/guardrails`` shows every such plan rolled back). So the arms are
only ever compared *within* a stage window, where the mix is fixed, by two mSPRTs
(:mod:`.stats`):

- **the stage's own test**, on the current window alone, started afresh at each stage: a
  regression that only appears at a stage (under load, for a population reached late) is
  measured undiluted by the quiet stages before it;
- **the plan-wide test**, on the windows combined as strata: each window's difference weighted
  by its precision (the inverse-variance, fixed-effect estimate), so the evidence earlier
  stages gathered is kept without mixing their populations. Its score is a sum of independent
  per-window increments, a Gaussian random walk in information time like a single window's,
  so the mixture martingale and its always-valid bound carry over.

The gate's `alpha` is shared between them so that the plan keeps it: half for the plan-wide
test, half split evenly between the stages that compare (Bonferroni; a union bound needs no
independence). The chance that a healthy plan is ever rolled back by the gate is at most
`alpha`, however many stages it has and however often it is checked.

A stage may end once its own window has the minimum sample in each arm and, with `detect`, the
combined evidence could have caught a regression of that size (:func:`.stats.samples_to_detect`
with the earlier windows as prior information).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fader_server.rollout_logic.stats import (
    Comparison,
    MeanStats,
    Need,
    RateCounts,
    Verdict,
    msprt,
    samples_to_detect,
)


@dataclass(frozen=True, slots=True)
class Arms:
    """One stage window's two arms as the normal approximation sees them: the value (a rate or
    a mean), its per-sample variance and the sample count of each arm."""

    control: float
    treatment: float
    control_variance: float
    treatment_variance: float
    control_samples: int
    treatment_samples: int

    @classmethod
    def of_rates(cls, control: RateCounts, treatment: RateCounts) -> Arms:
        """Rates, with variances smoothed by half a failure and one trial (Agresti-Caffo
        style) so an arm without failures so far does not claim zero variance."""
        s_c = (min(control.failures, control.trials) + 0.5) / (control.trials + 1)
        s_t = (min(treatment.failures, treatment.trials) + 0.5) / (treatment.trials + 1)
        return cls(
            control.rate, treatment.rate, s_c * (1 - s_c), s_t * (1 - s_t),
            control.trials, treatment.trials,
        )  # fmt: skip

    @classmethod
    def of_means(cls, control: MeanStats, treatment: MeanStats) -> Arms:
        return cls(
            control.mean, treatment.mean, control.variance, treatment.variance,
            control.count, treatment.count,
        )  # fmt: skip

    @property
    def compared(self) -> bool:
        """Both arms have data, and the difference a usable variance."""
        return min(self.control_samples, self.treatment_samples) > 0 and self.variance > 0

    @property
    def difference(self) -> float:
        return self.treatment - self.control

    @property
    def variance(self) -> float:
        """The variance of the difference estimate."""
        if min(self.control_samples, self.treatment_samples) <= 0:
            return math.inf
        return (
            self.control_variance / self.control_samples
            + self.treatment_variance / self.treatment_samples
        )


def combined(windows: Sequence[Arms]) -> tuple[float, float]:
    """The windows' differences combined by precision, and the variance of that estimate
    (infinite when no window has both arms)."""
    information = score = 0.0
    for arms in windows:
        if arms.compared:
            information += 1.0 / arms.variance
            score += arms.difference / arms.variance
    if information <= 0:
        return 0.0, math.inf
    return score / information, 1.0 / information


def _ratio(excess: float, variance: float, tau: float) -> float:
    if excess <= 0 or math.isinf(variance):
        return 1.0
    return msprt(excess, variance, tau)


def compare_windows(
    windows: Sequence[Arms],
    *,
    plan_alpha: float,
    stage_alpha: float,
    min_samples: int,
    margin: float,
    tau: float,
    detect: float | None = None,
    regressed_variance: float | None = None,
) -> Comparison:
    """The verdict of both tests; the last window is the current stage's.

    `regressed_variance`: the treatment's per-sample variance if it had regressed by `detect`
    (a rate's variance depends on the rate), for the power `detect` asks for; default the
    control's. The returned :class:`Comparison` shows the current window (values, samples,
    the stage test's ratio and threshold) and the plan-wide test in its `plan_` fields; its
    `needed` counts the current window's treatment samples.
    """
    current = windows[-1]
    totals = (
        sum(w.control_samples for w in windows),
        sum(w.treatment_samples for w in windows),
    )
    plan_difference, plan_variance = combined(windows)
    plan_ratio = 1.0
    if min(totals) >= min_samples:
        plan_ratio = _ratio(plan_difference - margin, plan_variance, tau)
    stage_ratio = 1.0
    window_ready = min(current.control_samples, current.treatment_samples) >= min_samples
    if window_ready:
        stage_ratio = _ratio(current.difference - margin, current.variance, tau)
    need = Need(min_samples, min_samples)
    if detect is not None and window_ready:
        prior = sum(1.0 / w.variance for w in windows[:-1] if w.compared)
        treatment_variance = (
            current.control_variance if regressed_variance is None else regressed_variance
        )
        need = samples_to_detect(
            current.control_variance, current.control_samples, treatment_variance, detect,
            alpha=plan_alpha, tau=tau, treatment_samples=current.treatment_samples,
            prior_information=prior,
        )  # fmt: skip
    needed = max(min_samples, need.treatment)
    if plan_ratio >= 1.0 / plan_alpha or stage_ratio >= 1.0 / stage_alpha:
        verdict = Verdict.REGRESSION
    elif not window_ready or min(totals) < min_samples or current.treatment_samples < needed:
        verdict = Verdict.INSUFFICIENT
    else:
        verdict = Verdict.NO_REGRESSION
    return Comparison(
        verdict, current.control, current.treatment, current.difference, stage_ratio,
        1.0 / stage_alpha, current.control_samples, current.treatment_samples, needed,
        max(min_samples, need.control), need.beyond_limit,
        stages=len(windows),
        plan_difference=None if math.isinf(plan_variance) else plan_difference,
        plan_likelihood_ratio=plan_ratio,
        plan_threshold=1.0 / plan_alpha,
    )  # fmt: skip


def rate_windows(
    windows: Sequence[tuple[RateCounts, RateCounts]],
    *,
    plan_alpha: float,
    stage_alpha: float,
    min_samples: int,
    margin: float = 0.0,
    detect: float | None = None,
) -> Comparison:
    """Error rates per stage window (control, treatment), oldest first."""
    arms = [Arms.of_rates(c, t) for c, t in windows]
    failures = sum(c.failures for c, _ in windows)
    trials = sum(c.trials for c, _ in windows)
    level = min(failures, trials) / trials if trials else 0.0
    tau = detect or max(level, 0.01)
    current = windows[-1][0]
    smoothed = (min(current.failures, current.trials) + 0.5) / (current.trials + 1)
    regressed = min(smoothed + margin + (detect or 0.0), 1.0)
    return compare_windows(
        arms, plan_alpha=plan_alpha, stage_alpha=stage_alpha, min_samples=min_samples,
        margin=margin, tau=tau, detect=detect, regressed_variance=regressed * (1 - regressed),
    )  # fmt: skip


def mean_windows(
    windows: Sequence[tuple[MeanStats, MeanStats]],
    *,
    plan_alpha: float,
    stage_alpha: float,
    min_samples: int,
    margin: float = 0.0,
    detect: float | None = None,
) -> Comparison:
    """Means (e.g. latencies) per stage window (control, treatment), oldest first; at least
    two samples per arm are needed for a variance."""
    arms = [Arms.of_means(c, t) for c, t in windows]
    control = MeanStats(
        sum(c.count for c, _ in windows),
        sum(c.total for c, _ in windows),
        sum(c.total_squares for c, _ in windows),
    )
    tau = detect or max(math.sqrt(control.variance), abs(control.mean) * 0.1, 1e-9)
    return compare_windows(
        arms, plan_alpha=plan_alpha, stage_alpha=stage_alpha, min_samples=max(min_samples, 2),
        margin=margin, tau=tau, detect=detect,
    )  # fmt: skip
