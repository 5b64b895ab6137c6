"""`FaderClient`: local evaluation against the latest configuration the SDK has.

Why local: an evaluation is a dictionary lookup and a few comparisons in the engine; putting a
network call on that path would make every feature check as slow and as fallible as the
network. The network lives in one background source (stream, with polling fallback) that only
swaps flag sets in the :class:`~fader_sdk.holder.FlagSetHolder`.

Promises to the application:
- The constructor blocks for at most `init_timeout` seconds (0: not at all), and returns early
  as soon as the server answers, or as soon as it is clear waiting cannot help (a rejected key).
- Until any configuration is known, every evaluation returns the caller's default with reason
  ``ERROR`` and error code ``GENERAL`` (message: "not ready"); evaluation never raises.
- With `cache_path`, the last good flag set is written there and used at start when the server
  cannot be reached; through outages the last known configuration keeps being served.
- Every evaluation is counted, not sent: a background thread posts one summary per
  `event_flush_interval` (docs/events.md; :mod:`fader_sdk.summarizer` says how counting stays
  exact and lock-free). `events=False` turns counting and its thread off.
"""

from __future__ import annotations

import builtins
import logging
import random as _random
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from fader_engine import ErrorCode, Reason, Resolution
from fader_sdk import __about__ as about
from fader_sdk.backoff import Backoff
from fader_sdk.breaker import CircuitBreaker
from fader_sdk.events import SummarySender
from fader_sdk.flag_set import FlagSet
from fader_sdk.holder import FlagSetHolder
from fader_sdk.sources import DataSource
from fader_sdk.sources.bootstrap import CacheWriter, load_flag_set
from fader_sdk.sources.polling import PollingSource
from fader_sdk.sources.streaming import StreamingSource
from fader_sdk.summarizer import Summarizer
from fader_sdk.summary import DEFAULT_MAX_KEYS, Dropped

log = logging.getLogger("fader_sdk")

__version__ = about.__version__

NOT_READY_MESSAGE = "the Fader client has no configuration yet (server not reached, no cache)"

Context = Mapping[str, Any]


