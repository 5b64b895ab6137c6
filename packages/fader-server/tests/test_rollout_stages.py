"""A release plan never takes the treatment away: the stage configurations evaluated by the engine.

The main case is the README's own example: the demo's `new-checkout` in production (internal
users on, 5% of everyone else on) released with the demo's `staged-release` template, whose
first stages (internal users, then 1%) are below what the flag already serves. Other cases are
bases a plan must handle just as carefully: a split that lists the control first, a third
variant, a split on another attribute, a rule that keeps some users on the control.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fader_engine.formats import load
from fader_server.rollout_logic import apply
from fader_server.rollout_logic.plan import Plan
from fader_server.services import demo

USERS = 4000
FLAG = "new-checkout"


def contexts() -> list[dict[str, Any]]:
    """Ordinary users, one in twenty an employee (the internal segment), the QA account, and
    an organisation attribute for splits that bucket by it."""
    found: list[dict[str, Any]] = [{"targetingKey": "qa-bot", "org": "o-qa"}]
    for i in range(USERS):
        domain = "example.com" if i % 20 == 0 else "mail.test"
        found.append({"targetingKey": f"u-{i}", "email": f"u{i}@{domain}", "org": f"o-{i % 700}"})
    return found


CONTEXTS = contexts()
SEGMENTS = {
    "internal-users": {
        key: value for key, value in demo._INTERNAL.items() if key in ("included", "rules")
    },
    "blocked": {"included": [f"u-{i}" for i in range(0, USERS, 13)]},
}


def served(config: dict[str, Any], variants: dict[str, Any]) -> dict[str, str | None]:
    """Every context's variant under `config`, as an SDK holding it would evaluate."""
    kind = "boolean" if set(variants.values()) <= {True, False} else "string"
    flag = {"type": kind, "variants": variants, **config}
    engine = load({"format": "fader/v1", "segments": SEGMENTS, "flags": {FLAG: flag}})
    return {c["targetingKey"]: engine.evaluate(FLAG, c).variant for c in CONTEXTS}


def staged_release(**overrides: Any) -> Plan:
    body: dict[str, Any] = {
        "flag": FLAG,
        "environment": "production",
        "control": "off",
        "treatment": "on",
        **copy.deepcopy(demo._STAGED_RELEASE),
    }
    body.update(overrides)
    return Plan.from_dict(body)


def assert_never_taken_away(
    base: dict[str, Any], plan: Plan, variants: dict[str, Any]
) -> list[set[str]]:
    """Evaluate the base, every stage and the final configuration; whoever had the treatment
    keeps it at every later step. Returns who had it at each step."""
    steps = [base]
    steps += [apply.stage_config(base, plan, i) for i in range(len(plan.stages))]
    steps.append(apply.final_config(base, plan))
    treated: list[set[str]] = []
    for index, config in enumerate(steps):
        now = {key for key, variant in served(config, variants).items() if variant == "on"}
        if treated:
            lost = treated[-1] - now
            assert not lost, f"step {index} takes the treatment from {len(lost)} users"
        treated.append(now)
    return treated


DEMO_BASE: dict[str, Any] = demo._CONFIGS[("production", FLAG)]
BOOLEAN = {"on": True, "off": False}


def test_the_readme_example_keeps_the_five_percent_at_every_stage() -> None:
    plan = staged_release()
    treated = assert_never_taken_away(DEMO_BASE, plan, BOOLEAN)
    before, first = treated[0], treated[1]
    assert len(before) > USERS * 0.05  # 5% of everyone plus the employees
    assert first == before  # the internal-users stage adds nobody: they already have it
    shares = [apply.served_percent(DEMO_BASE, plan, i) for i in range(len(plan.stages))]
    assert shares == [5, 5, 5, 25, 50, 100]  # 1% and 0% stages hold what was served
    assert len(treated[-1]) == len(CONTEXTS)


def test_a_completed_plan_leaves_the_configuration_a_person_would_write() -> None:
    final = apply.final_config(DEMO_BASE, staged_release())
    assert final == {
        "enabled": True,
        "offVariant": "off",
        "rules": DEMO_BASE["rules"],  # the flag's own rule stays, the plan's is gone
        "default": {"variant": "on"},
    }


