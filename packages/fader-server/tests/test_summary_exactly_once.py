"""A summary counts once, however often it is sent (docs/events.md, section 2).

An SDK that posts a summary and loses the answer (the connection dropped after the server had
committed) cannot know whether it arrived, so it sends the same request again, id included.
The server keeps a receipt of each key's summary ids in the same transaction as the counts
and answers the second delivery ``duplicate`` without adding anything. Real servers over
SQLite and PostgreSQL; the lost answer is a transport that forwards the request to the server
and then raises, exactly what a connection reset after the commit looks like to the SDK.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
from conftest import Server
from ofrep_flags import new_key
from server_api import create_flag

from fader_sdk import FaderClient

FLAG = "new-checkout"


def body(count: int, summary_id: str | None) -> dict[str, Any]:
    sent: dict[str, Any] = {
        "start": time.time() - 5,
        "end": time.time(),
        "evaluations": [{"flag": FLAG, "variant": "on", "reason": "SPLIT", "count": count}],
        "metrics": [
            {
                "name": "errors",
                "flag": FLAG,
                "variant": "on",
                "count": 2,
                "sum": 2.0,
                "sum_squares": 2.0,
            }
        ],
    }
    if summary_id is not None:
        sent["id"] = summary_id
    return sent


def evaluations(admin: httpx.Client, project: str) -> int:
    response = admin.get(
        f"/api/v1/projects/{project}/flags/{FLAG}/usage",
        params={"environment": "production", "period": "1h"},
    )
    assert response.status_code == 200, response.text
    return int(response.json()["totals"]["evaluations"])


def test_the_same_summary_id_counts_once_per_key(
    server: Server, admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project, FLAG)
    key, other_key = new_key(admin, project, "server"), new_key(admin, project, "server")
    summary_id = secrets.token_hex(16)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as sdk:
        first = sdk.post("/api/v1/sdk/summaries", json=body(7, summary_id))
        again = sdk.post("/api/v1/sdk/summaries", json=body(7, summary_id))
        without_id = [sdk.post("/api/v1/sdk/summaries", json=body(1, None)) for _ in range(2)]
    assert first.status_code == 202, first.text
    assert first.json()["accepted"] == 2
    assert first.json()["duplicate"] is False
    assert again.status_code == 202, again.text
    assert again.json() == {"accepted": 0, "refused": [], "duplicate": True}
    assert [r.json()["duplicate"] for r in without_id] == [False, False]  # older SDKs
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {other_key}"}) as sdk:
        other = sdk.post("/api/v1/sdk/summaries", json=body(3, summary_id))
    assert other.json()["duplicate"] is False  # ids are per key: another key's id is its own
    assert evaluations(admin, project) == 7 + 1 + 1 + 3


def test_a_malformed_summary_id_is_a_problem_naming_it(
    server: Server, admin: httpx.Client, project: str
) -> None:
    key = new_key(admin, project, "server")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as sdk:
        response = sdk.post("/api/v1/sdk/summaries", json=body(1, "not an id!"))
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "id" in response.text


class AnswerLost(httpx.BaseTransport):
    """Forwards every request to the server; drops the answer of the first `lose` summaries
    after the server has handled them."""

    def __init__(self, lose: int) -> None:
        self._inner = httpx.HTTPTransport()
        self.lose = lose
        self.summary_ids: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if request.url.path == "/api/v1/sdk/summaries":
            response.read()
            import json

            self.summary_ids.append(json.loads(request.content)["id"])
            if self.lose > 0:
                self.lose -= 1
                raise httpx.ReadError("connection reset by peer", request=request)
        return response

    def close(self) -> None:
        self._inner.close()


def test_an_sdk_that_lost_the_answer_sends_again_and_nothing_counts_twice(
    server: Server, admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project, FLAG)
    key = new_key(admin, project, "server")
    transport = AnswerLost(lose=2)
    client = FaderClient(
        key, base_url=server.url, transport=transport, init_timeout=30, stream=False
    )
    try:
        assert client.wait_until_ready(30)
        for n in range(40):
            client.boolean(FLAG, {"targetingKey": f"user-{n}"}, False)
        client.flush()  # sent, answer lost
        client.flush()  # sent again (same id), answer lost again
        for n in range(5):
            client.boolean(FLAG, {"targetingKey": f"user-{n}"}, False)
        client.flush()  # sent again, answered "duplicate"; then the 5 newer ones
    finally:
        client.close()
    first, *rest = transport.summary_ids
    assert rest[:2] == [first, first]
    assert len(set(transport.summary_ids)) == 2
    assert evaluations(admin, project) == 45
    assert client.dropped_events == 0
