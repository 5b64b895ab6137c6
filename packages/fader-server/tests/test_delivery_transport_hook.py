"""The contract between ``fader serve``'s direct stream writes and the installed uvicorn.

:class:`~fader_server.http_protocol.TransportExposingProtocol` subclasses a class uvicorn does not
document. These tests run the real protocol class (no mock: a real connection, uvicorn's own
parser and response code, the event loop's real transports) on both event loops and fail with
uvicorn's version and the list of what is relied on when an upgrade breaks it. They also show
that a broken hook is detected rather than trusted, and that ``fader serve`` then falls back to
plain ASGI streams with a warning instead of failing. That ``fader serve`` does take the direct
path when the hook works is checked end to end in ``test_sdk_faults.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

import pytest
import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from fader_server import http_protocol
from fader_server.http_protocol import (
    FALLBACK,
    RELIED_ON,
    TransportExposingProtocol,
    hook_problem,
    serving_protocol,
)

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


@pytest.mark.parametrize("loop", list(LOOPS))
def test_the_installed_uvicorn_exposes_the_transport_and_takes_direct_writes(loop: str) -> None:
    problem = hook_problem(TransportExposingProtocol, LOOPS[loop])
    assert problem is None, (
        f"fader serve's direct stream writes do not work with uvicorn {uvicorn.__version__} on "
        f"{loop}; fix fader_server/http_protocol.py or pin uvicorn back to the tested range in "
        f"packages/fader-server/pyproject.toml.\n{problem}"
    )


def test_the_default_check_uses_the_loop_uvicorn_runs() -> None:
    """What ``fader serve`` checks at start (uvloop here, as ``uvicorn.run`` picks it)."""
    assert hook_problem() is None
    assert serving_protocol() is TransportExposingProtocol


class ScopeWithoutTransport(HttpToolsProtocol):
    """A hook that no longer takes: the request scope is built, the extension never added (as
    when uvicorn stops calling ``on_message_begin`` or builds the scope elsewhere)."""


class ScopeBuiltLater(HttpToolsProtocol):
    """A hook that fails inside the parser's callback (as when ``self.scope`` is no longer
    built by ``on_message_begin``): uvicorn answers 400 and the application never runs."""

    def on_message_begin(self) -> None:
        self.scope = None  # type: ignore[assignment]
        self.scope.setdefault("extensions", {})  # type: ignore[attr-defined]


class WrongTransport(TransportExposingProtocol):
    """A hook that exposes something other than the connection's transport."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"]["fader.transport"] = {"transport": object()}  # type: ignore[typeddict-item]


@pytest.mark.parametrize(
    ("broken", "what"),
    [
        (ScopeWithoutTransport, "no extensions['fader.transport']"),
        (ScopeBuiltLater, "did not reach the application"),
        (WrongTransport, "is not the connection's transport"),
    ],
)
def test_a_broken_hook_is_reported_with_uvicorns_version_and_what_is_relied_on(
    broken: type[HttpToolsProtocol], what: str
) -> None:
    problem = hook_problem(broken, asyncio.new_event_loop)
    assert problem is not None, f"{broken.__name__} must not pass the check"
    assert what in problem
    assert f"uvicorn {uvicorn.__version__}" in problem
    for assumption in RELIED_ON:
        assert assumption in problem
    assert "on_message_begin" in problem
    assert "self.scope" in problem
    assert "self.transport" in problem


def test_direct_writes_that_ignore_the_transports_buffer_are_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check sends more than the socket takes at once through ASGI, then writes directly:
    a fan-out (or an event loop) that let a direct write overtake the bytes still waiting in
    the transport would corrupt streams, and is reported."""

    class Overtaking:
        def __init__(self, writers: int = 1) -> None:
            del writers

        def write(self, sinks: list[http_protocol.Sink], data: bytes) -> list[object]:
            for sink in sinks:
                with contextlib.suppress(BlockingIOError):
                    os.write(sink.fd, data)
            return []

    monkeypatch.setattr(http_protocol, "Fanout", Overtaking)
    for factory in LOOPS.values():
        problem = hook_problem(TransportExposingProtocol, factory)
        assert problem is not None
        assert "direct writes" in problem


def test_fader_serve_falls_back_to_plain_asgi_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="fader.streams"):
        chosen = serving_protocol(ScopeWithoutTransport)
    assert chosen == FALLBACK == "auto"
    warnings = [r.getMessage() for r in caplog.records if r.name == "fader.streams"]
    assert len(warnings) == 1
    assert "sent through ASGI" in warnings[0]
    assert f"uvicorn {uvicorn.__version__}" in warnings[0]
