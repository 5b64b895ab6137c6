"""Console forms with JSON that cannot be stored or served: a message next to the field (or a
422 page for a NUL typed into any field, alike on SQLite and PostgreSQL), never a 500 page,
and nothing saved. Driven over HTTP against a real ``fader serve``, as a browser without
JavaScript posts the forms.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from web_console import (
    ADMIN,
    PASSWORD,
    Console,
    csrf_of,
    fader_serve,
    http_login,
    postgres_database,
    seed_project,
    unique,
)

from fader_engine.parse_limits import MAX_STRING_LENGTH, MAX_VALUE_DEPTH


@pytest.fixture(scope="module")
def pg_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with postgres_database() as url, fader_serve(tmp_path_factory.mktemp("pg"), url) as running:
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
def any_console(request: pytest.FixtureRequest) -> Console:
    name = "console" if request.param == "sqlite" else "pg_console"
    found: Console = request.getfixturevalue(name)
    return found


@contextmanager
def logged_in(console: Console) -> Iterator[httpx.Client]:
    with console.browser_client() as client:
        assert http_login(client, ADMIN, PASSWORD).status_code == 303
        yield client


def field_error(page: str, field: str) -> str:
    """The message shown next to the field (empty when there is none)."""
    match = re.search(
        rf'<p class="field-error" id="{re.escape(field)}-error"[^>]*>(.*?)</p>', page, re.DOTALL
    )
    assert match, f"no error element for {field}"
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(1))).replace("Error: ", "")


def post_new_flag(
    client: httpx.Client, project: str, key: str, value: str, name: str = "Bounded"
) -> httpx.Response:
    token = csrf_of(client.get(f"/projects/{project}/flags/_new").text)
    form = {
        "csrf_token": token,
        "key": key,
        "name": name,
        "kind": "release",
        "type": "object",
        "variants-0-name": "on",
        "variants-0-value": value,
        "variants-1-name": "off",
        "variants-1-value": "{}",
        "action": "save",
    }
    return client.post(f"/projects/{project}/flags/_new", data=form)


def exists(console: Console, project: str, flag: str) -> bool:
    with console.api() as api:
        return api.get(f"/api/v1/projects/{project}/flags/{flag}").status_code == 200


def nested(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (nested(100_000), "nests more than 64 levels"),
        (nested(70), "nests more than 64 levels of arrays and objects here (at /0/0/0"),
        (nested(MAX_VALUE_DEPTH + 1), f"values nest at most {MAX_VALUE_DEPTH} levels"),
        ('{"a": 1, "b": 2, "a": 3}', "The key 'a' appears more than once in this object"),
        ('{"a": "x\\u0000y"}', "contains a NUL character (U+0000)"),
    ],
    ids=["100000-levels", "70-levels", "past-the-engine-limit", "repeated-key", "escaped-nul"],
)
def test_variant_json_that_cannot_be_stored_is_a_message_next_to_the_field(
    console: Console, value: str, message: str
) -> None:
    project = seed_project(console)
    key = unique("bounded")
    with logged_in(console) as client:
        response = post_new_flag(client, project, key, value)
    assert response.status_code == 422, response.text[:2000]
    assert message in field_error(response.text, "variants-0-value")
    assert not exists(console, project, key)


def test_clause_values_that_cannot_be_stored_are_messages_next_to_the_field(
    console: Console,
) -> None:
    project = seed_project(console)
    with logged_in(console) as client:
        path = f"/projects/{project}/flags/new-checkout/rules"
        token = csrf_of(client.get(path, params={"env": "production"}).text)
        form = {
            "csrf_token": token,
            "env": "production",
            "off-variant": "off",
            "default-serve": "variant:off",
            "rules-0-serve": "variant:on",
            "rules-0-clauses-0-attribute": "plan",
            "rules-0-clauses-0-op": "in",
            "rules-0-clauses-0-values": "pro\n" + nested(100_000),
            "rules-0-clauses-1-attribute": "email",
            "rules-0-clauses-1-op": "in",
            "rules-0-clauses-1-values": '"a\\u0000b"',
        }
        checked = client.post(path + "/check", data=form)
        assert checked.status_code == 200, checked.text[:2000]
        problems = {p["field"]: p["message"] for p in checked.json()["problems"]}
        assert f"strings have at most {MAX_STRING_LENGTH:,}" in problems["rules-0-clauses-0-values"]
        assert "NUL character" in problems["rules-0-clauses-1-values"]

        saved = client.post(path, data={**form, "action": "save", "version": "1"})
        assert saved.status_code == 422, saved.text[:2000]
        assert "NUL character" in field_error(saved.text, "rules-0-clauses-1-values")


def test_a_nul_typed_into_a_field_is_refused_alike_on_both_backends(any_console: Console) -> None:
    project = seed_project(any_console)
    key = unique("nul")
    with logged_in(any_console) as client:
        response = post_new_flag(client, project, key, "{}", name="New\x00checkout")
    assert response.status_code == 422, response.text[:2000]
    assert "The field 'name' contains a NUL character (U+0000)" in html.unescape(response.text)
    assert not exists(any_console, project, key)
