"""A sequential test that stays valid when checked continuously: the mixture SPRT (mSPRT).

A rollout's gates are evaluated every few seconds for hours. A fixed-horizon test (a t-test or a
chi-square checked repeatedly) would eventually "detect" a regression in a perfectly healthy
rollout: peeking inflates the false-positive rate far beyond its nominal level. The mSPRT of
Johari, Pekelis and Walsh ("Always valid inference", 2017; the statistic behind Optimizely's
Stats Engine) instead bounds the probability of *ever* rejecting a true null by `alpha`, however
often it is checked, by Ville's inequality on a nonnegative martingale.

Under the normal approximation of the difference estimate ``d`` (treatment minus control, minus
a tolerated margin) with variance ``v``, mixing the alternative over ``N(0, tau^2)`` gives::

    Lambda = sqrt(v / (v + tau^2)) * exp(tau^2 * d^2 / (2 * v * (v + tau^2)))

and the test rejects "no regression" once ``Lambda >= 1 / alpha`` with ``d > 0``. The normal
approximation needs enough data, hence a minimum sample size per arm before any verdict.
``tau`` is the effect size the test is most sensitive to; it defaults to a scale of the control's
own level (for rates) or spread (for latencies), which is where regressions worth stopping for lie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    INSUFFICIENT = "insufficient_data"
    """Fewer samples than the minimum in some arm: no conclusion either way."""
    NO_REGRESSION = "no_regression"
    """Enough data, and no evidence that the treatment is worse."""
    REGRESSION = "regression"
    """The treatment is worse than the control beyond the margin, with confidence 1 - alpha."""


@dataclass(frozen=True, slots=True)
class RateCounts:
    """Trials and failures of one arm (e.g. evaluations and error measurements)."""

    trials: int
    failures: int

    @property
    def rate(self) -> float:
        return min(self.failures, self.trials) / self.trials if self.trials else 0.0


@dataclass(frozen=True, slots=True)
class MeanStats:
    """Sufficient statistics of one arm's measurements (e.g. latencies in ms)."""

    count: int
    total: float
    total_squares: float

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def variance(self) -> float:
        """Unbiased sample variance (0 below two samples)."""
        if self.count < 2:
            return 0.0
        spread = self.total_squares - self.total * self.total / self.count
        return max(spread, 0.0) / (self.count - 1)


@dataclass(frozen=True, slots=True)
class Comparison:
    """The evidence behind a verdict, kept in audit entries and incident records."""

    verdict: Verdict
    control: float
    treatment: float
    difference: float
    likelihood_ratio: float
    threshold: float
    control_samples: int
    treatment_samples: int
    needed: int = 0
    """Treatment samples a "no regression" verdict needs (see `detect`)."""
    control_needed: int = 0
    """Control samples expected by the time the treatment has `needed` (at least the minimum)."""
    beyond_limit: bool = False
    """`needed` is the end of the search range, not an estimate: more than that is needed."""
    stages: int = 1
    """Stage windows combined in the plan-wide test (:mod:`.stage_tests`); 1 for one window."""
    plan_difference: float | None = None
    """The plan-wide test's estimate: the stage windows' differences, combined."""
    plan_likelihood_ratio: float | None = None
    plan_threshold: float | None = None

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "verdict": self.verdict.value,
            "control": self.control,
            "treatment": self.treatment,
            "difference": self.difference,
            "likelihood_ratio": self.likelihood_ratio,
            "threshold": self.threshold,
            "control_samples": self.control_samples,
            "treatment_samples": self.treatment_samples,
            "needed": self.needed,
            "control_needed": self.control_needed,
            "beyond_limit": self.beyond_limit,
            "stages": self.stages,
            "plan_difference": self.plan_difference,
            "plan_likelihood_ratio": self.plan_likelihood_ratio,
            "plan_threshold": self.plan_threshold,
        }


def msprt(difference: float, variance: float, tau: float) -> float:
    """The mixture likelihood ratio for an observed `difference` with `variance` (see above)."""
    if variance <= 0.0:
        return math.inf if difference > 0 else 1.0
    tau2 = tau * tau
    exponent = tau2 * difference * difference / (2.0 * variance * (variance + tau2))
    scale = math.sqrt(variance / (variance + tau2))
    if exponent > 700.0:  # beyond float range: the evidence is overwhelming
        return math.inf
    return scale * math.exp(exponent)


_Z_POWER = 1.2816
"""The standard normal quantile for 90% power."""


SEARCH_LIMIT = 10**12
"""Samples per arm beyond which :func:`samples_to_detect` stops looking (and says so)."""


@dataclass(frozen=True, slots=True)
class Need:
    """Samples after which a regression of the wanted size would be detected: the treatment's,
    and the control's by then. `beyond_limit`: not within :data:`SEARCH_LIMIT` treatment
    samples (`treatment` is the limit, a bound and not an estimate)."""

    treatment: int
    control: int
    beyond_limit: bool = False


