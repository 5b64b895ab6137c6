"""The flags the OFREP tests evaluate, and the admin-API steps that create and change them."""

from __future__ import annotations

from typing import Any

import httpx

NL = {"targetingKey": "user-1", "country": "NL"}

# key → (definition, production configuration)
FLAGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "banner": (
        {"type": "boolean", "variants": {"on": True, "off": False}, "client_side": True},
        {
            "enabled": True,
            "offVariant": "off",
            "rules": [
                {
                    "id": "nl",
                    "clauses": [{"attribute": "country", "op": "in", "values": ["NL"]}],
                    "variant": "on",
                }
            ],
            "default": {"variant": "off"},
        },
    ),
    "button-copy": (
        {
            "type": "string",
            "variants": {"control": "Buy now", "treatment": "Complete purchase"},
            "client_side": True,
        },
        {
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
    ),
    "page-size": (
        {"type": "number", "variants": {"normal": 50, "reduced": 20}},
        {"enabled": True, "offVariant": "normal", "default": {"variant": "normal"}},
    ),
    "discount": (
        {"type": "number", "variants": {"low": 0.25, "high": 0.75}},
        {
            "enabled": True,
            "offVariant": "low",
            "rules": [
                {
                    "clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}],
                    "variant": "high",
                }
            ],
            "default": {"variant": "low"},
        },
    ),
    "theme": (
        {"type": "object", "variants": {"dark": {"bg": "#000"}, "light": {"bg": "#fff"}}},
        {"enabled": False, "offVariant": "light", "default": {"variant": "dark"}},
    ),
    "regions": (
        {"type": "object", "variants": {"eu": ["NL", "DE"], "none": []}},
        {"enabled": True, "offVariant": "none", "default": {"variant": "eu"}},
    ),
}
CLIENT_SIDE = {"banner", "button-copy"}


def put_config(admin: httpx.Client, project: str, flag: str, config: dict[str, Any]) -> None:
    path = f"/api/v1/projects/{project}/environments/production/flags/{flag}"
    current = admin.get(path)
    written = admin.put(path, json=config, headers={"If-Match": current.headers["etag"]})
    assert written.status_code == 200, written.text


def new_key(admin: httpx.Client, project: str, kind: str, environment: str = "production") -> str:
    response = admin.post(
        "/api/v1/tokens",
        json={"kind": kind, "name": kind, "project": project, "environment": environment},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def toggle(admin: httpx.Client, project: str, flag: str, enabled: bool) -> None:
    response = admin.post(
        f"/api/v1/projects/{project}/environments/production/flags/{flag}/toggle",
        json={"enabled": enabled},
    )
    assert response.status_code == 200, response.text


def create_flags(admin: httpx.Client, project: str) -> None:
    """Every flag of `FLAGS`, configured in production (owner team "web")."""
    for key, (definition, config) in FLAGS.items():
        created = admin.post(
            f"/api/v1/projects/{project}/flags",
            json={"key": key, "name": key, "owner_team": "web", **definition},
        )
        assert created.status_code == 201, created.text
        put_config(admin, project, key, config)
