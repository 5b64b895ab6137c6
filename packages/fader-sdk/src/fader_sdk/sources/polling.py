"""Polling ``GET /api/v1/sdk/flags`` with ``ETag`` / ``If-None-Match``.

Used on its own (``stream=False``) and as the streaming source's fallback while its breaker is
open. A 304 costs the server almost nothing, so polling at a steady interval is cheap; failures
do not shorten the interval (that would turn an outage into a stampede), and a ``Retry-After``
longer than the interval is honoured.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from fader_sdk import retry
from fader_sdk.flag_set import FlagSet, Origin
from fader_sdk.holder import FlagSetHolder
from fader_sdk.sources import FLAGS_PATH

log = logging.getLogger("fader_sdk")


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll did: `changed` when a new flag set was swapped in; `failure` when it failed."""

    changed: bool = False
    failure: retry.Failure | None = None


class PollingSource:
    """Fetches the snapshot every `interval` seconds; :meth:`poll_once` is the unit of work."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        interval: float = 30.0,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self._http = http
        self.interval = interval
        self._etag: str | None = None
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._thread: threading.Thread | None = None

    def poll_once(self, holder: FlagSetHolder) -> PollResult:
        """One conditional GET; swaps in a changed flag set, or marks a fatal failure."""
        headers = {"Accept": "application/json"}
        current = holder.current
        if self._etag is not None and current is not None and current.origin is Origin.SERVER:
            headers["If-None-Match"] = self._etag
        try:
            response = self._http.get(FLAGS_PATH, headers=headers)
        except httpx.HTTPError as error:
            return PollResult(failure=retry.from_exception(error))
        if response.status_code == 304:
            holder.confirm()
            return PollResult()
        if response.status_code != 200:
            failure = retry.from_response(response)
            if not failure.retryable:
                holder.fail(failure.message)
            return PollResult(failure=failure)
        try:
            flag_set = FlagSet.from_wire(response.json(), Origin.SERVER)
        except Exception as error:  # a bad payload must not replace good flags
            return PollResult(failure=retry.Failure(True, f"unusable snapshot: {error}"))
        self._etag = response.headers.get("etag")
        return PollResult(changed=holder.replace(flag_set))

    def run(self, holder: FlagSetHolder) -> None:
        """Poll until closed or until a failure that retrying cannot fix."""
        while not self._stop.is_set():
            result = self.poll_once(holder)
            delay = self.interval
            if result.failure is not None:
                if not result.failure.retryable:
                    log.error("fader: stopped polling: %s", result.failure.message)
                    return
                log.warning(
                    "fader: poll failed, serving last known flags: %s", result.failure.message
                )
                delay = max(delay, result.failure.retry_after or 0.0)
            self._sleep(delay)

    def start(self, holder: FlagSetHolder) -> None:
        self._thread = threading.Thread(
            target=self.run, args=(holder,), name="fader-polling", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()
