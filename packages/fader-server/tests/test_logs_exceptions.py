"""Exceptions are logged as JSON with their type and traceback, and without secrets.

The real server over PostgreSQL, where a trigger makes inserting a user fail the way an
unexpected database error does (PL/pgSQL ``RAISE``, an error no code path maps): the request
gets a 500 problem, and the log gets the exception, whose message once carried the statement's
bind parameters, the new user's argon2 hash among them.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from conftest import LogSink, Server
from server_api import unique

from fader_server import logs

_TRIGGER = """
CREATE OR REPLACE FUNCTION fader_test_explode() RETURNS trigger AS $$
BEGIN
    IF NEW.username LIKE 'explode-%' THEN
        RAISE EXCEPTION 'forced failure inserting %', NEW.username;
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS fader_test_explode ON users;
CREATE TRIGGER fader_test_explode BEFORE INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION fader_test_explode();
"""


@pytest.fixture
def exploding_user_inserts(postgres_url: str) -> Iterator[None]:
    dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(_TRIGGER)
    try:
        yield
    finally:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute("DROP TRIGGER IF EXISTS fader_test_explode ON users")
            connection.execute("DROP FUNCTION IF EXISTS fader_test_explode()")


def _json_lines(sink: LogSink, *markers: str, timeout: float = 10) -> list[dict[str, Any]]:
    """The log lines holding every marker (waiting for them: the request's lines can trail
    its response by a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = sink.text().splitlines()
        found = [json.loads(line) for line in lines if all(m in line for m in markers)]
        if found:
            return found
        assert time.monotonic() < deadline, f"no log line with {markers}"
        time.sleep(0.05)


@pytest.mark.parametrize("server", ["postgresql"], indirect=True)
def test_an_unexpected_database_error_is_logged_with_its_type_and_traceback_but_no_secret(
    server: Server, admin: httpx.Client, log_sink: LogSink, exploding_user_inserts: None
) -> None:
    password = "pw-" + unique("never-logged")
    username = unique("explode")
    request_id = unique("boom")
    response = admin.post(
        "/api/v1/users",
        json={"username": username, "password": password},
        headers={"X-Request-ID": request_id},
    )
    assert response.status_code == 500
    assert response.json()["category"] == "fatal"
    assert request_id in response.json()["detail"]
    assert "forced failure" not in response.text  # internals stay in the log
    assert response.headers["x-request-id"] == request_id  # the edge is around the 500 too
    assert response.headers["x-content-type-options"] == "nosniff"

    (line,) = _json_lines(log_sink, f'"request_id": "{request_id}"', '"unhandled_error"')
    assert line["level"] == "error"
    assert line["exc_type"] == "sqlalchemy.exc.ProgrammingError"  # psycopg: RaiseException
    chain = line["exception"]
    assert {entry["exc_type"] for entry in chain} == {"ProgrammingError", "RaiseException"}
    message = " ".join(entry["exc_value"] for entry in chain)
    assert f"forced failure inserting {username}" in message
    assert "[SQL parameters hidden due to hide_parameters=True]" in message
    frames = [frame for entry in chain for frame in entry["frames"]]
    assert any(frame["name"] == "create_user" for frame in frames)
    assert all("locals" not in frame for frame in frames)

    # uvicorn's own report of the exception is a JSON line too, scrubbed the same way
    uvicorn = _json_lines(log_sink, "Exception in ASGI application")
    assert any(entry.get("exc_type") == "sqlalchemy.exc.ProgrammingError" for entry in uvicorn)
    logged = log_sink.text()
    assert "$argon2" not in logged
    assert password not in logged


def test_library_log_lines_are_json_and_scrubbed(log_sink: LogSink) -> None:
    """The standard-library loggers of the server (``fader.*``) and texts that look like
    secrets, wherever they are in a line."""
    stream = io.StringIO()
    logs.configure(stream)
    token = "fdr_srv_" + "A" * 43
    try:
        try:
            raise RuntimeError(f"could not use {token} for Bearer abc.def with $argon2id$v=19$xyz")
        except RuntimeError:
            logging.getLogger("fader.hub").exception("snapshot failed for %s", "web/production")
        logs.get_logger().warning("sql failed", detail="[parameters: {'secret': 'hunter2'}]")
    finally:
        # Logging is configured per process: hand it back to the sink the session's servers
        # write to (stdout here would silence them for every later test on this worker).
        logs.configure(log_sink)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "snapshot failed for web/production"
    assert first["level"] == "error"
    assert first["exc_type"] == "builtins.RuntimeError"
    text = json.dumps(first)
    assert token not in text
    assert "fdr_srv_[redacted]" in text
    assert "Bearer [redacted]" in text
    assert "$argon2" not in text
    assert second["detail"] == "[parameters: redacted]"
