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
    """Trials and failures of one arm (e.g. exposures and error events)."""

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

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "verdict": self.verdict.value,
            "control": self.control,
            "treatment": self.treatment,
            "difference": self.difference,
            "likelihood_ratio": self.likelihood_ratio,
            "threshold": self.threshold,
            "control_samples": self.control_samples,
            "treatment_samples": self.treatment_samples,
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


def compare_rates(
    control: RateCounts,
    treatment: RateCounts,
    *,
    alpha: float,
    min_samples: int,
    margin: float = 0.0,
    tau: float | None = None,
) -> Comparison:
    """Is the treatment's failure rate higher than the control's by more than `margin`?

    Rates are smoothed by half a failure and one trial (Agresti-Caffo style) for the variance
    only, so an arm with zero failures so far does not claim zero variance.
    """
    threshold = 1.0 / alpha
    p_c, p_t = control.rate, treatment.rate
    difference = p_t - p_c
    if min(control.trials, treatment.trials) < min_samples:
        return Comparison(
            Verdict.INSUFFICIENT, p_c, p_t, difference, 1.0, threshold,
            control.trials, treatment.trials,
        )  # fmt: skip
    s_c = (min(control.failures, control.trials) + 0.5) / (control.trials + 1)
    s_t = (min(treatment.failures, treatment.trials) + 0.5) / (treatment.trials + 1)
    variance = s_c * (1 - s_c) / control.trials + s_t * (1 - s_t) / treatment.trials
    scale = tau if tau is not None else max(p_c, 0.01)
    excess = difference - margin
    ratio = msprt(excess, variance, scale) if excess > 0 else 1.0
    verdict = Verdict.REGRESSION if ratio >= threshold else Verdict.NO_REGRESSION
    return Comparison(
        verdict, p_c, p_t, difference, ratio, threshold, control.trials, treatment.trials
    )


def compare_means(
    control: MeanStats,
    treatment: MeanStats,
    *,
    alpha: float,
    min_samples: int,
    margin: float = 0.0,
    tau: float | None = None,
) -> Comparison:
    """Is the treatment's mean (e.g. latency) higher than the control's by more than `margin`?"""
    threshold = 1.0 / alpha
    m_c, m_t = control.mean, treatment.mean
    difference = m_t - m_c
    if min(control.count, treatment.count) < max(min_samples, 2):
        return Comparison(
            Verdict.INSUFFICIENT, m_c, m_t, difference, 1.0, threshold,
            control.count, treatment.count,
        )  # fmt: skip
    variance = control.variance / control.count + treatment.variance / treatment.count
    scale = tau if tau is not None else max(math.sqrt(control.variance), abs(m_c) * 0.1, 1e-9)
    excess = difference - margin
    ratio = msprt(excess, variance, scale) if excess > 0 else 1.0
    verdict = Verdict.REGRESSION if ratio >= threshold else Verdict.NO_REGRESSION
    return Comparison(
        verdict, m_c, m_t, difference, ratio, threshold, control.count, treatment.count
    )
