"""Send HTTP requests at the same moment from several threads, each with its own client.

A race only shows when both requests reach the database together: each thread opens its own
connection to the server first, then all wait on one :class:`threading.Barrier` and send as
soon as it opens. Used by the concurrency tests (`test_concurrent_writes*.py`,
`test_races.py`), which repeat each race for many rounds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
from conftest import Server

from fader_engine.errors import ConfigurationError
from fader_engine.parse import parse_document

Request = Callable[[httpx.Client], httpx.Response]
ENVIRONMENTS = ("development", "staging", "production")


def call(method: str, url: str, **options: Any) -> Request:
    """A request to race, bound to its arguments now (not to loop variables at call time)."""

    def send(client: httpx.Client) -> httpx.Response:
        return client.request(method, url, **options)

    return send


class Racers:
    """One open client per racer, reused for every round of a test."""

    def __init__(self, clients: Sequence[httpx.Client]) -> None:
        self.clients = list(clients)

    def race(self, *requests: Request) -> list[httpx.Response]:
        """Run each request in its own thread, all released at once; the responses, in order.
        A request that raises fails the test with that exception."""
        assert len(requests) <= len(self.clients)
        barrier = threading.Barrier(len(requests))
        responses: list[httpx.Response | None] = [None] * len(requests)
        failures: list[BaseException] = []

        def run(index: int) -> None:
            client = self.clients[index]
            try:
                client.get("/healthz")  # the connection is open before the barrier
                barrier.wait(timeout=60)
                responses[index] = requests[index](client)
            except BaseException as exc:  # reported in the test's thread below
                failures.append(exc)
                barrier.abort()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        if failures:
            raise failures[0]
        assert all(r is not None for r in responses), "a racer did not finish"
        return [r for r in responses if r is not None]


@contextmanager
def racers(server: Server, count: int = 2, token: str | None = None) -> Iterator[Racers]:
    with ExitStack() as stack:
        clients = [
            stack.enter_context(server.client(token or server.admin_token)) for _ in range(count)
        ]
        yield Racers(clients)


def broken_documents(client: httpx.Client, project: str) -> list[str]:
    """Why each environment's stored document is not one the engine (and so every SDK) loads;
    empty when all of them load."""
    broken: list[str] = []
    for environment in ENVIRONMENTS:
        response = client.get(f"/api/v1/projects/{project}/environments/{environment}/document")
        if response.status_code != 200:
            broken.append(f"{environment}: {response.status_code} {response.text}")
            continue
        try:
            parse_document(response.json())
        except ConfigurationError as exc:
            broken.append(f"{environment}: {exc}")
    return broken


def repeat(rounds: int, play: Callable[[], list[str]]) -> None:
    """Play `rounds` rounds of a race; fail with how many broke, and why the first ones did."""

    def play_once() -> list[str]:
        try:
            return play()
        except httpx.TransportError as exc:  # the server dropped the connection: a crash
            return [f"{type(exc).__name__}: {exc}"]

    failures = [(i, found) for i in range(rounds) if (found := play_once())]
    assert not failures, f"{len(failures)} of {rounds} rounds went wrong; first: {failures[:3]}"


def statuses(responses: Sequence[httpx.Response]) -> list[int]:
    return [r.status_code for r in responses]
