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
    # PostgreSQL text cannot hold NUL at all and SQLite can: both refuse it the same way, as a
    # problem naming where it was, so data never depends on the backend.
    for response, where in ((lookup, "/path"), (login, "/body/username"), (created, "/body/name")):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["category"] == "user_fixable"
        assert [e["path"] for e in problem["errors"]] == [where]
        assert "NUL" in problem["errors"][0]["message"]
    assert admin.get(f"/api/v1/projects/{project}/segments/beta").status_code == 404
