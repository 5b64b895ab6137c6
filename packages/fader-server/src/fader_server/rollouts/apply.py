"""The flag configuration a plan serves at each stage, derived from the configuration the flag had
when the plan started (its *base*).

- Segment stages reached so far become one rule, first, serving the treatment to those segments.
- The highest percentage reached becomes the default: a split putting the treatment *first*, so
  growing the percentage only adds users (a user's bucket never moves; the boundary does).
- 0% serves the control by default; 100% serves the treatment.
- The flag is on while a plan runs. A rollback or an abort restores the base exactly: the
  instant revert to what was served before the plan began.
"""

from __future__ import annotations

import copy

from fader_server.rollouts.plan import JSON, Plan

ROLLOUT_RULE_ID = "rollout"


def stage_config(base: JSON, plan: Plan, stage: int) -> JSON:
    reached = plan.stages[: stage + 1]
    segments = [s.segment for s in reached if s.segment]
    percent = max((s.percent for s in reached if s.percent is not None), default=0.0)
    config = copy.deepcopy(base)
    config["enabled"] = True
    rules = [r for r in config.get("rules", []) if r.get("id") != ROLLOUT_RULE_ID]
    if segments:
        rules.insert(
            0,
            {
                "id": ROLLOUT_RULE_ID,
                "description": "release plan audience",
                "clauses": [{"op": "in_segment", "values": segments}],
                "variant": plan.treatment,
            },
        )
    config["rules"] = rules
    if percent <= 0:
        config["default"] = {"variant": plan.control}
    elif percent >= 100:
        config["default"] = {"variant": plan.treatment}
    else:
        split: JSON = {
            "weights": [
                {"variant": plan.treatment, "weight": round(percent, 3)},
                {"variant": plan.control, "weight": round(100 - percent, 3)},
            ]
        }
        if plan.split_by:
            split["by"] = plan.split_by
        config["default"] = {"split": split}
    return config


def restored_config(base: JSON) -> JSON:
    return copy.deepcopy(base)
