"""The one flag and the three users every system is measured on, in each system's own format.

One boolean flag, ``new-checkout``, with two targeting rules and a percentage split:

1. ``email`` ends with ``@example.com`` → true (internal users);
2. ``country`` in NL, DE, FR **and** ``plan`` is ``pro`` → true;
3. otherwise a 25% true / 75% false split on the targeting key.

Each case is a user who stops at a different step, so the three cases cost one, two and three
steps of the same flag. This module is data only: it must not import any SDK, because
``run.py`` reads it before the benchmark's virtual environment exists.

The definitions below are written by hand for each system, side by side, so that a reader can
check they say the same thing; ``run.py`` asserts that they answer the same for cases A and B.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FLAG_KEY = "new-checkout"
INTERNAL_SUFFIX = "@example.com"
EU_COUNTRIES = ("NL", "DE", "FR")
ROLLOUT_PERCENT = 25


@dataclass(frozen=True, slots=True)
class Case:
    """A user, and what the flag must answer for them (``None``: each system's own hash decides)."""

    label: str
    title: str
    targeting_key: str
    attributes: dict[str, str] = field(default_factory=dict)
    expected: bool | None = None


CASES = (
    Case(
        "A",
        "internal user (rule 1: email suffix)",
        "user-alice",
        {"email": "alice@example.com", "country": "US", "plan": "free"},
        expected=True,
    ),
    Case(
        "B",
        "country+plan (rule 2: country in [...] and plan == pro)",
        "user-bob",
        {"email": "bob@customer.test", "country": "DE", "plan": "pro"},
        expected=True,
    ),
    Case(
        "C",
        "25% split (no rule matches)",
        # Found by a search over "user-carol-<n>": the first key that every system puts in its
        # 75% "false" bucket, so that case C does the same work everywhere (see README).
        "user-carol-2",
        {"email": "carol@customer.test", "country": "US", "plan": "free"},
        expected=None,
    ),
)


# --- Fader (docs/flag-format.md) -----------------------------------------------------------

FADER_DOCUMENT: dict[str, Any] = {
    "format": "fader/v1",
    "flags": {
        FLAG_KEY: {
            "type": "boolean",
            "variants": {"on": True, "off": False},
            "offVariant": "off",
            "rules": [
                {
                    "id": "internal",
                    "clauses": [
                        {"attribute": "email", "op": "ends_with", "values": [INTERNAL_SUFFIX]}
                    ],
                    "variant": "on",
                },
                {
                    "id": "eu-pro",
                    "clauses": [
                        {"attribute": "country", "op": "in", "values": list(EU_COUNTRIES)},
                        {"attribute": "plan", "op": "in", "values": ["pro"]},
                    ],
                    "variant": "on",
                },
            ],
            "default": {
                "split": {
                    "weights": [
                        {"variant": "on", "weight": ROLLOUT_PERCENT},
                        {"variant": "off", "weight": 100 - ROLLOUT_PERCENT},
                    ]
                }
            },
        }
    },
}


# --- LaunchDarkly: the file data source's JSON (flags in the server-side flag schema) -------

LAUNCHDARKLY_DATA: dict[str, Any] = {
    "flags": {
        FLAG_KEY: {
            "key": FLAG_KEY,
            "version": 1,
            "on": True,
            "salt": FLAG_KEY,
            "variations": [True, False],
            "offVariation": 1,
            "prerequisites": [],
            "targets": [],
            "rules": [
                {
                    "id": "internal",
                    "variation": 0,
                    "clauses": [
                        {
                            "contextKind": "user",
                            "attribute": "email",
                            "op": "endsWith",
                            "values": [INTERNAL_SUFFIX],
                            "negate": False,
                        }
                    ],
                },
                {
                    "id": "eu-pro",
                    "variation": 0,
                    "clauses": [
                        {
                            "contextKind": "user",
                            "attribute": "country",
                            "op": "in",
                            "values": list(EU_COUNTRIES),
                            "negate": False,
                        },
                        {
                            "contextKind": "user",
                            "attribute": "plan",
                            "op": "in",
                            "values": ["pro"],
                            "negate": False,
                        },
                    ],
                },
            ],
            # LaunchDarkly weights are in thousandths of a percent.
            "fallthrough": {
                "rollout": {
                    "variations": [
                        {"variation": 0, "weight": ROLLOUT_PERCENT * 1000},
                        {"variation": 1, "weight": (100 - ROLLOUT_PERCENT) * 1000},
                    ]
                }
            },
        }
    },
    "segments": {},
}


# --- Unleash: a /api/client/features response used as bootstrap ----------------------------
# Strategies are OR-ed, and each strategy's constraints AND-ed: the same three steps.

UNLEASH_FEATURES: dict[str, Any] = {
    "version": 2,
    "features": [
        {
            "name": FLAG_KEY,
            "type": "release",
            "project": "default",
            "enabled": True,
            "impressionData": False,
            "strategies": [
                {
                    "name": "default",
                    "parameters": {},
                    "constraints": [
                        {
                            "contextName": "email",
                            "operator": "STR_ENDS_WITH",
                            "values": [INTERNAL_SUFFIX],
                            "caseInsensitive": False,
                            "inverted": False,
                        }
                    ],
                },
                {
                    "name": "default",
                    "parameters": {},
                    "constraints": [
                        {
                            "contextName": "country",
                            "operator": "IN",
                            "values": list(EU_COUNTRIES),
                            "inverted": False,
                        },
                        {
                            "contextName": "plan",
                            "operator": "IN",
                            "values": ["pro"],
                            "inverted": False,
                        },
                    ],
                },
                {
                    "name": "flexibleRollout",
                    "parameters": {
                        "rollout": str(ROLLOUT_PERCENT),
                        "stickiness": "userId",
                        "groupId": FLAG_KEY,
                    },
                    "constraints": [],
                },
            ],
        }
    ],
}


# --- GrowthBook: a features payload (rules are tried in order; `coverage` is the rollout) ----
# GrowthBook conditions have no "ends with" operator; an anchored regex is the documented way.

GROWTHBOOK_FEATURES: dict[str, Any] = {
    FLAG_KEY: {
        "defaultValue": False,
        "rules": [
            {
                "id": "internal",
                "condition": {"email": {"$regex": r"@example\.com$"}},
                "force": True,
            },
            {
                "id": "eu-pro",
                "condition": {"country": {"$in": list(EU_COUNTRIES)}, "plan": "pro"},
                "force": True,
            },
            {
                "id": "split",
                "force": True,
                "coverage": ROLLOUT_PERCENT / 100,
                "hashAttribute": "id",
            },
        ],
    }
}


# --- flagd: a flag definition file (JsonLogic targeting with flagd's custom operators) -------

FLAGD_DOCUMENT: dict[str, Any] = {
    "$schema": "https://flagd.dev/schema/v0/flags.json",
    "flags": {
        FLAG_KEY: {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {
                "if": [
                    {"ends_with": [{"var": "email"}, INTERNAL_SUFFIX]},
                    "on",
                    {
                        "and": [
                            {"in": [{"var": "country"}, list(EU_COUNTRIES)]},
                            {"==": [{"var": "plan"}, "pro"]},
                        ]
                    },
                    "on",
                    {"fractional": [["on", ROLLOUT_PERCENT], ["off", 100 - ROLLOUT_PERCENT]]},
                ]
            },
        }
    },
}
