"""The server-sent-events client for ``GET /api/v1/sdk/stream``, with its polling fallback.

Why parse SSE ourselves: the format is a dozen lines of spec, and owning it keeps the runtime
dependencies to httpx and lets tests drive the parser without sockets.
Spec: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

Reconnect policy (after LaunchDarkly's streaming source):
- The read timeout is 2.5 heartbeat intervals: a proxy that silently stops forwarding bytes
  shows up as a `ReadTimeout`, and we reconnect instead of serving stale flags forever.
- Every reconnect sends ``Last-Event-ID`` so the server can skip the full snapshot.
- The stream is requested with ``?patches=true``: a change may then arrive as a `patch` event
  carrying only the changed entries, valid on top of version `base` only. A patch the SDK
  cannot apply (not at `base`, malformed) ends the connection, and the reconnect's
  ``Last-Event-ID`` is the version the SDK really holds, so the server sends a full snapshot:
  one resync instead of guessing, and never a patch applied to the wrong document.
- Delays come from :class:`~fader_sdk.backoff.Backoff` (full jitter, reset after a stable
  connection); the server's ``retry:`` field sets the base; ``Retry-After`` is a floor.
- :mod:`fader_sdk.retry` decides what is retryable; anything else stops the source for good.
- Consecutive failures trip a :class:`~fader_sdk.breaker.CircuitBreaker`; while it is open the
  source polls instead, and probes the stream again once the cool-down has elapsed, or at once
  when a poll gets through after the server was unreachable (a restart or an outage is over,
  so the stream will work again: no reason to stay on polling for the rest of the cool-down).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

import httpx

from fader_sdk import retry
from fader_sdk.backoff import Backoff
from fader_sdk.breaker import BreakerState, CircuitBreaker
from fader_sdk.flag_set import FlagSet, Origin
from fader_sdk.holder import FlagSetHolder
from fader_sdk.sources import STREAM_PARAMS, STREAM_PATH
from fader_sdk.sources.polling import PollingSource

log = logging.getLogger("fader_sdk")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None


class SSEParser:
    """Turns lines of an event stream into events; keeps `last_event_id` and `retry_ms`."""

    def __init__(self, last_event_id: str | None = None) -> None:
        self.last_event_id = last_event_id
        self.retry_ms: int | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerSentEvent | None:
        """One line without its terminator; returns an event when a blank line completes one."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: heartbeats; the read itself already proved liveness
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None  # unknown fields are ignored, as the spec says

    def _dispatch(self) -> ServerSentEvent | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return ServerSentEvent(event, "\n".join(data), self.last_event_id)

    def parse(self, lines: Iterable[str]) -> Iterator[ServerSentEvent]:
        for line in lines:
            event = self.feed(line.removesuffix("\n").removesuffix("\r"))
            if event is not None:
                yield event


class Outcome(StrEnum):
    """How one stream connection ended."""

    DROPPED = "dropped"
    """It worked for a while, then ended or went quiet: reconnect."""
    FAILED = "failed"
    """It could not be established (or broke at once): reconnect, and count it."""
    FATAL = "fatal"
    """Retrying cannot help (e.g. a rejected key): stop."""
    CLOSED = "closed"
    """The client is closing."""


