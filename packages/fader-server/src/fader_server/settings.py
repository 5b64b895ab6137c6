"""Server settings: read once at start, then immutable and passed down.

Like Starlette's ``Config``, values come from explicit arguments (CLI flags) first, then
``FADER_*`` environment variables, then defaults. Nothing else in the server reads the
environment, so a test builds a :class:`Settings` by hand and knows exactly what the app sees.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8400
DEFAULT_DATA_DIR = "data"

Pooler = Literal["none", "session", "transaction"]
"""What sits between the replicas and PostgreSQL (``FADER_DATABASE_POOLER``)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server needs to start.

    `database_url` wins over `data_dir`; without it the server keeps a SQLite file in
    `data_dir`. Secrets (`admin_password`, `admin_token`) are excluded from ``repr`` so a
    settings object can be logged without leaking them.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    database_url: str | None = None
    admin_password: str | None = field(default=None, repr=False)
    admin_token: str | None = field(default=None, repr=False)
    demo: bool = False
    log_json: bool = True
    sse_heartbeat_seconds: float = 15.0
    rollout_tick_seconds: float = 5.0
    """How often the rollout scheduler looks at active release plans; 0 turns it off (tests
    that drive :meth:`~fader_server.runtime.scheduler.Scheduler.tick` themselves)."""
    escalation_seconds: float = 60.0
    """How often overdue action items are looked for (``FADER_ESCALATION_SECONDS``); 0 turns
    the escalation job off (docs/incidents.md)."""
    outbound_allow: tuple[str, ...] = ()
    """CIDRs and host names that rollout gates and webhooks may reach although they are
    loopback, private or otherwise internal (``FADER_OUTBOUND_ALLOW``, comma-separated);
    empty: only public addresses (docs/security.md)."""
    max_body_bytes: int = 1024 * 1024
    """The largest request body the JSON API and the console read (``FADER_MAX_BODY_BYTES``);
    larger ones get 413 before they are read."""
    metrics_token: str | None = field(default=None, repr=False)
    """When set (``FADER_METRICS_TOKEN``), ``/metrics`` answers only requests that send it as
    ``Authorization: Bearer <token>``."""
    listen_url: str | None = field(default=None, repr=False)
    """PostgreSQL only: where replicas LISTEN for changes, when `database_url` goes through a
    pooler in transaction mode (``FADER_LISTEN_URL``); default: `database_url`."""
    database_pooler: Pooler = "none"
    """``transaction`` when `database_url` goes through a pooler in transaction mode, such as
    PgBouncer's ``pool_mode = transaction`` (``FADER_DATABASE_POOLER``): then no server-side
    prepared statements are made (the next transaction may run on another server connection,
    which does not have them) and `listen_url` must be set. ``none`` (default) or ``session``:
    each pooled connection keeps its server session (docs/deploy.md, "PgBouncer in
    transaction mode")."""
    sdk_events_per_second: float = 10_000.0
    """Summary items (or deprecated events) each SDK or client key may report per second to one
    replica, with bursts of ten seconds' worth (at least one full list); over it, 429
    (``FADER_SDK_EVENTS_PER_SECOND``; 0: no limit). See docs/delivery-protocol.md."""
    client_events_per_second: float = 1_000.0
    """The same for each client key (``FADER_CLIENT_EVENTS_PER_SECOND``; 0: no limit): lower,
    since client keys are public."""
    summary_window_seconds: float = 0.2
    """How long summaries are gathered into one transaction (``FADER_SUMMARY_WINDOW_SECONDS``;
    0: only those that queued while the previous one was written). docs/events.md."""
    scheduled_changes_tick_seconds: float = 5.0
    """How often approved change requests whose ``apply_at`` has come are applied
    (``FADER_SCHEDULED_CHANGES_TICK_SECONDS``); 0 turns it off (docs/change-control.md)."""
    usage_minutes_days: int = 14
    """Days per-minute usage rollups are kept (``FADER_USAGE_MINUTES_DAYS``); those a running
    release plan reads are kept until it ends (docs/events.md)."""
    usage_hours_days: int = 400
    """Days per-hour usage rollups are kept (``FADER_USAGE_HOURS_DAYS``)."""
    flagd_sync_port: int | None = None
    """Where flagd's gRPC flag-sync service listens, for flagd in-process providers
    (``--flagd-sync-port``, ``FADER_FLAGD_SYNC_PORT``); None: not served (docs/sdks.md)."""
    flagd_sync_host: str | None = None
    """The address flag sync binds (``FADER_FLAGD_SYNC_HOST``); None: the same as `host`."""
    public_url: str | None = None
    """The console's address as people reach it (``FADER_PUBLIC_URL``, e.g.
    ``https://fader.example.com``), for the links in webhook notifications; None:
    ``http://<host>:<port>``."""
    sso_config: Path | None = None
    """The single sign-on providers' TOML file (``FADER_SSO_CONFIG``; docs/sso.md)."""
    sso_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Client secrets by provider id, from ``FADER_SSO_SECRET_<ID>`` (``-`` written ``_``)."""
    local_login: bool = True
    """False (``FADER_LOCAL_LOGIN=false``): passwords are refused, single sign-on only."""
    workers: int = 1
    """Server processes sharing the port (``fader serve --workers``, ``FADER_WORKERS``);
    each is a replica (docs/deploy.md, "Several workers")."""
    sqlite_watch_seconds: float = 0.05
    """SQLite with several workers: how often each looks for the others' commits
    (``FADER_SQLITE_WATCH_SECONDS``), which bounds how late their changes reach its streams."""

    @property
    def effective_public_url(self) -> str:
        """The base of links back to the console."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def effective_database_url(self) -> str:
        """The SQLAlchemy URL to connect to; `postgresql://` is read as psycopg 3."""
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{(self.data_dir / 'fader.db').resolve()}"

    @classmethod
    def load(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        data_dir: Path | None = None,
        database_url: str | None = None,
        demo: bool | None = None,
        flagd_sync_port: int | None = None,
    ) -> Settings:
        """Build settings from CLI values (when given) over ``FADER_*`` variables."""
        source = os.environ if env is None else env
        return cls(
            host=host or source.get("FADER_HOST", DEFAULT_HOST),
            port=port or int(source.get("FADER_PORT", DEFAULT_PORT)),
            data_dir=data_dir or Path(source.get("FADER_DATA_DIR", DEFAULT_DATA_DIR)),
            database_url=database_url or source.get("FADER_DATABASE_URL") or None,
            admin_password=source.get("FADER_ADMIN_PASSWORD") or None,
            admin_token=source.get("FADER_ADMIN_TOKEN") or None,
            demo=demo if demo is not None else source.get("FADER_DEMO", "") in {"1", "true"},
            sse_heartbeat_seconds=float(source.get("FADER_SSE_HEARTBEAT_SECONDS", "15")),
            rollout_tick_seconds=float(source.get("FADER_ROLLOUT_TICK_SECONDS", "5")),
            escalation_seconds=float(source.get("FADER_ESCALATION_SECONDS", "60")),
            outbound_allow=_split(source.get("FADER_OUTBOUND_ALLOW", "")),
            max_body_bytes=_positive(source, "FADER_MAX_BODY_BYTES", 1024 * 1024),
            metrics_token=source.get("FADER_METRICS_TOKEN") or None,
            listen_url=source.get("FADER_LISTEN_URL") or None,
            database_pooler=_pooler(source.get("FADER_DATABASE_POOLER") or "none"),
            sdk_events_per_second=float(source.get("FADER_SDK_EVENTS_PER_SECOND", "10000")),
            client_events_per_second=float(source.get("FADER_CLIENT_EVENTS_PER_SECOND", "1000")),
            summary_window_seconds=float(source.get("FADER_SUMMARY_WINDOW_SECONDS", "0.2")),
            scheduled_changes_tick_seconds=float(
                source.get("FADER_SCHEDULED_CHANGES_TICK_SECONDS", "5")
            ),
            usage_minutes_days=_positive(source, "FADER_USAGE_MINUTES_DAYS", 14),
            usage_hours_days=_positive(source, "FADER_USAGE_HOURS_DAYS", 400),
            flagd_sync_port=_port(flagd_sync_port, source.get("FADER_FLAGD_SYNC_PORT")),
            flagd_sync_host=source.get("FADER_FLAGD_SYNC_HOST") or None,
            public_url=source.get("FADER_PUBLIC_URL") or None,
            sso_config=Path(source["FADER_SSO_CONFIG"]) if source.get("FADER_SSO_CONFIG") else None,
            sso_secrets={
                name.removeprefix(_SSO_SECRET).lower().replace("_", "-"): value
                for name, value in source.items()
                if name.startswith(_SSO_SECRET) and value
            },
            local_login=_flag(source.get("FADER_LOCAL_LOGIN", "true"), "FADER_LOCAL_LOGIN"),
            workers=int(source.get("FADER_WORKERS") or "1"),
            sqlite_watch_seconds=float(source.get("FADER_SQLITE_WATCH_SECONDS") or "0.05"),
        )