class FaderClient:
    """Evaluates flags locally; thread-safe; use as a context manager or call :meth:`close`.

    Events: with `events` (the default) every evaluation and every :meth:`track` call is
    counted into a summary sent every `event_flush_interval` seconds; at most
    `max_summary_keys` distinct (flag, variant, reason) and (metric, flag, variant) keys per
    interval. `debug_flags`: flags whose evaluations are also sent one by one (at most 100 per
    flag and interval), for debugging. A client given its own `source` counts only when it also
    has an `sdk_key` to send with.
    """

    _exposed: Callable[[str, Mapping[str, Any] | None, Resolution], Resolution]
    """Counts an evaluation and returns its resolution: the summarizer's, or a pass-through."""

    def __init__(
        self,
        sdk_key: str,
        *,
        base_url: str = "http://127.0.0.1:8400",
        init_timeout: float = 5.0,
        cache_path: str | Path | None = None,
        stream: bool = True,
        poll_interval: float = 30.0,
        heartbeat_interval: float = 15.0,
        max_reconnect_delay: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        random: Callable[[], float] = _random.random,
        events: bool = True,
        event_flush_interval: float = 5.0,
        max_summary_keys: int = DEFAULT_MAX_KEYS,
        debug_flags: Collection[str] = (),
        source: DataSource | None = None,
    ) -> None:
        entered = time.monotonic()  # the init_timeout budget includes our own set-up
        self._holder = FlagSetHolder()
        self._http: httpx.Client | None = None
        self._events: SummarySender | None = None
        self._exposed = _pass_through
        self._closed = False
        if source is None and not sdk_key:
            raise ValueError("FaderClient needs a server-side SDK key (fdr_srv_...)")
        if sdk_key and (source is None or events):
            self._http = httpx.Client(
                base_url=base_url,
                transport=transport,
                headers={
                    "Authorization": f"Bearer {sdk_key}",
                    "User-Agent": f"fader-python-sdk/{__version__}",
                },
                timeout=httpx.Timeout(10.0),
            )
        if source is None:
            assert self._http is not None
            if cache_path is not None:
                cached = load_flag_set(cache_path)
                if cached is not None:
                    self._holder.replace(cached)
                self._holder.add_listener(CacheWriter(cache_path))
            poller = PollingSource(self._http, interval=poll_interval, sleep=sleep)
            if stream:
                source = StreamingSource(
                    self._http,
                    heartbeat_interval=heartbeat_interval,
                    backoff=Backoff(
                        base=min(1.0, max_reconnect_delay),
                        cap=max_reconnect_delay,
                        random=random,
                        clock=clock,
                    ),
                    breaker=CircuitBreaker(clock=clock),
                    poller=poller,
                    sleep=sleep,
                )
            else:
                source = poller
        if events and self._http is not None:
            summarizer = Summarizer(max_keys=max_summary_keys, debug_flags=debug_flags)
            self._events = SummarySender(
                self._http, summarizer, flush_interval=event_flush_interval
            )
            self._exposed = summarizer.evaluated
        self._source = source
        source.start(self._holder)
        remaining = init_timeout - (time.monotonic() - entered)
        fresh = init_timeout <= 0 or self._holder.wait_fresh(max(0.0, remaining))
        if not fresh and self._holder.fatal_error is None:
            log.warning(
                "fader: no configuration from the server within %g s; serving %s",
                init_timeout,
                "the cached configuration" if self.is_ready else "defaults",
            )

    @classmethod
    def for_testing(cls, source: DataSource) -> FaderClient:
        """A client fed by `source` (e.g. :class:`fader_sdk.testing.TestData`); no network."""
        return cls("", source=source, init_timeout=0, events=False)

    # -- state ------------------------------------------------------------------------------

    @property
    def is_ready(self) -> bool:
        """A configuration is known (from the server, the cache file or test data)."""
        return self._holder.current is not None

    @property
    def is_fresh(self) -> bool:
        """The configuration came from (or was confirmed by) the server, not only the cache."""
        return self._holder.is_fresh

    @property
    def fatal_error(self) -> str | None:
        """Why updates stopped for good (e.g. the key was rejected), if they did."""
        return self._holder.fatal_error

    @property
    def flag_set(self) -> FlagSet | None:
        """The flags evaluated now; `None` until any configuration is known."""
        return self._holder.current

    @property
    def holder(self) -> FlagSetHolder:
        """Holds the current flag set; add listeners here to hear about configuration changes."""
        return self._holder

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Wait for a configuration from the server; `True` if any configuration is known."""
        if not self._holder.is_fresh:
            self._holder.wait_fresh(timeout)
        return self.is_ready

    @property
    def dropped_events(self) -> int:
        """Evaluations and `track` calls counted but never delivered (see :attr:`dropped`)."""
        return self.dropped.total

    @property
    def dropped(self) -> Dropped:
        """What never reached the server, by kind; updated at each flush."""
        return Dropped() if self._events is None else self._events.dropped

    # -- evaluation -------------------------------------------------------------------------

    def boolean_details(self, key: str, context: Context | None, default: bool) -> Resolution:
        flags = self._holder.current
        if flags is None:
            return self._exposed(key, context, _not_ready(default))
        return self._exposed(
            key, context, flags.engine.resolve_boolean(key, context or {}, default)
        )

    def string_details(self, key: str, context: Context | None, default: str) -> Resolution:
        flags = self._holder.current
        if flags is None:
            return self._exposed(key, context, _not_ready(default))
        return self._exposed(key, context, flags.engine.resolve_string(key, context or {}, default))

    def integer_details(self, key: str, context: Context | None, default: int) -> Resolution:
        flags = self._holder.current
        if flags is None:
            return self._exposed(key, context, _not_ready(default))
        return self._exposed(
            key, context, flags.engine.resolve_integer(key, context or {}, default)
        )

    def float_details(self, key: str, context: Context | None, default: float) -> Resolution:
        flags = self._holder.current
        if flags is None:
            return self._exposed(key, context, _not_ready(default))
        return self._exposed(key, context, flags.engine.resolve_float(key, context or {}, default))

    def object_details(self, key: str, context: Context | None, default: Any) -> Resolution:
        flags = self._holder.current
        if flags is None:
            return self._exposed(key, context, _not_ready(default))
        return self._exposed(key, context, flags.engine.resolve_object(key, context or {}, default))

    # The value-only calls repeat their `*_details` body instead of calling it: they are what
    # applications call most, and one Python call less is a sizeable share of an evaluation.

    def boolean(self, key: str, context: Context | None, default: bool) -> bool:
        flags = self._holder.current
        if flags is None:
            resolution = _not_ready(default)
        else:
            resolution = flags.engine.resolve_boolean(key, context or {}, default)
        value: bool = self._exposed(key, context, resolution).value
        return value

    def string(self, key: str, context: Context | None, default: str) -> str:
        flags = self._holder.current
        if flags is None:
            resolution = _not_ready(default)
        else:
            resolution = flags.engine.resolve_string(key, context or {}, default)
        value: str = self._exposed(key, context, resolution).value
        return value

    def integer(self, key: str, context: Context | None, default: int) -> int:
        flags = self._holder.current
        if flags is None:
            resolution = _not_ready(default)
        else:
            resolution = flags.engine.resolve_integer(key, context or {}, default)
        value: int = self._exposed(key, context, resolution).value
        return value

    def float(self, key: str, context: Context | None, default: float) -> float:
        flags = self._holder.current
        if flags is None:
            resolution = _not_ready(default)
        else:
            resolution = flags.engine.resolve_float(key, context or {}, default)
        value: float = self._exposed(key, context, resolution).value
        return value

    def object(self, key: str, context: Context | None, default: Any) -> Any:
        return self.object_details(key, context, default).value

    def all_flags(self, context: Context | None) -> dict[str, Any]:
        """Every flag's value for `context` (flags that fail to evaluate are left out).

        Counts no evaluations: bootstrapping a front end is not the user seeing a variant.
        """
        flags = self._holder.current
        if flags is None:
            return {}
        out: dict[str, Any] = {}
        for key in flags.engine:
            resolution = flags.engine.evaluate(key, context or {})
            if resolution.error_code is None and resolution.value is not None:
                out[key] = resolution.value
        return out

    # -- events -----------------------------------------------------------------------------

    def track(
        self,
        name: str,
        context: Context | None,
        value: builtins.float | None = None,
        *,
        flag: str | None = None,
        variant: str | None = None,
    ) -> None:
        """Measure a custom metric (an error, a latency, a conversion); never blocks or raises.

        It adds to the metric's count, sum and sum of squares for (`name`, `flag`, `variant`)
        in this interval's summary; `value` `None` counts 1 with value 0. A `value` that is not
        a finite number is dropped and counted here (the server would refuse the sum).
        `context` is accepted for the OpenFeature API; metrics are not per context.
        """
        if self._events is not None:
            self._events.summarizer.measured(name, flag, variant, value)

    def flush(self) -> None:
        """Send what was counted until now (from this thread)."""
        if self._events is not None:
            self._events.flush()

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the source thread, send the last summary, close connections; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._source.close()
        if self._events is not None:
            self._events.close()
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> FaderClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _not_ready(default: Any) -> Resolution:
    return Resolution(default, None, Reason.ERROR, ErrorCode.GENERAL, NOT_READY_MESSAGE)


def _pass_through(key: str, context: Context | None, resolution: Resolution) -> Resolution:
    """`_exposed` when nothing is counted."""
    return resolution