def samples_to_detect(
    control_variance: float,
    control_samples: int,
    treatment_variance: float,
    effect: float,
    *,
    alpha: float,
    tau: float,
    treatment_samples: int = 0,
    prior_information: float = 0.0,
    limit: int = SEARCH_LIMIT,
) -> Need:
    """Treatment samples after which a true regression of `effect` is detected with about 90%
    probability (the estimate one standard error below `effect` already crosses 1/alpha),
    assuming both arms keep growing in the proportion seen so far (one to one before either
    has data); the control never shrinks below what it has.

    This is what lets a stage wait until it has seen *enough traffic to catch the regression
    the plan cares about*, instead of advancing on a fixed count that may be far too small.
    Both arms grow, so the need is always finite; the search still stops at `limit` and says
    so rather than report its bound as an estimate.

    `prior_information` is the precision (1 / variance) of independent earlier evidence on the
    same difference, combined with these arms' (:mod:`.stage_tests`: the windows of the stages
    a plan has left behind); the samples counted are this window's.
    """
    if effect <= 0:
        return Need(0, control_samples)

    def control_at(n: int) -> int:
        if control_samples > 0 and treatment_samples > 0:
            return max(control_samples, n * control_samples // treatment_samples)
        return max(control_samples, n)

    def detects(n: int) -> bool:
        window = treatment_variance / n + control_variance / max(control_at(n), 1)
        variance = 1.0 / (prior_information + 1.0 / window) if window > 0 else 0.0
        low = effect - _Z_POWER * math.sqrt(variance)
        return low > 0 and msprt(low, variance, tau) >= 1.0 / alpha

    high = 2
    while not detects(high):
        if high >= limit:
            return Need(limit, control_at(limit), beyond_limit=True)
        high = min(high * 2, limit)
    low = high // 2
    while low + 1 < high:
        middle = (low + high) // 2
        if detects(middle):
            high = middle
        else:
            low = middle
    return Need(high, control_at(high))


def compare_rates(
    control: RateCounts,
    treatment: RateCounts,
    *,
    alpha: float,
    min_samples: int,
    margin: float = 0.0,
    detect: float | None = None,
    tau: float | None = None,
) -> Comparison:
    """Is the treatment's failure rate higher than the control's by more than `margin`?

    With `detect` (a regression size, e.g. 0.01 for one percentage point), "no regression" is
    only concluded once the treatment has enough samples to have caught that regression; until
    then the verdict is INSUFFICIENT and `needed` says how many samples that takes. The
    estimate needs rates to estimate from: until each arm has `min_samples`, `needed` is that
    minimum (no verdict is possible before it anyway).
    Rates are smoothed by half a failure and one trial (Agresti-Caffo style) for the variance
    only, so an arm with zero failures so far does not claim zero variance.
    """
    p_c, p_t = control.rate, treatment.rate
    s_c = (min(control.failures, control.trials) + 0.5) / (control.trials + 1)
    s_t = (min(treatment.failures, treatment.trials) + 0.5) / (treatment.trials + 1)
    scale = tau if tau is not None else (detect or max(p_c, 0.01))
    need = Need(min_samples, min_samples)
    if detect is not None and min(control.trials, treatment.trials) >= min_samples:
        shifted = min(s_c + margin + detect, 1.0)
        need = samples_to_detect(
            s_c * (1 - s_c), control.trials, shifted * (1 - shifted), detect,
            alpha=alpha, tau=scale, treatment_samples=treatment.trials,
        )  # fmt: skip
    return _verdict(
        p_c, p_t, control.trials, treatment.trials,
        s_c * (1 - s_c), s_t * (1 - s_t),
        alpha=alpha, min_samples=min_samples, need=need, margin=margin, tau=scale,
    )  # fmt: skip


def compare_means(
    control: MeanStats,
    treatment: MeanStats,
    *,
    alpha: float,
    min_samples: int,
    margin: float = 0.0,
    detect: float | None = None,
    tau: float | None = None,
) -> Comparison:
    """Is the treatment's mean (e.g. latency) higher than the control's by more than `margin`?
    `detect` works as in :func:`compare_rates`, in the unit of the values."""
    spread = math.sqrt(control.variance)
    scale = tau if tau is not None else (detect or max(spread, abs(control.mean) * 0.1, 1e-9))
    least = max(min_samples, 2)
    need = Need(least, least)
    if detect is not None and min(control.count, treatment.count) >= least:
        need = samples_to_detect(
            control.variance, control.count, control.variance, detect,
            alpha=alpha, tau=scale, treatment_samples=treatment.count,
        )  # fmt: skip
    return _verdict(
        control.mean, treatment.mean, control.count, treatment.count,
        control.variance, treatment.variance,
        alpha=alpha, min_samples=least, need=need, margin=margin, tau=scale,
    )  # fmt: skip


def _verdict(
    control: float,
    treatment: float,
    control_samples: int,
    treatment_samples: int,
    control_variance: float,
    treatment_variance: float,
    *,
    alpha: float,
    min_samples: int,
    need: Need,
    margin: float,
    tau: float,
) -> Comparison:
    threshold = 1.0 / alpha
    difference = treatment - control
    needed = max(min_samples, need.treatment)

    def result(verdict: Verdict, ratio: float) -> Comparison:
        return Comparison(
            verdict, control, treatment, difference, ratio, threshold,
            control_samples, treatment_samples, needed,
            max(min_samples, need.control), need.beyond_limit,
        )  # fmt: skip

    if min(control_samples, treatment_samples) < min_samples:
        return result(Verdict.INSUFFICIENT, 1.0)
    variance = control_variance / control_samples + treatment_variance / treatment_samples
    excess = difference - margin
    ratio = msprt(excess, variance, tau) if excess > 0 else 1.0
    if ratio >= threshold:
        return result(Verdict.REGRESSION, ratio)
    if treatment_samples < needed:
        return result(Verdict.INSUFFICIENT, ratio)
    return result(Verdict.NO_REGRESSION, ratio)
