"""The flag configuration a plan serves at each stage, derived from the configuration the flag had
when the plan started (its *base*).

The one promise: **a plan never takes the treatment away from anyone**. Whoever the base served
the treatment keeps it at every stage, and whoever gets it at a stage keeps it at every later
stage and after the plan completes. So the stages start from what the flag serves today:

- The base's rules stay, in their order, and keep serving whom they serve. Segment stages
  reached so far become one more rule, placed first, serving the treatment to those segments.
- The default (what users no rule matches get) keeps the base's bucketing: the same split
  attribute, the same order of variants, hence the same bucket for every user (Fader buckets a
  user by the flag key and the split attribute, and variants own consecutive ranges in list
  order; see ``fader_engine.bucketing``). The treatment's range only grows, to the right first
  and then to the left, taking users from its neighbours; everyone else keeps the variant the
  base gave them. A stage's percentage is therefore a *floor on what the base served*: a 1%
  stage on a flag that already serves 5% serves 5%, and a stage says so.
- 100% serves the treatment as the default's one variant.
- The flag is on while a plan runs (a plan on a disabled flag starts only when asked to enable
  it: :func:`base_problems`). A rollback or an abort restores the base exactly.
- A completed plan leaves a configuration a person would write (:func:`final_config`): the
  base's rules and the treatment by default, without the plan's segment rule when the
  treatment default already covers those segments.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from fader_engine.percent import WeightError, format_percent, percent_to_weight
from fader_server.rollout_logic.plan import JSON, Plan

ROLLOUT_RULE_ID = "rollout"
TOTAL = 100_000
"""100% in thousandths of a percent, the engine's unit of split weights."""


@dataclass(frozen=True, slots=True)
class Baseline:
    """What the base serves users no rule matches: variants owning consecutive ranges of the
    bucket space, in order (thousandths of a percent), and the attribute they bucket on."""

    weights: tuple[tuple[str, int], ...]
    by: str | None
    bucketing: JSON | None = None
    """A vendor's bucketing (an imported rollout): kept, so every user keeps their bucket."""

    def share(self, variant: str) -> int:
        return sum(w for v, w in self.weights if v == variant)

    @property
    def is_split(self) -> bool:
        return len(self.weights) > 1


def baseline(base: JSON) -> Baseline:
    """Read the base's default. A malformed one (never stored: every write is validated) reads
    as serving nothing, so the caller's engine validation reports it."""
    default = base.get("default") or {}
    if isinstance(default.get("variant"), str):
        return Baseline(((default["variant"], TOTAL),), None)
    split = default.get("split") or {}
    weights: list[tuple[str, int]] = []
    for item in split.get("weights") or []:
        try:
            weights.append((str(item["variant"]), percent_to_weight(item["weight"])))
        except (KeyError, TypeError, WeightError):
            continue
    by = split.get("by")
    bucketing = split.get("bucketing")
    return Baseline(
        tuple(weights),
        by if isinstance(by, str) else None,
        dict(bucketing) if isinstance(bucketing, dict) else None,
    )


def base_percent(base: JSON, treatment: str) -> float:
    """The share of the default's users the base serves the treatment, in percent."""
    return baseline(base).share(treatment) / 1000


def base_problems(base: JSON, plan: Plan) -> list[tuple[str, str]]:
    """Why `plan` cannot start from `base`, as (field, message) pairs; empty when it can.

    - A disabled flag serves its off variant to everyone; a plan turns it on, which is a
      change to everyone the plan does not target. Refused unless the plan says ``enable``.
    - A default that already serves the treatment to everyone leaves nothing to roll out.
    - A split attribute other than the one the default already buckets on would reshuffle
      users, so some who have the treatment would lose it.
    """
    problems: list[tuple[str, str]] = []
    if not base.get("enabled", True) and not plan.enable:
        problems.append(
            (
                "enable",
                f"flag '{plan.flag}' is off in '{plan.environment}' (everyone gets its off "
                f"variant '{base.get('offVariant')}'); a plan turns it on. Turn it on first, or "
                'ask the plan to: "enable": true (CLI --enable, console "turn the flag on")',
            )
        )
    found = baseline(base)
    if found.share(plan.treatment) >= TOTAL:
        problems.append(
            (
                "treatment",
                f"flag '{plan.flag}' already serves '{plan.treatment}' to everyone by default "
                f"in '{plan.environment}': there is nothing to roll out",
            )
        )
    if found.is_split and plan.split_by is not None and plan.split_by != found.by:
        current = found.by or "the targeting key"
        problems.append(
            (
                "split_by",
                f"the flag's default split in '{plan.environment}' buckets users by {current}; "
                f"a plan splitting by '{plan.split_by}' would move users between buckets and "
                "take the treatment from some. Leave split_by out (the plan keeps the "
                "flag's bucketing)",
            )
        )
    return problems


