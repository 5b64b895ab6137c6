"""Fader deployments for the delivery benchmarks: started, seeded through the admin API, stopped.

A deployment is one `fader serve` process on SQLite, or `replicas` processes sharing one fresh
PostgreSQL database (created under a random name and dropped at the end). Process plumbing comes
from ``bench/server/processes.py``; this module adds what delivery needs: the same admin token on
every replica, a project of flags with rules and splits, and a server SDK key. Also here: the
machine's context and the ``/proc`` readings (RSS, CPU) that both scripts print.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import platform
import resource
import secrets
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from processes import (
    ServerProcess,
    call,
    expect,
    free_port,
    postgres_database,
    postgres_version,
    start,
)

PROJECT = "bench"
ENVIRONMENT = "production"
COUNTRIES = ("NL", "DE", "FR", "US", "GB", "JP", "BR", "IN")


@dataclass(slots=True)
class Deployment:
    """Started servers over one database, and the credentials to use them."""

    name: str
    servers: list[ServerProcess]
    admin_token: str
    sdk_key: str = ""

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def sdk(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.sdk_key}"}


def raise_nofile_limit() -> int:
    """Soft open-file limit up to the hard limit (children inherit it: the servers need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@contextlib.contextmanager
def deployment(
    backend: str, replicas: int, pg_admin_url: str, env: dict[str, str] | None = None
) -> Iterator[Deployment]:
    """Start `replicas` servers on `backend` ('sqlite': one only) and yield them, ready."""
    if backend == "sqlite" and replicas != 1:
        raise ValueError("SQLite serves one process")
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="fader-delivery-") as tmp, contextlib.ExitStack() as st:
        database_url = None
        if backend == "postgresql":
            name = st.enter_context(postgres_database(pg_admin_url, "fader_delivery"))
            database_url = urlunsplit(urlsplit(pg_admin_url)._replace(path="/" + name))
        servers: list[ServerProcess] = []
        for n in range(replicas):  # one after the other: the first one migrates the database
            data_dir = Path(tmp) / f"replica-{n}"
            data_dir.mkdir()
            port = free_port()
            argv = [str(Path(sys.executable).with_name("fader")), "serve", "--port", str(port)]
            argv += ["--data-dir", str(data_dir)]
            if database_url:
                argv += ["--database-url", database_url]
            server_env = {
                "FADER_ADMIN_TOKEN": token,
                "FADER_ADMIN_PASSWORD": secrets.token_urlsafe(16),
                **(env or {}),
            }
            label = f"{backend} replica {n}" if replicas > 1 else backend
            server = start(label, argv, server_env, Path(tmp) / f"replica-{n}.log", port)
            st.callback(server.stop)
            server.wait_ready("/readyz", timeout=120)
            servers.append(server)
        yield Deployment(f"{backend} x{replicas}", servers, token)


def create_project(dep: Deployment) -> None:
    port = dep.servers[0].port
    status, body = call(
        port, "POST", "/api/v1/projects", {"key": PROJECT, "name": "Bench"}, dep.admin()
    )
    expect(status, 201, "create project", body)


def flag_config(n: int) -> dict:
    """Flag `n`'s configuration: two targeting rules (a segment-like list and an attribute
    pair), then a split whose weights vary by flag, so evaluations exercise rules and buckets."""
    share = 5 + (n * 7) % 90
    return {
        "enabled": True,
        "offVariant": "off",
        "rules": [
            {
                "id": "beta-users",
                "clauses": [
                    {"attribute": "targetingKey", "op": "in", "values": [f"user-{n}", "user-7"]}
                ],
                "variant": "on",
            },
            {
                "id": "eu-pro",
                "clauses": [
                    {"attribute": "country", "op": "in", "values": list(COUNTRIES[: 1 + n % 3])},
                    {"attribute": "plan", "op": "in", "values": ["pro", "enterprise"]},
                ],
                "variant": "on",
            },
        ],
        "default": {
            "split": {
                "weights": [
                    {"variant": "on", "weight": share},
                    {"variant": "off", "weight": 100 - share},
                ]
            }
        },
    }


