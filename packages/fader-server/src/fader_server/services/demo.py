"""`fader serve --demo`: a realistic project to click through, seeded once.

Seeding goes through the same services as the API, so the demo data is versioned, audited
(actor ``system:demo``) and validated by the engine like anything a user would create.
"""

from __future__ import annotations

from fader_server.errors import NotFoundError
from fader_server.services import Services
from fader_server.services.access import Principal

DEMO_PROJECT = "demo"
_SYSTEM = Principal("system:demo", instance_admin=True)

_INTERNAL = {
    "name": "Internal users",
    "description": "Employees, by e-mail domain, plus the QA account",
    "included": ["qa-bot"],
    "rules": [{"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@example.com"]}]}],
}
_FLAGS: dict[str, dict[str, object]] = {
    "new-checkout": {
        "name": "New checkout",
        "description": "Single-page checkout replacing the three-step flow",
        "tags": ["checkout", "web"],
        "kind": "release",
        "type": "boolean",
        "variants": {"on": True, "off": False},
        "owner_team": "payments",
        "expected_lifetime_days": 60,
        "client_side": True,
    },
    "checkout-button-copy": {
        "name": "Checkout button copy",
        "description": "Which call to action converts better",
        "tags": ["checkout", "growth"],
        "kind": "experiment",
        "type": "string",
        "variants": {"control": "Buy now", "treatment": "Complete purchase"},
        "owner_team": "growth",
        "expected_lifetime_days": 30,
        "client_side": True,
    },
    "search-page-size": {
        "name": "Search page size",
        "description": "Results per page; lower it to shed load",
        "tags": ["search"],
        "kind": "ops",
        "type": "number",
        "variants": {"normal": 50, "reduced": 20},
        "owner_team": "search",
    },
    "maintenance-mode": {
        "name": "Maintenance mode",
        "description": "Kill switch: show the maintenance page everywhere",
        "tags": ["ops"],
        "kind": "ops",
        "type": "boolean",
        "variants": {"on": True, "off": False},
        "owner_team": "platform",
    },
}
_INTERNAL_RULE = {"clauses": [{"op": "in_segment", "values": ["internal-users"]}]}
_CONFIGS: dict[tuple[str, str], dict[str, object]] = {
    ("development", "new-checkout"): {
        "enabled": True,
        "offVariant": "off",
        "default": {"variant": "on"},
    },
    ("staging", "new-checkout"): {
        "enabled": True,
        "offVariant": "off",
        "default": {"variant": "off"},
        "rules": [{**_INTERNAL_RULE, "id": "internal", "variant": "on"}],
    },
    ("production", "new-checkout"): {
        "enabled": True,
        "offVariant": "off",
        "rules": [{**_INTERNAL_RULE, "id": "internal", "variant": "on"}],
        "default": {
            "split": {"weights": [{"variant": "on", "weight": 5}, {"variant": "off", "weight": 95}]}
        },
    },
    ("production", "checkout-button-copy"): {
        "enabled": True,
        "offVariant": "control",
        "default": {
            "split": {
                "weights": [
                    {"variant": "control", "weight": 50},
                    {"variant": "treatment", "weight": 50},
                ]
            }
        },
    },
    ("production", "search-page-size"): {
        "enabled": True,
        "offVariant": "normal",
        "default": {"variant": "normal"},
    },
}


_HOUR = 3600
_STAGED_RELEASE = {
    "stages": [
        {"name": "internal users", "min_duration": _HOUR, "segment": "internal-users"},
        {"name": "1%", "min_duration": _HOUR, "percent": 1},
        {"name": "5%", "min_duration": _HOUR, "percent": 5},
        {"name": "25%", "min_duration": 2 * _HOUR, "percent": 25, "approval": True},
        {"name": "50%", "min_duration": 2 * _HOUR, "percent": 50},
        {"name": "100%", "min_duration": 0, "percent": 100},
    ],
    "gates": [
        # Error events the application reports with `track("error", ...)`; each stage waits
        # until it could have caught a rise of two points (bench/guardrails shows the trade).
        {"kind": "error_rate", "event": "error", "min_samples": 200, "detect": 0.02},
        {"kind": "latency", "event": "latency", "min_samples": 200, "margin": 20},
    ],
}


def seed(services: Services) -> bool:
    """Create the demo project unless it exists; True when it was created now."""
    try:
        services.projects.get(_SYSTEM, DEMO_PROJECT)
        return False
    except NotFoundError:
        pass
    services.projects.create(_SYSTEM, DEMO_PROJECT, "Demo shop", comment="fader serve --demo")
    services.segments.create(_SYSTEM, DEMO_PROJECT, "internal-users", _INTERNAL, "demo")
    for key, data in _FLAGS.items():
        services.flags.create(_SYSTEM, DEMO_PROJECT, key, dict(data), "demo")
    for (env, key), config in _CONFIGS.items():
        services.flags.put_config(_SYSTEM, DEMO_PROJECT, env, key, dict(config), 0, "demo")
    services.rollout_templates.create(
        _SYSTEM, DEMO_PROJECT, "staged-release", "Staged release", _STAGED_RELEASE, "demo"
    )
    return True
