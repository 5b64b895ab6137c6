"""When each API token was last used, without a database write per request.

Token lists show `last_used_at` so that stale credentials can be found and revoked. Recording it
must cost requests nothing, so:

- **At most once per `interval` per token.** The token row read to authenticate carries its
  `last_used_at`; only when that is older than the interval (a minute) is a write wanted, and a
  token waiting to be written, or written by this process within the interval, is skipped. The
  write itself only ever moves the time forward, so replicas recording the same token at once
  agree.
- **Off the request path.** Uses go into a small map that one background thread writes in
  batches (one transaction per batch). The request never waits for it, and a database that is
  slow or down only delays or drops the record: it never fails a request. When more than
  `max_pending` tokens wait, further uses are dropped (the next use records them).

The time is therefore accurate to about the interval, which is what "last used" needs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime, timedelta

from fader_server.logs import get_logger
from fader_server.services.access import Clock
from fader_server.storage.ports import Token
from fader_server.storage.ports.accounts import TokenUseRows
from fader_server.storage.ports.store import Store

INTERVAL = timedelta(minutes=1)
MAX_PENDING = 10_000
_RECENT = 10_000


class TokenUse:
    """Records token uses in the background; thread-safe."""

    def __init__(
        self,
        store: Store[TokenUseRows],
        clock: Clock,
        *,
        interval: timedelta = INTERVAL,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.store = store
        self.clock = clock
        self.interval = interval
        self.max_pending = max_pending
        self._pending: dict[int, datetime] = {}
        self._recent: OrderedDict[int, datetime] = OrderedDict()
        self._writing = False
        self._closed = False
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._log = get_logger()

    def used(self, token: Token) -> None:
        """`token` just authenticated. Returns at once; the write happens later, or not."""
        now = self.clock()
        if token.last_used_at is not None and now - token.last_used_at < self.interval:
            return
        with self._condition:
            if self._closed or token.id in self._pending:
                return
            recent = self._recent.get(token.id)
            if recent is not None and now - recent < self.interval:
                return
            if len(self._pending) >= self.max_pending:
                return
            self._pending[token.id] = now
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="fader-token-use", daemon=True
                )
                self._thread.start()
            self._condition.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every use recorded so far is written (or dropped); False on timeout.
        For tests and shutdown."""
        with self._condition:
            return self._condition.wait_for(
                lambda: not self._pending and not self._writing, timeout=timeout
            )

    def close(self, timeout: float = 5.0) -> None:
        """Write what is pending, then stop the thread."""
        self.flush(timeout)
        with self._condition:
            self._closed = True
            self._condition.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending or self._closed)
                if not self._pending:
                    return  # closed, nothing left
                batch, self._pending = self._pending, {}
                self._writing = True
            try:
                with self.store.transaction() as tx:
                    tx.record_token_use(batch)
            except Exception as exc:  # never let a bookkeeping write take the thread down
                self._log.warning(
                    "token_use_not_recorded", tokens=len(batch), error=type(exc).__name__
                )
            else:
                with self._condition:
                    for token_id, at in batch.items():
                        self._recent[token_id] = at
                        self._recent.move_to_end(token_id)
                    while len(self._recent) > _RECENT:
                        self._recent.popitem(last=False)
            finally:
                with self._condition:
                    self._writing = False
                    self._condition.notify_all()
