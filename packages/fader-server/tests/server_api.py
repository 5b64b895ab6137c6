"""Test data and small API steps shared by the server's tests."""

from __future__ import annotations

import uuid

import httpx


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


BOOLEAN_FLAG = {
    "name": "New checkout",
    "description": "Single-page checkout",
    "tags": ["checkout", "web"],
    "kind": "release",
    "type": "boolean",
    "variants": {"on": True, "off": False},
    "owner_team": "payments",
}


def create_flag(client: httpx.Client, project: str, key: str = "new-checkout", **extra: object):
    response = client.post(
        f"/api/v1/projects/{project}/flags", json={"key": key, **BOOLEAN_FLAG, **extra}
    )
    assert response.status_code == 201, response.text
    return response
