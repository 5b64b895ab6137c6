"""Request bodies are taken as the schema types them: no coercion, no number beyond storage."""

from __future__ import annotations

import base64

import httpx
import pytest
from server_api import create_flag

from fader_server.api.schemas import MAX_INTEGER


def _invalid_at(response: httpx.Response, path: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert path in [e["path"] for e in response.json()["errors"]]


@pytest.mark.parametrize("protected", [0, "true", "yes"])
def test_boolean_fields_take_only_json_booleans(
    admin: httpx.Client, project: str, protected: object
) -> None:
    response = admin.post(
        f"/api/v1/projects/{project}/environments",
        json={"key": "qa", "name": "QA", "protected": protected},
    )
    _invalid_at(response, "/body/protected")
    assert admin.get(f"/api/v1/projects/{project}/environments/qa").status_code == 404


def test_toggle_refuses_a_string_for_enabled_instead_of_guessing(
    admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project)
    url = f"/api/v1/projects/{project}/environments/development/flags/new-checkout"
    _invalid_at(admin.post(url + "/toggle", json={"enabled": "off"}), "/body/enabled")
    assert admin.get(url).json()["version"] == 0


def test_numbers_and_nested_booleans_are_not_coerced_from_strings(
    admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project)
    url = f"/api/v1/projects/{project}/environments/development/flags/new-checkout"
    split = {"weights": [{"variant": "on", "weight": "50"}, {"variant": "off", "weight": 50}]}
    config = {"enabled": True, "offVariant": "off", "default": {"split": split}}
    response = admin.put(url, json=config, headers={"If-Match": '"0"'})
    _invalid_at(response, "/body/default/split/weights/0/weight")
    segment = {"key": "s", "rules": [{"clauses": [{"op": "in", "values": [], "negate": 0}]}]}
    response = admin.post(f"/api/v1/projects/{project}/segments", json=segment)
    _invalid_at(response, "/body/rules/0/clauses/0/negate")


def test_integer_weights_are_still_numbers(admin: httpx.Client, project: str) -> None:
    create_flag(admin, project)
    url = f"/api/v1/projects/{project}/environments/development/flags/new-checkout"
    split = {"weights": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50.0}]}
    config = {"enabled": True, "offVariant": "off", "default": {"split": split}}
    assert admin.put(url, json=config, headers={"If-Match": '"0"'}).status_code == 200


@pytest.mark.parametrize(
    "expires_at", ["2031-01-01T00:00:00", "2031-01-01", 1924992000, "1924992000"]
)
def test_token_expiry_must_be_an_rfc3339_date_time_with_offset(
    admin: httpx.Client, expires_at: object
) -> None:
    token = {"kind": "admin", "name": "ci", "expires_at": expires_at}
    _invalid_at(admin.post("/api/v1/tokens", json=token), "/body/expires_at")


def test_token_expiry_with_offset_is_kept_in_utc(admin: httpx.Client) -> None:
    token = {"kind": "admin", "name": "ci", "expires_at": "2031-01-01T02:00:00+02:00"}
    response = admin.post("/api/v1/tokens", json=token)
    assert response.status_code == 201, response.text
    assert response.json()["expires_at"].startswith("2031-01-01T00:00:00")


def test_ids_and_versions_beyond_32_bits_are_422_not_500(admin: httpx.Client, project: str) -> None:
    create_flag(admin, project)
    revert = admin.post(
        f"/api/v1/projects/{project}/flags/new-checkout/revert",
        json={"version": MAX_INTEGER + 1},
    )
    _invalid_at(revert, "/body/version")
    _invalid_at(admin.delete(f"/api/v1/tokens/{2**63 - 1}"), "/path/token_id")
    assert admin.delete(f"/api/v1/tokens/{MAX_INTEGER}").status_code == 404


@pytest.mark.parametrize("last_key", [str(MAX_INTEGER + 1), "²"])
def test_numeric_cursor_that_no_page_issued_is_422(
    admin: httpx.Client, project: str, last_key: str
) -> None:
    cursor = base64.urlsafe_b64encode(last_key.encode()).decode()
    response = admin.get(f"/api/v1/projects/{project}/audit", params={"cursor": cursor})
    _invalid_at(response, "/query/cursor")