def create_flags(dep: Deployment, count: int, prefix: str = "flag") -> list[str]:
    """`count` boolean flags configured in ENVIRONMENT; returns their keys."""
    port, auth = dep.servers[0].port, dep.admin()
    base = f"/api/v1/projects/{PROJECT}"
    keys = []
    for n in range(count):
        key = f"{prefix}-{n}"
        flag = {"key": key, "name": f"Flag {n}", "type": "boolean"}
        flag["variants"] = {"on": True, "off": False}
        status, body = call(port, "POST", base + "/flags", flag, auth)
        expect(status, 201, "create flag", body)
        path = f"{base}/environments/{ENVIRONMENT}/flags/{key}"
        status, body = call(port, "PUT", path, flag_config(n), {**auth, "If-Match": '"0"'})
        expect(status, 200, "configure flag", body)
        keys.append(key)
    return keys


def create_sdk_key(dep: Deployment) -> None:
    body = {"kind": "server", "name": "bench", "project": PROJECT, "environment": ENVIRONMENT}
    status, answer = call(dep.servers[0].port, "POST", "/api/v1/tokens", body, dep.admin())
    expect(status, 201, "create SDK key", answer)
    dep.sdk_key = answer["token"]


def snapshot_version(dep: Deployment, replica: int = 0) -> tuple[int, int]:
    """(version, body bytes) of the environment's snapshot, by polling `replica`."""
    status, body = call(dep.servers[replica].port, "GET", "/api/v1/sdk/flags", None, dep.sdk())
    expect(status, 200, "poll", body)
    return int(body["version"]), len(json.dumps(body, separators=(",", ":")))


# --- /proc ----------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def longest_stall_ms(port: int) -> float:
    """``fader_event_loop_lag_max_seconds`` from the server's ``/metrics``, in ms: its event
    loop's longest stall since the previous scrape (reading it restarts it); NaN when absent
    (a build without the loop monitor)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode(errors="replace")
    except OSError:
        return math.nan
    finally:
        connection.close()
    for line in text.splitlines():
        if line.startswith("fader_event_loop_lag_max_seconds "):
            return 1000 * float(line.split()[1])
    return math.nan


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def postgres_seconds() -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
    return total


def machine_ticks() -> list[int]:
    """/proc/stat's cpu line: user nice system idle iowait irq softirq steal."""
    return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


class CpuWindow:
    """Where the machine's CPU went between construction and :meth:`stop` (percent of all
    cores): the named processes, PostgreSQL, everything else, and the hypervisor's steal."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self._start = self._read()

    def _read(self) -> tuple[list[int], dict[str, float], float]:
        named = {n: sum(cpu_seconds(p) for p in ps) for n, ps in self.pids.items()}
        return machine_ticks(), named, postgres_seconds()

    def stop(self) -> dict[str, float]:
        ticks0, named0, pg0 = self._start
        ticks1, named1, pg1 = self._read()
        delta = [b - a for a, b in zip(ticks0, ticks1, strict=True)]
        total_ticks = sum(delta) or 1
        total_seconds = total_ticks / _TICK
        busy = 100 * (total_ticks - delta[3] - delta[4]) / total_ticks
        shares = {n: 100 * (named1[n] - named0[n]) / total_seconds for n in self.pids}
        shares["postgres"] = max(0.0, 100 * (pg1 - pg0) / total_seconds)
        accounted = sum(shares.values())
        shares["steal"] = 100 * delta[7] / total_ticks
        shares["others"] = max(0.0, busy - shares["steal"] - accounted)
        for n in self.pids:  # and the CPU seconds themselves, which contention does not inflate
            shares[n + "_seconds"] = named1[n] - named0[n]
        shares["wall_seconds"] = total_seconds / (os.cpu_count() or 1)
        return shares


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine_context(pg_admin_url: str | None) -> dict[str, str]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import version
    from importlib.util import find_spec

    # uvicorn's defaults pick httptools and uvloop when they can be imported (not dependencies
    # of Fader; PYTHONPATH can add them for an experiment, and the servers inherit it).
    http = "httptools" if find_spec("httptools") else "h11"
    loop = "uvloop" if find_spec("uvloop") else "asyncio"

    context = {
        "cpu": f"{os.cpu_count()} x {model}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "server": f"uvicorn {version('uvicorn')}, HTTP {http}, {loop} loop, one worker per process",
        "open files": str(raise_nofile_limit()),
        "loadavg at start": loadavg(),
    }
    if pg_admin_url:
        try:
            context["postgresql"] = postgres_version(pg_admin_url)
        except Exception as exc:  # shown; the PostgreSQL runs are skipped
            context["postgresql"] = f"unreachable ({type(exc).__name__})"
    return context