def stage_config(base: JSON, plan: Plan, stage: int) -> JSON:
    """The configuration stage `stage` serves (see the module docstring)."""
    reached = plan.stages[: stage + 1]
    segments = [s.segment for s in reached if s.segment]
    percent = max((s.percent for s in reached if s.percent is not None), default=0.0)
    config = copy.deepcopy(base)
    config["enabled"] = True
    rules: list[JSON] = list(config.get("rules") or [])
    if segments:
        rules.insert(0, _segment_rule(rules, segments, plan.treatment))
    config["rules"] = rules
    config["default"] = _grown_default(baseline(base), plan, _units(percent))
    return config


def served_percent(base: JSON, plan: Plan, stage: int) -> float:
    """The share of the default's users stage `stage` serves the treatment, in percent: the
    stage's own percentage, or what the base already served if that is more."""
    reached = plan.stages[: stage + 1]
    percent = max((s.percent for s in reached if s.percent is not None), default=0.0)
    return max(_units(percent), baseline(base).share(plan.treatment)) / 1000


def compares(plan: Plan, stage: int) -> bool:
    """Whether the stage leaves a control arm to compare with: not once the plan serves the
    treatment to everyone its split reaches (a 100% stage, and anything after it)."""
    reached = plan.stages[: stage + 1]
    return max((s.percent for s in reached if s.percent is not None), default=0.0) < 100


def final_config(base: JSON, plan: Plan) -> JSON:
    """The configuration a completed plan leaves: the last stage's, without the plan's segment
    rule when nobody would notice it gone, i.e. when the default serves the treatment to
    everyone and every one of the base's rules serves the treatment too (a segment member
    matching none of them, or any of them, gets the treatment either way). Otherwise the rule
    stays, described as what it now is: those segments got the release first, and removing the
    rule would take it from the ones a base rule serves something else."""
    config = stage_config(base, plan, len(plan.stages) - 1)
    if not any(s.segment for s in plan.stages):
        return config
    rule, *others = config["rules"]
    plain = {"variant": plan.treatment}
    if config["default"] == plain and all(r.get("variant") == plan.treatment for r in others):
        config["rules"] = others
    else:
        rule["description"] = f"released to these segments first by the release of {plan.flag}"
    return config


def restored_config(base: JSON) -> JSON:
    return copy.deepcopy(base)


def _units(percent: float) -> int:
    return max(0, min(TOTAL, round(percent * 1000)))


def _segment_rule(rules: list[JSON], segments: list[str], treatment: str) -> JSON:
    """The rule serving the treatment to the segments reached, with an id no base rule has (the
    engine refuses two rules with one id)."""
    taken = {r.get("id") for r in rules}
    rule_id, suffix = ROLLOUT_RULE_ID, 1
    while rule_id in taken:
        suffix += 1
        rule_id = f"{ROLLOUT_RULE_ID}-{suffix}"
    return {
        "id": rule_id,
        "description": "release plan audience",
        "clauses": [{"op": "in_segment", "values": segments}],
        "variant": treatment,
    }


def _grown_default(found: Baseline, plan: Plan, target: int) -> JSON:
    """The base's default with the treatment's range grown to `target` thousandths (never
    shrunk). The range is contiguous and grows right first, then left, so the range of a
    larger target contains the range of a smaller one: stages only ever add users."""
    weights = list(found.weights)
    index = next((i for i, (v, _) in enumerate(weights) if v == plan.treatment), None)
    if index is None:
        weights.insert(0, (plan.treatment, 0))
        index = 0
    start = sum(w for _, w in weights[:index])
    width = weights[index][1]
    grow = max(target, width) - width
    right = min(grow, TOTAL - start - width)
    low, high = start - (grow - right), start + width + right
    kept: list[tuple[str, int]] = []
    position = 0
    for i, (variant, weight) in enumerate(weights):
        begin, end = position, position + weight
        position = end
        if i == index:
            kept.append((variant, high - low))
        elif i < index:
            kept.append((variant, max(0, min(end, low) - begin)))
        else:
            kept.append((variant, max(0, end - max(begin, high))))
    kept = [(v, w) for v, w in kept if w > 0]
    if len(kept) == 1:
        return {"variant": kept[0][0]}
    split: dict[str, Any] = {
        "weights": [{"variant": v, "weight": format_percent(w)} for v, w in kept]
    }
    by = found.by if found.is_split else plan.split_by
    if by:
        split["by"] = by
    if found.is_split and found.bucketing is not None:
        split["bucketing"] = found.bucketing
    return {"split": split}
