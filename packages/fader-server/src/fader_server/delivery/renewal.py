"""Renewing a cached entry before it lapses, off the request path.

The delivery caches (verified keys in :mod:`fader_server.delivery.keys`, confirmed snapshots in
:mod:`fader_server.delivery.snapshots`) are good for a few seconds after a database read. When
an entry lapsed, the next requests for it all missed together: under load every connection's
request went through routing and a worker thread to the database until one read confirmed it
again, once per second per environment and once per five seconds per key. On PostgreSQL (a
round trip per read, a pool checkout, threads contending for the GIL with the event loop) those
bursts were the p99 of the SDK endpoints (``bench/sdk/README.md``). So an entry in use is read
again in the background once it is past a part of its lifetime, while it is still served, and
replaced before it lapses; requests keep being answered from memory.

Nothing is served longer than before: a renewed entry's lifetime counts from the renewing read,
as a missed entry's did, and an entry whose renewal has not finished when it lapses is not
served (the request reads, as before). Invalidations (a change, a revocation, a lost
notification) act on entries exactly as before and stop a renewal that began before them from
confirming what it read.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

_log = logging.getLogger("fader.delivery")


class Renewer:
    """Runs renewals one after another on a worker thread of its own (started on first use).

    One thread: renewals are a read each, a few per second per busy environment or key, and
    running them in order keeps them from competing with requests for the database pool and the
    GIL. Failures are logged and otherwise ignored: the entry then lapses, and the next request
    reads the database itself (and reports what fails)."""

    def __init__(self, what: str) -> None:
        self._what = what
        """What is renewed ("key", "snapshot"): the thread's name and the log's word."""
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, renew: Callable[[], object]) -> None:
        with self._lock:
            if self._closed:
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    1, thread_name_prefix=f"fader-renew-{self._what}"
                )
            executor = self._executor
        # RuntimeError: shut down (the interpreter is exiting); the entry lapses.
        with contextlib.suppress(RuntimeError):
            executor.submit(renew).add_done_callback(self._done)

    def close(self) -> None:
        """Drop the renewals not started and wait for the one running (before the store
        closes: a renewal after it would open a connection nobody closes). Later submissions
        are ignored; the entries then lapse."""
        with self._lock:
            executor, self._executor = self._executor, None
            self._closed = True
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _done(self, future: Future[object]) -> None:
        exc = future.exception()
        if exc is not None:
            _log.warning(
                "renewing a cached %s failed (%s); it lapses and is read again on use",
                self._what,
                type(exc).__name__,
            )
