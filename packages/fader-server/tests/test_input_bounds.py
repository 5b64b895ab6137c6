"""Bounded input against a real server, on SQLite and PostgreSQL: request bodies are capped
before they are read (413), JSON bodies are read strictly (repeated keys 400; nesting and NUL
characters 422 with the path), and the engine's document limits (docs/flag-format.md,
"Limits") answer 422 with the path of what is too large. Nothing is committed that could not
be read back and served.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import Server
from server_api import unique

from fader_engine.parse_limits import MAX_RULES, MAX_SEGMENT_KEYS, MAX_VALUE_DEPTH

MIB = 1024 * 1024
JSON_TYPE = {"Content-Type": "application/json"}


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def object_flag(key: str, on: Any) -> dict[str, Any]:
    return {"key": key, "name": key, "type": "object", "variants": {"on": on, "off": {}}}


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["type"] == f"urn:fader:problem:{slug}"
    assert problem["category"] == "user_fixable"
    return problem


def assert_readable(admin: httpx.Client, project: str, flag: str | None = None) -> None:
    """Everything that lists or serves what was written still answers 200."""
    paths = [f"/api/v1/projects/{project}/flags", f"/api/v1/projects/{project}/audit"]
    if flag is not None:
        paths += [
            f"/api/v1/projects/{project}/flags/{flag}",
            f"/api/v1/projects/{project}/flags/{flag}/versions",
            f"/api/v1/projects/{project}/environments/production/flags/{flag}/versions",
        ]
    for path in paths:
        assert admin.get(path).status_code == 200, path


# --------------------------------------------------------------------------- body size
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/auth/login",
        "/api/v1/sdk/summaries",
        "/api/v1/sdk/events",
        "/ofrep/v1/evaluate/flags",
    ],
)
def test_a_body_over_the_cap_is_a_413_problem_before_any_credential_check(
    server: Server, path: str
) -> None:
    body = b'{"username": "admin", "password": "' + b"x" * (2 * MIB) + b'"}'
    with server.client() as client:
        response = client.post(path, content=body, headers=JSON_TYPE)
    problem = assert_problem(response, 413, "body-too-large")
    assert "1,048,576 bytes" in problem["detail"]
    assert "FADER_MAX_BODY_BYTES" in problem["detail"]


def test_a_chunked_body_is_counted_and_refused_at_the_cap(server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"username": "admin", "password": "'
        for _ in range(4):
            yield b"x" * (MIB // 2)
        yield b'"}'

    with server.client() as client:
        response = client.post("/api/v1/auth/login", content=chunks(), headers=JSON_TYPE)
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "body-too-large")


def test_the_cap_is_exactly_the_setting(admin: httpx.Client) -> None:
    key = unique("p")
    text = json.dumps({"key": key, "name": "padded"})
    just_fits = text + " " * (MIB - len(text))
    response = admin.post("/api/v1/projects", content=just_fits, headers=JSON_TYPE)
    assert response.status_code == 201, response.text
    one_more = json.dumps({"key": unique("p"), "name": "padded"})
    one_more += " " * (MIB + 1 - len(one_more))
    assert_problem(
        admin.post("/api/v1/projects", content=one_more, headers=JSON_TYPE), 413, "body-too-large"
    )


# --------------------------------------------------------------------------- nesting
def test_a_variant_nested_260_levels_is_refused_and_the_project_stays_readable(
    admin: httpx.Client, project: str
) -> None:
    key = unique("deep")
    response = admin.post(f"/api/v1/projects/{project}/flags", json=object_flag(key, nested(260)))
    problem = assert_problem(response, 422, "invalid")
    assert problem["errors"][0]["path"].startswith("/body/variants/on/0/0/0")
    assert admin.get(f"/api/v1/projects/{project}/flags/{key}").status_code == 404
    assert_readable(admin, project)


def test_a_variant_past_the_engine_limit_is_a_422_at_the_level_too_deep(
    admin: httpx.Client, project: str
) -> None:
    key = unique("deep")
    fits = admin.post(
        f"/api/v1/projects/{project}/flags", json=object_flag(key, nested(MAX_VALUE_DEPTH))
    )
    assert fits.status_code == 201, fits.text
    assert_readable(admin, project, key)

    too_deep = object_flag(unique("deep"), {"config": nested(MAX_VALUE_DEPTH)})
    response = admin.post(f"/api/v1/projects/{project}/flags", json=too_deep)
    problem = assert_problem(response, 422, "invalid")
    expected = f"/flags/{too_deep['key']}/variants/on/config" + "/0" * (MAX_VALUE_DEPTH - 1)
    assert {e["path"] for e in problem["errors"]} == {expected}
    assert all(f"at most {MAX_VALUE_DEPTH} levels" in e["message"] for e in problem["errors"])


@pytest.mark.parametrize(
    "path",
    ["/api/v1/projects", "/api/v1/auth/login", "/api/v1/sdk/summaries", "/api/v1/sdk/events"],
)
def test_a_body_nested_100000_levels_is_a_422_problem(server: Server, path: str) -> None:
    with server.admin() as client:
        response = client.post(path, content="[" * 100_000 + "]" * 100_000, headers=JSON_TYPE)
    problem = assert_problem(response, 422, "invalid")
    assert problem["errors"] == [
        {"path": "/body", "message": "the value nests more than 64 levels of arrays and objects"}
    ]


# --------------------------------------------------------------------------- repeated keys
def test_a_key_named_twice_is_a_400_naming_it_and_nothing_is_created(
    admin: httpx.Client, project: str
) -> None:
    key = unique("twice")
    text = (
        f'{{"key": "{key}", "name": "Twice", "type": "boolean", '
        '"variants": {"on": true, "off": false, "on": false}}'
    )
    response = admin.post(f"/api/v1/projects/{project}/flags", content=text, headers=JSON_TYPE)
    problem = assert_problem(response, 400, "duplicate-key")
    assert "'on'" in problem["detail"]
    assert problem["errors"] == [
        {
            "path": "/body/variants",
            "message": "the key 'on' appears more than once in this object; name each key once",
        }
    ]
    assert admin.get(f"/api/v1/projects/{project}/flags/{key}").status_code == 404


# --------------------------------------------------------------------------- NUL characters
def test_a_nul_character_is_refused_alike_on_both_backends(
    admin: httpx.Client, project: str
) -> None:
    response = admin.post(
        "/api/v1/projects", content='{"key": "nul", "name": "a\\u0000b"}', headers=JSON_TYPE
    )
    problem = assert_problem(response, 422, "invalid")
    assert [e["path"] for e in problem["errors"]] == ["/body/name"]
    assert "NUL character" in problem["errors"][0]["message"]

    key = unique("nul")
    flag = {"key": key, "name": "N", "type": "string", "variants": {"a": "x\x00y", "b": "z"}}
    response = admin.post(f"/api/v1/projects/{project}/flags", json=flag)
    problem = assert_problem(response, 422, "invalid")
    assert [e["path"] for e in problem["errors"]] == ["/body/variants/a"]
    assert admin.get(f"/api/v1/projects/{project}/flags/{key}").status_code == 404

    response = admin.get(f"/api/v1/projects/{project}/flags", params={"q": "a\x00"})
    problem = assert_problem(response, 422, "invalid")
    assert [e["path"] for e in problem["errors"]] == ["/query/q"]


# --------------------------------------------------------------------------- counts
def test_more_rules_than_the_limit_is_a_422_at_the_rules(admin: httpx.Client, project: str) -> None:
    key = unique("rules")
    created = admin.post(
        f"/api/v1/projects/{project}/flags",
        json={"key": key, "name": "R", "type": "boolean", "variants": {"on": True, "off": False}},
    )
    assert created.status_code == 201, created.text
    path = f"/api/v1/projects/{project}/environments/development/flags/{key}"

    def config(rules: int) -> dict[str, Any]:
        rule = {"clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}], "variant": "on"}
        return {
            "enabled": True,
            "offVariant": "off",
            "rules": [rule] * rules,
            "default": {"variant": "off"},
        }

    response = admin.put(path, json=config(MAX_RULES + 1), headers={"If-Match": '"0"'})
    problem = assert_problem(response, 422, "invalid")
    assert [e["path"] for e in problem["errors"]] == [f"/flags/{key}/rules"]
    assert f"at most {MAX_RULES:,}" in problem["errors"][0]["message"]
    response = admin.put(path, json=config(MAX_RULES), headers={"If-Match": '"0"'})
    assert response.status_code == 200, response.text
    assert_readable(admin, project, key)


def test_more_segment_keys_than_the_limit_is_a_422_at_the_list(
    admin: httpx.Client, project: str
) -> None:
    key = unique("seg")
    segment = {"key": key, "included": [f"u{i}" for i in range(MAX_SEGMENT_KEYS + 1)]}
    response = admin.post(f"/api/v1/projects/{project}/segments", json=segment)
    problem = assert_problem(response, 422, "invalid")
    assert {e["path"] for e in problem["errors"]} == {f"/segments/{key}/included"}
    assert admin.get(f"/api/v1/projects/{project}/segments/{key}").status_code == 404
