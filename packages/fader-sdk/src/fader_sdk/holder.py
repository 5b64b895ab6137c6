"""The flag set the client evaluates against, swapped whole.

Why a single reference: evaluations run on application threads with no lock; a source thread
builds a complete new :class:`~fader_sdk.flag_set.FlagSet` (document validated and compiled by
the engine) and replaces the reference in one assignment, so a reader sees the old flags or the
new ones, never half of each. Writers serialise on a lock only to keep version checks and
listener order consistent.

The holder knows nothing of HTTP, files or threads beyond that lock: sources put flag sets in,
the client reads them out, listeners (the cache file, the OpenFeature provider) hear of changes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from fader_sdk.flag_set import FlagSet, Origin

log = logging.getLogger("fader_sdk")


Listener = Callable[[FlagSet | None, FlagSet], None]
"""Hears (old, new) after each swap."""


class FlagSetHolder:
    """Holds the current :class:`FlagSet` and tells listeners when it changes."""

    def __init__(self) -> None:
        self.current: FlagSet | None = None
        """The current flag set; `None` until one is known. A plain attribute, read without a
        lock on every evaluation (a property would cost a call there); only :meth:`replace`
        writes it, under the lock."""
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._fresh = threading.Event()
        self._settled = threading.Event()
        self._fatal: str | None = None

    @property
    def fatal_error(self) -> str | None:
        """Why delivery stopped for good (e.g. a rejected SDK key), if it did."""
        return self._fatal

    def add_listener(self, listener: Listener) -> None:
        """Called (old, new) on the writer's thread after each swap; must not block long."""
        with self._lock:
            self._listeners.append(listener)

    def replace(self, flag_set: FlagSet) -> bool:
        """Swap `flag_set` in unless it is what we already have; returns whether it was.

        The server is authoritative: any server version different from ours replaces it, even
        a lower one (a restored database). A cached or file flag set never replaces a server one.
        """
        with self._lock:
            old = self.current
            if old is not None:
                if flag_set.origin is Origin.CACHE and old.origin is not Origin.CACHE:
                    return False
                if flag_set.origin is old.origin and flag_set.version == old.version:
                    if flag_set.origin is Origin.SERVER:
                        self._mark_fresh()
                    return False
            self.current = flag_set
            if flag_set.origin is not Origin.CACHE:
                self._mark_fresh()
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(old, flag_set)
            except Exception:
                log.exception("fader: a configuration listener failed")
        return True

    def confirm(self) -> None:
        """The server says our flag set is current (304, resumed stream): we are fresh."""
        if self.current is not None:
            self._mark_fresh()

    def fail(self, message: str) -> None:
        """Delivery has stopped for good; waiters give up instead of waiting out a timeout."""
        self._fatal = message
        self._settled.set()

    def wait_fresh(self, timeout: float | None) -> bool:
        """Wait until the server delivered (or confirmed) a configuration, or delivery failed."""
        self._settled.wait(timeout)
        return self._fresh.is_set()

    @property
    def is_fresh(self) -> bool:
        return self._fresh.is_set()

    def _mark_fresh(self) -> None:
        self._fresh.set()
        self._settled.set()
