"""Values a database refuses are the request's fault: a 422 problem, never a 500."""

from __future__ import annotations

import httpx
from conftest import Server


def test_nul_character_anywhere_is_a_problem_never_a_server_error(
    server: Server, admin: httpx.Client, project: str
) -> None:
    lookup = admin.get(f"/api/v1/projects/{project}/flags/new%00checkout")
    login = admin.post(
        "/api/v1/auth/login",
        json={"username": "ad\u0000min", "password": "whatever"},
        headers={"X-Forwarded-For": "198.51.100.7"},
    )
    created = admin.post(
        f"/api/v1/projects/{project}/segments", json={"key": "beta", "name": "Be\u0000ta"}
    )
    if server.backend == "postgresql":  # PostgreSQL text cannot hold NUL at all
        for response in (lookup, login, created):
            assert response.status_code == 422, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert "NUL" in response.json()["detail"]
        assert admin.get(f"/api/v1/projects/{project}/segments/beta").status_code == 404
    else:  # SQLite stores it like any other character
        assert lookup.status_code == 404
        assert login.status_code == 401
        assert created.status_code == 201
