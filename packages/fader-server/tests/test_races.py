"""Two identical requests at the same moment get the answers the API promises, never a 500.

Each race is run for many rounds on SQLite and on PostgreSQL, the two requests released at
once by a barrier from their own clients. On PostgreSQL both used to pass the "does it exist
yet?" check and the loser hit the database's unique constraint (a 500); now the per-project
write lock serialises them, the storage layer turns a unique violation it can foresee into the
domain error, and the store answers 409 for any it cannot (docs/adr/0005-project-write-lock.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from barrier_race import Racers, call, racers, repeat, statuses
from conftest import Server
from server_api import BOOLEAN_FLAG, create_flag, unique

ROUNDS = 30
USER_ROUNDS = 10
"""Each user creation hashes a password with argon2 (slow on purpose): fewer rounds."""


@pytest.fixture
def racing(server: Server) -> Iterator[Racers]:
    with racers(server) as found:
        yield found


def _one_of_each(
    responses: list[httpx.Response], success: int, refusal: int, kind: str
) -> list[str]:
    """Empty when one request succeeded and the other got the `kind` problem, else what came."""
    codes = statuses(responses)
    if sorted(codes) != sorted([success, refusal]):
        return [f"statuses {codes}: {[r.text for r in responses]}"]
    refused = responses[codes.index(refusal)]
    if refused.headers["content-type"] != "application/problem+json":
        return [f"refused without a problem: {refused.text}"]
    if refused.json()["type"] != f"urn:fader:problem:{kind}":
        return [f"refused as {refused.json()['type']}"]
    return []


def _created_once(url: str, body: dict[str, object], racing: Racers) -> list[str]:
    return _one_of_each(
        racing.race(*[call("POST", url, json=body)] * 2), 201, 409, "already-exists"
    )


def test_two_identical_flag_creates(project: str, racing: Racers) -> None:
    url = f"/api/v1/projects/{project}/flags"
    repeat(ROUNDS, lambda: _created_once(url, {"key": unique("twin"), **BOOLEAN_FLAG}, racing))


def test_two_identical_segment_creates(project: str, racing: Racers) -> None:
    url = f"/api/v1/projects/{project}/segments"
    repeat(ROUNDS, lambda: _created_once(url, {"key": unique("twin"), "included": ["u"]}, racing))


def test_two_identical_user_creates(racing: Racers) -> None:
    def play() -> list[str]:
        body = {"username": unique("twin"), "password": "a-long-enough-password"}
        return _created_once("/api/v1/users", body, racing)

    repeat(USER_ROUNDS, play)


def test_two_identical_project_creates(racing: Racers) -> None:
    """No service foresees this one: the store's last line of defence answers 409."""
    repeat(
        ROUNDS,
        lambda: _created_once("/api/v1/projects", {"key": unique("twin"), "name": "T"}, racing),
    )


def test_two_first_configurations_with_if_match_zero(
    admin: httpx.Client, project: str, racing: Racers
) -> None:
    def play() -> list[str]:
        flag = unique("first")
        create_flag(admin, project, key=flag)
        url = f"/api/v1/projects/{project}/environments/development/flags/{flag}"
        bodies = [
            {"enabled": True, "offVariant": "off", "default": {"variant": variant}}
            for variant in ("on", "off")
        ]
        responses = racing.race(
            *(call("PUT", url, json=b, headers={"If-Match": '"0"'}) for b in bodies)
        )
        found = _one_of_each(responses, 200, 412, "version-conflict")
        if found:
            return found
        winner = bodies[statuses(responses).index(200)]
        stored = admin.get(url)
        if (stored.headers["ETag"], stored.json()["default"]) != ('"1"', winner["default"]):
            return [f"stored {stored.headers['ETag']} {stored.text}, not the winner's {winner}"]
        return []

    repeat(ROUNDS, play)


def test_two_kill_switches_on_an_environment_never_configured(
    admin: httpx.Client, project: str, racing: Racers
) -> None:
    """The kill switch retries on a concurrent change, as it promises: both succeed, the flag
    ends on, and only one version was written (the second toggle found it on already)."""

    def play() -> list[str]:
        flag = unique("switch")
        create_flag(admin, project, key=flag)
        url = f"/api/v1/projects/{project}/environments/development/flags/{flag}"
        responses = racing.race(*[call("POST", url + "/toggle", json={"enabled": True})] * 2)
        if statuses(responses) != [200, 200]:
            return [f"statuses {statuses(responses)}: {[r.text for r in responses]}"]
        found = []
        if not all(r.json()["enabled"] is True for r in responses):
            found.append(f"answered {[r.text for r in responses]}")
        if admin.get(url).json()["enabled"] is not True:
            found.append("the flag is not on")
        versions = [v["version"] for v in admin.get(url + "/versions").json()]
        if versions != [1]:
            found.append(f"versions {versions}, not exactly one")
        return found

    repeat(ROUNDS, play)