class StreamingSource:
    """Keeps one SSE connection open, reconnecting and falling back to polling as needed."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        heartbeat_interval: float = 15.0,
        connect_timeout: float = 10.0,
        backoff: Backoff | None = None,
        breaker: CircuitBreaker | None = None,
        poller: PollingSource | None = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self._http = http
        self.read_timeout = 2.5 * heartbeat_interval
        self._connect_timeout = connect_timeout
        self.backoff = backoff or Backoff()
        self.breaker = breaker or CircuitBreaker()
        self._poller = poller or PollingSource(http)
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._thread: threading.Thread | None = None
        self._response: httpx.Response | None = None
        self._last_failure: retry.Failure | None = None
        self._unreachable = False  # the server could not be reached, or polls failed: down
        self.last_event_id: str | None = None

    # -- one connection ---------------------------------------------------------------------

    def connect_once(self, holder: FlagSetHolder) -> Outcome:
        """Open the stream and apply its events until it ends; never raises on I/O."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        current = holder.current
        if self.last_event_id is None and current is not None and current.origin is Origin.SERVER:
            self.last_event_id = str(current.version)
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        timeout = httpx.Timeout(self._connect_timeout, read=self.read_timeout)
        parser = SSEParser(self.last_event_id)
        received = False
        try:
            with self._http.stream(
                "GET", STREAM_PATH, params=STREAM_PARAMS, headers=headers, timeout=timeout
            ) as resp:
                self._response = resp
                if self._stop.is_set():
                    return Outcome.CLOSED
                if resp.status_code != 200:
                    resp.read()
                    return self._failed(holder, retry.from_response(resp))
                failure = retry.Failure(True, "the server ended the stream")
                for line in resp.iter_lines():
                    if not received:
                        received = True
                        self._unreachable = False
                        self.breaker.record_success()
                        self.backoff.connected()
                    event = parser.feed(line)
                    if parser.retry_ms is not None:
                        self.backoff.base = parser.retry_ms / 1000
                    if event is not None:
                        unusable = self._apply(holder, event)
                        if unusable is not None:
                            # Resume from what the holder has (connect_once reads it when
                            # this is None), not from this event's id: the server then sends
                            # a full snapshot. A drop, not a failure: the stream works.
                            self.last_event_id = None
                            failure = retry.Failure(True, unusable)
                            break
                        self.last_event_id = parser.last_event_id
        except httpx.ReadTimeout:
            failure = retry.Failure(True, f"no heartbeat for {self.read_timeout:g} s; reconnecting")
        except httpx.HTTPError as error:
            failure = retry.from_exception(error)
        finally:
            self._response = None
        if self._stop.is_set():
            return Outcome.CLOSED
        if not received:
            return self._failed(holder, failure)
        self.backoff.disconnected()
        self._last_failure = failure
        log.info("fader: stream dropped: %s", failure.message)
        return Outcome.DROPPED

    def _apply(self, holder: FlagSetHolder, event: ServerSentEvent) -> str | None:
        """Apply one event; returns why the connection must be resynchronised, if it must."""
        if event.event == "patch":
            return self._apply_patch(holder, event)
        if event.event not in ("snapshot", "change"):
            return None  # forward compatible: unknown events are not errors
        try:
            flag_set = FlagSet.from_wire(json.loads(event.data), Origin.SERVER)
        except Exception as error:  # keep serving the previous configuration
            log.warning("fader: ignoring unusable %s event %s: %s", event.event, event.id, error)
            return None
        holder.replace(flag_set)
        return None

    def _apply_patch(self, holder: FlagSetHolder, event: ServerSentEvent) -> str | None:
        """Apply a `patch` event on top of the held server flag set at its `base`.

        Unlike an unusable `change`, an unusable patch cannot just be skipped: every later
        patch builds on its version, so the SDK would fall behind for good. The caller ends
        the connection instead and resumes from the held version, which gets a full snapshot.
        """
        current = holder.current
        try:
            payload = json.loads(event.data)
            if not isinstance(payload, dict):
                raise ValueError("patch is not a JSON object")
            base = payload.get("base")
            if current is None or current.origin is not Origin.SERVER or current.version != base:
                held = "nothing" if current is None else f"{current.origin} {current.version}"
                reason = f"patch {event.id} applies to version {base}, but the SDK holds {held}"
                log.warning("fader: %s; reconnecting for a full snapshot", reason)
                return reason
            flag_set = current.patched(payload)
        except Exception as error:  # keep serving the previous configuration
            reason = f"unusable patch event {event.id}: {error}"
            log.warning("fader: %s; reconnecting for a full snapshot", reason)
            return reason
        holder.replace(flag_set)
        return None

    def _failed(self, holder: FlagSetHolder, failure: retry.Failure) -> Outcome:
        self._last_failure = failure
        self._unreachable = self._unreachable or failure.unreachable
        if not failure.retryable:
            log.error("fader: stopped receiving flag updates: %s", failure.message)
            holder.fail(failure.message)
            return Outcome.FATAL
        self.breaker.record_failure()
        log.warning("fader: stream unavailable, serving last known flags: %s", failure.message)
        return Outcome.FAILED

    # -- the loop ---------------------------------------------------------------------------

    def run(self, holder: FlagSetHolder) -> None:
        """Stream (or poll, while the breaker is open) until closed or a fatal failure."""
        while not self._stop.is_set():
            if self.breaker.allow():
                outcome = self.connect_once(holder)
                if outcome in (Outcome.FATAL, Outcome.CLOSED):
                    return
                delay = self.backoff.next_delay()
                if self._last_failure is not None and self._last_failure.retry_after:
                    delay = max(delay, self._last_failure.retry_after)
                if self.breaker.state is BreakerState.OPEN:
                    log.warning("fader: stream keeps failing; polling until it recovers")
                    delay = 0.0  # poll at once; the breaker decides when to probe again
            else:
                result = self._poller.poll_once(holder)
                delay = self._poller.interval
                if result.failure is not None:
                    if not result.failure.retryable:
                        log.error(
                            "fader: stopped receiving flag updates: %s", result.failure.message
                        )
                        return
                    self._unreachable = True
                    delay = max(delay, result.failure.retry_after or 0.0)
                elif self._unreachable:
                    self._unreachable = False
                    self.breaker.record_recovery()
                    log.info("fader: the server answers again; reconnecting the stream")
                    delay = 0.0
            if delay > 0:
                self._sleep(delay)

    def start(self, holder: FlagSetHolder) -> None:
        self._thread = threading.Thread(
            target=self.run, args=(holder,), name="fader-streaming", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop the loop, interrupting a read blocked on the open stream, and wait for it.

        An idle stream's reader sits in a socket read until the next heartbeat or the read
        timeout (2.5 heartbeats: 37.5 s by default). Closing the response from this thread
        does not wake it: closing a socket's descriptor leaves another thread's blocked
        ``recv`` blocked on Linux. Shutting the socket down does: the read returns at once and
        the reader, seeing `_stop`, ends the connection itself. The join's timeout is only a
        safety net for a transport without a socket (then the response is closed instead).
        """
        self._stop.set()
        response = self._response
        if response is not None:
            _interrupt(response)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()


def _interrupt(response: httpx.Response) -> None:
    """Wake a thread blocked reading `response` (see :meth:`StreamingSource.close`)."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):  # already closed or reset: the reader wakes anyway
            sock.shutdown(socket.SHUT_RDWR)
        return
    try:
        response.close()
    except Exception:  # closing from another thread may race the reader; harmless
        log.debug("fader: error while closing the stream", exc_info=True)
