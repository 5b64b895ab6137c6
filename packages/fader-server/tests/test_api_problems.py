"""Error responses as the OpenAPI document promises them: problem details, declared per status."""

from __future__ import annotations

import httpx
from conftest import Server


def test_every_admin_operation_declares_its_problem_responses(server: Server) -> None:
    with server.client() as client:
        document = client.get("/openapi.json").json()
    assert "Problem" in document["components"]["schemas"]
    admin = {p: ops for p, ops in document["paths"].items() if p.startswith("/api/v1/projects")}
    assert admin
    for path, operations in admin.items():
        for method, operation in operations.items():
            for status in ("400", "401", "403", "404", "422", "503"):
                declared = operation["responses"].get(status)
                assert declared, f"{method.upper()} {path} does not declare {status}"
                schema = declared["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}
    unauthenticated = admin["/api/v1/projects"]["get"]["responses"]["401"]
    assert unauthenticated["headers"]["WWW-Authenticate"]["required"] is True


def test_body_that_is_not_utf8_is_a_400_problem_saying_how_to_fix_it(
    admin: httpx.Client, project: str
) -> None:
    response = admin.post(
        f"/api/v1/projects/{project}/flags",
        content=b'{"key": "\xff\xfe"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["category"] == "user_fixable"
    assert "UTF-8 JSON" in problem["detail"]
