"""A minimal blocking server-sent-events reader for tests (the SDK has its own parser; the
server's tests read the wire format independently of it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Event:
    event: str = "message"
    id: str | None = None
    data: str = ""
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)


class EventReader:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()
        self.retry: int | None = None

    def next(self, *, comments: bool = False) -> Event:
        """The next event; with `comments`, a comment-only block (heartbeat) counts too."""
        current = Event()
        data: list[str] = []
        for line in self._lines:
            if line == "":
                if data or (comments and current.comments):
                    current.data = "\n".join(data)
                    return current
                current, data = Event(), []
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                current.comments.append(value)
            elif name == "event":
                current.event = value
            elif name == "id":
                current.id = value
            elif name == "data":
                data.append(value)
            elif name == "retry":
                current.retry = self.retry = int(value)
        raise EOFError("the stream ended")


@contextmanager
def open_stream(
    url: str,
    key: str,
    *,
    last_event_id: str | None = None,
    timeout: float = 10,
    patches: bool = False,
    path: str = "/api/v1/sdk/stream",
) -> Iterator[EventReader]:
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    with (
        httpx.Client(base_url=url, timeout=timeout) as client,
        client.stream(
            "GET", path, headers=headers, params={"patches": "true"} if patches else None
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        yield EventReader(response)