BASES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "control listed first": (
        {
            "enabled": True,
            "offVariant": "off",
            "default": {
                "split": {
                    "weights": [{"variant": "off", "weight": 93}, {"variant": "on", "weight": 7}]
                }
            },
        },
        BOOLEAN,
        {},
    ),
    "a third variant keeps its users until the treatment reaches them": (
        {
            "enabled": True,
            "offVariant": "off",
            "default": {
                "split": {
                    "weights": [
                        {"variant": "legacy", "weight": 10},
                        {"variant": "on", "weight": 3.5},
                        {"variant": "off", "weight": 86.5},
                    ]
                }
            },
        },
        {"on": "on", "off": "off", "legacy": "legacy"},
        {},
    ),
    "a split by organisation keeps bucketing by organisation": (
        {
            "enabled": True,
            "offVariant": "off",
            "default": {
                "split": {
                    "by": "org",
                    "weights": [{"variant": "on", "weight": 2}, {"variant": "off", "weight": 98}],
                }
            },
        },
        BOOLEAN,
        {},
    ),
    "a rule keeping some users on the control": (
        {
            "enabled": True,
            "offVariant": "off",
            "rules": [
                {
                    "id": "blocked",
                    "clauses": [{"op": "in_segment", "values": ["blocked"]}],
                    "variant": "off",
                },
                {
                    "id": "rollout",
                    "clauses": [{"attribute": "org", "op": "in", "values": ["o-1"]}],
                    "variant": "on",
                },
            ],
            "default": {"variant": "off"},
        },
        BOOLEAN,
        {},
    ),
    "a flag that serves the control to everyone": (
        {"enabled": True, "offVariant": "off", "default": {"variant": "off"}},
        BOOLEAN,
        {"split_by": "org"},
    ),
}


@pytest.mark.parametrize("case", BASES)
def test_no_base_loses_the_treatment_at_any_stage(case: str) -> None:
    base, variants, overrides = BASES[case]
    plan = staged_release(**overrides)
    assert apply.base_problems(base, plan) == []
    treated = assert_never_taken_away(base, plan, variants)
    assert len(treated[-2]) > len(treated[1])  # and the plan does release the treatment
    before = served(base, variants)
    for step in (apply.stage_config(base, plan, i) for i in range(len(plan.stages))):
        now = served(step, variants)
        # Nobody is moved between other variants: a user either keeps what the base gave
        # them, or gets the treatment.
        assert all(now[k] in (before[k], "on") for k in now)


def test_a_segment_rule_stays_after_completion_when_a_base_rule_would_undo_it() -> None:
    base = BASES["a rule keeping some users on the control"][0]
    final = apply.final_config(base, staged_release())
    ids = [r["id"] for r in final["rules"]]
    assert ids == ["rollout-2", "blocked", "rollout"]  # a fresh id: the engine wants them unique
    assert "released to these segments first" in final["rules"][0]["description"]
    # employees who are also "blocked" got the treatment at the internal stage and keep it
    blocked_staff = [c["targetingKey"] for c in CONTEXTS if c["targetingKey"] == "u-0"]
    assert served(final, BOOLEAN)[blocked_staff[0]] == "on"


def test_bases_a_plan_cannot_start_from_are_explained() -> None:
    plan = staged_release()
    off = {**DEMO_BASE, "enabled": False}
    ((field, message),) = apply.base_problems(off, plan)
    assert field == "enable"
    assert "is off in 'production'" in message
    assert '"enable": true' in message
    assert apply.base_problems(off, staged_release(enable=True)) == []
    everyone = {"enabled": True, "offVariant": "off", "default": {"variant": "on"}}
    assert [f for f, _ in apply.base_problems(everyone, plan)] == ["treatment"]
    by_org = BASES["a split by organisation keeps bucketing by organisation"][0]
    ((field, message),) = apply.base_problems(by_org, staged_release(split_by="accountId"))
    assert field == "split_by"
    assert "buckets users by org" in message


def test_a_plan_on_a_disabled_flag_with_enable_turns_it_on_and_restores_it_off() -> None:
    off = {**DEMO_BASE, "enabled": False}
    plan = staged_release(enable=True)
    assert apply.stage_config(off, plan, 0)["enabled"] is True
    assert apply.restored_config(off) == off


@pytest.mark.parametrize(
    "bucketing",
    [
        {"algorithm": "launchdarkly", "prefix": "new-checkout.a1b2c3"},
        {"algorithm": "unleash", "group": "new-checkout", "seed": 86028157, "modulus": 1000},
    ],
)
def test_an_imported_rollout_keeps_its_vendor_bucketing_at_every_stage(
    bucketing: dict[str, Any],
) -> None:
    """A flag imported from LaunchDarkly or Unleash buckets with that vendor's hash; a plan
    that re-split it with Fader's own would move users between buckets."""
    split = {"weights": [{"variant": "on", "weight": 5}, {"variant": "off", "weight": 95}]}
    base = {"offVariant": "off", "default": {"split": {**split, "bucketing": bucketing}}}
    plan = staged_release()
    treated = assert_never_taken_away(base, plan, BOOLEAN)
    assert len(treated[0]) > USERS * 0.03
    for stage in range(len(plan.stages) - 1):
        default = apply.stage_config(base, plan, stage)["default"]
        if "split" in default:
            assert default["split"]["bucketing"] == bucketing
    assert len(treated[-1]) == len(CONTEXTS)
