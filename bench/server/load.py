"""Closed-loop HTTP load: N clients, each on its own keep-alive connection, one request at a time.

Each client sends its next request as soon as the previous answer is read, so with one client
the figures are pure latency and with N clients they show how the server shares itself out.
Clients are threads using :mod:`http.client` (a few tens of µs of client CPU per request, far
less than httpx), and they run on the same two cores as the server: `CpuWindow` shows how the
machine's CPU was split between the server, PostgreSQL, the load generator and everything
else, so that a disturbed batch can be recognised.

Standard library only: this module knows nothing about feature flags.
"""

from __future__ import annotations

import http.client
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]
    expect: int = 200


class Session(Protocol):
    """One client's sequence of requests; `observe` sees each answer (e.g. to keep an ETag)."""

    def next_request(self) -> Request: ...

    def observe(self, status: int, response: http.client.HTTPResponse) -> None: ...


Operation = Callable[[int], Session]
"""Builds the session of client number `i` (clients that write get a flag each)."""


@dataclass(slots=True)
class Batch:
    """The latencies of one batch of requests, how long it took, and what went wrong."""

    latencies_ns: list[int]
    wall_seconds: float
    errors: dict[str, int] = field(default_factory=dict)
    cpu: CpuWindow | None = None

    @property
    def rate(self) -> float:
        return len(self.latencies_ns) / self.wall_seconds if self.wall_seconds else 0.0


def run_batch(
    host: str,
    port: int,
    operation: Operation,
    clients: int,
    requests_per_client: int,
    server_pid: int | None = None,
) -> Batch:
    """Run `clients` closed-loop clients of `requests_per_client` requests each."""
    sessions = [operation(i) for i in range(clients)]
    connections = [http.client.HTTPConnection(host, port, timeout=60) for _ in range(clients)]
    for connection in connections:
        connection.connect()  # outside the timed part
    per_client: list[list[int]] = [[] for _ in range(clients)]
    errors: dict[str, int] = {}
    errors_lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        session, connection, latencies = sessions[index], connections[index], per_client[index]
        start.wait()
        for _ in range(requests_per_client):
            request = session.next_request()
            began = time.perf_counter_ns()
            try:
                connection.request(request.method, request.path, request.body, request.headers)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as exc:
                with errors_lock:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                connection.close()  # http.client reconnects on the next request
                continue
            latencies.append(time.perf_counter_ns() - began)
            if response.status != request.expect:
                with errors_lock:
                    errors[f"HTTP {response.status}"] = errors.get(f"HTTP {response.status}", 0) + 1
            session.observe(response.status, response)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    meter = CpuMeter(server_pid)
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    cpu = meter.stop()
    for connection in connections:
        connection.close()
    latencies = [ns for client_latencies in per_client for ns in client_latencies]
    return Batch(latencies, wall, errors, cpu)


# --- statistics -----------------------------------------------------------------------------


def percentile(sorted_values: Sequence[int], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a latency that happened)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[rank - 1])


# --- where the CPU went ---------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _process_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _postgres_seconds() -> dict[int, float]:
    """CPU seconds of each process named `postgres` (the database's backends and workers)."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found[int(entry.name)] = _process_seconds(int(entry.name))
            except OSError:
                continue
    return found


def _machine_ticks() -> list[int] | None:
    """The ``cpu`` line of /proc/stat: user nice system idle iowait irq softirq steal."""
    try:
        return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except OSError:
        return None


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


@dataclass(frozen=True, slots=True)
class CpuWindow:
    """Shares of all CPUs (100% = every core busy for the whole window)."""

    wall_seconds: float
    server_pct: float
    postgres_pct: float
    client_pct: float
    others_pct: float | None
    steal_pct: float | None
    iowait_pct: float | None

    @property
    def disturbed(self) -> bool:
        """Something besides the system under test took over 10% of the CPUs, or steal over 5%."""
        return (self.others_pct or 0) > 10 or (self.steal_pct or 0) > 5


class CpuMeter:
    """Snapshot CPU counters now; `stop()` returns where the CPU went since."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self._wall = time.monotonic()
        self._ticks = _machine_ticks()
        self._server = _process_seconds(server_pid) if server_pid else 0.0
        self._postgres = _postgres_seconds()
        self._client = sum(os.times()[:2])

    def stop(self) -> CpuWindow:
        wall = time.monotonic() - self._wall
        capacity = wall * (os.cpu_count() or 1) / 100
        server = (_process_seconds(self.server_pid) - self._server) if self.server_pid else 0.0
        # Backends that started meanwhile count from zero; those that ended are lost (so the
        # share is a lower bound, never negative).
        postgres = sum(
            max(0.0, seconds - self._postgres.get(pid, 0.0))
            for pid, seconds in _postgres_seconds().items()
        )
        client = sum(os.times()[:2]) - self._client
        after = _machine_ticks()
        others = steal = iowait = None
        if self._ticks is not None and after is not None:
            delta = [b - a for a, b in zip(self._ticks, after, strict=True)]
            total = sum(delta) or 1
            busy = 100 * (total - delta[3] - delta[4]) / total
            steal = 100 * delta[7] / total
            iowait = 100 * delta[4] / total
            others = max(0.0, busy - steal - (server + postgres + client) / capacity)
        return CpuWindow(
            wall,
            server / capacity,
            postgres / capacity,
            client / capacity,
            others,
            steal,
            iowait,
        )
