"""One timed cell: `wrk` against one endpoint of one server, and the server's CPU over it.

wrk (Debian's ``wrk`` package) is a C load generator: at the request rates of these servers it
spends a small fraction of a core, where a Python client would compete with the server under
test for the same two cores. A generated Lua script gives every request its own user number
(``%d`` in the endpoint's path or body, cycling through `endpoints.USERS`) and prints wrk's
summary as one JSON line, so nothing is scraped from wrk's human-readable report.

The server's CPU time is read from ``/proc/<pid>/stat`` (utime + stime) for the server process
and every descendant of it, before and after the run; PostgreSQL's from all ``postgres``
processes (bench/delivery/servers.py's readings). CPU seconds per request are not inflated by
contention the way latency is, which is why the comparison rests on them.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from endpoints import USERS, Endpoint
from servers import cpu_seconds, postgres_seconds

_MARK = "BENCH "

_LUA = """
local method, path_template, body_template = [==[{method}]==], [==[{path}]==], [==[{body}]==]
local headers = {{ {headers} }}
local counter = 0

request = function()
  counter = counter + 1
  local user = counter % {users}
  local body = nil
  if body_template ~= "" then body = string.format(body_template, user) end
  return wrk.format(method, string.format(path_template, user), headers, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{mark}{{"requests":%d,"duration_us":%d,"bytes":%d,"status_errors":%d,"socket_errors":%d,'
    .. '"p50_us":%d,"p99_us":%d,"max_us":%d}}\\n',
    summary.requests, summary.duration, summary.bytes, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def find_wrk() -> str | None:
    return shutil.which("wrk")


def write_script(endpoint: Endpoint, path: Path) -> Path:
    """The Lua script for `endpoint`, readable by its owner only (it holds the SDK key)."""
    headers = ", ".join(f"[ [==[{k}]==] ] = [==[{v}]==]" for k, v in endpoint.headers.items())
    text = _LUA.format(
        method=endpoint.method,
        path=endpoint.path,
        body=endpoint.body,
        headers=headers,
        users=USERS,
        mark=_MARK,
    )
    path.touch(mode=0o600)
    path.write_text(text)
    return path


@dataclass(slots=True)
class Cell:
    """One wrk run's figures and the CPU seconds spent meanwhile."""

    requests: int
    seconds: float
    bytes: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cpu: float
    postgres_cpu: float
    wrk_cpu: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def server_ms_per_request(self) -> float:
        return 1000 * self.server_cpu / self.requests if self.requests else float("nan")

    @property
    def requests_per_cpu_second(self) -> float:
        return self.requests / self.server_cpu if self.server_cpu else float("nan")


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (uvicorn or Node workers, if a server has any)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def run(
    port: int, script: Path, connections: int, threads: int, duration: float, server_pid: int
) -> Cell:
    """Run wrk for `duration` seconds; raise if it fails or prints no summary."""
    argv = [find_wrk() or "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s"]
    argv += ["--latency", "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}"]
    pids = process_tree(server_pid)
    server0, pg0 = sum(cpu_seconds(p) for p in pids), postgres_seconds()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    pids += [p for p in process_tree(server_pid) if p not in pids]
    server1, pg1 = sum(cpu_seconds(p) for p in pids), postgres_seconds()
    lines = [line for line in done.stdout.splitlines() if line.startswith(_MARK)]
    if done.returncode != 0 or not lines:
        said = (done.stderr or done.stdout).strip()[-500:]
        raise RuntimeError(f"wrk failed (exit {done.returncode}): {said}")
    figures = json.loads(lines[-1][len(_MARK) :])
    wrk_cpu = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    return Cell(
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        bytes=figures["bytes"],
        errors=figures["status_errors"] + figures["socket_errors"],
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        max_ms=figures["max_us"] / 1000,
        server_cpu=max(0.0, server1 - server0),
        postgres_cpu=max(0.0, pg1 - pg0),
        wrk_cpu=wrk_cpu,
    )