_SSO_SECRET = "FADER_SSO_SECRET_"  # noqa: S105 - the variables' prefix, not a secret


def _positive(source: Mapping[str, str], name: str, default: int) -> int:
    """A whole number of at least 1 (days kept, bytes read): zero or less would make the server
    refuse to start, or every request, so it is refused here, naming the variable."""
    text = source.get(name) or str(default)
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not '{text}'") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return value


def _flag(value: str, name: str) -> bool:
    """A boolean setting; anything but a clear yes or no is a mistake worth stopping for."""
    if value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be true or false, not '{value}'")


def _pooler(value: str) -> Pooler:
    """``FADER_DATABASE_POOLER``; PgBouncer's statement mode is refused here, because every
    Fader write is a transaction of several statements, which that mode cannot carry."""
    modes: dict[str, Pooler] = {"none": "none", "session": "session", "transaction": "transaction"}
    mode = modes.get(value.strip().lower())
    if mode is not None:
        return mode
    raise ValueError(f"FADER_DATABASE_POOLER must be none, session or transaction, not '{value}'")


def _port(given: int | None, variable: str | None) -> int | None:
    """An optional port: the CLI's, else the variable's (unset or empty: None)."""
    port = given if given is not None else int(variable) if variable else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"flagd sync port must be between 1 and 65535, not {port}")
    return port


def _split(value: str) -> tuple[str, ...]:
    """A comma-separated setting as its non-empty, stripped items."""
    return tuple(item.strip() for item in value.split(",") if item.strip())
