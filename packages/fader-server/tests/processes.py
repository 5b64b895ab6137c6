"""Real `fader serve` processes for fault tests: start on a chosen port, SIGKILL, restart.

Why a subprocess and not uvicorn in a thread: a fault test needs a server that can die the way
production servers die (SIGKILL: no graceful shutdown, sockets closed by the kernel) while the
SDK under test lives on in the test process.

Ports: a server that is restarted must come back on the *same* port, so the port is chosen by
the test instead of the kernel. It is taken below the kernel's ephemeral range, because an SDK
hammering a port with nothing listening on it could otherwise, once in a long while, be handed
that very port as its own local port (a TCP self-connect), and the restarted server could not
bind it. Output goes to a file (not a pipe that could fill up and block the server).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

_PORTS = (20_000, 32_000)  # below Linux's default ephemeral range (32768-60999)


def free_port() -> int:
    """A port nothing listens on now, outside the ephemeral range (see the module docstring)."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(*_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found")


def terminate(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """Stop a helper process politely (SIGTERM), and for good after 10 seconds."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_ready(
    url: str,
    process: subprocess.Popen[bytes] | subprocess.Popen[str],
    timeout: float,
    interval: float = 0.05,
) -> bool:
    """Poll `url`/readyz until it answers 200 (True), or until `process` exits or `timeout`
    seconds pass (False).

    One HTTP client makes every poll: ``httpx.get`` builds a client, CA bundle and all, on each
    call, tens of milliseconds of CPU that, many times a second, would take a core away from
    the very server that is starting."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1) as client:
        while process.poll() is None and time.monotonic() <= deadline:
            try:
                if client.get(url + "/readyz").status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(interval)
    return False


class FaderProcess:
    """One `fader serve` on `port`; can be started, SIGKILLed and started again."""

    def __init__(
        self,
        *,
        port: int,
        admin_token: str,
        log_path: Path,
        data_dir: Path,
        database_url: str | None = None,
        heartbeat: float = 0.5,
    ) -> None:
        self.port = port
        self.admin_token = admin_token
        self.log_path = log_path
        self.data_dir = data_dir
        self.database_url = database_url
        self.heartbeat = heartbeat
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=30,
        )

    def streams(self, gauge: str = "fader_sdk_streams") -> int:
        """SDK streams connected to this process now (its `fader_sdk_streams` gauge, or
        `fader_sdk_streams_direct`: those written to directly)."""
        # Plain HTTP: verify=False only spares loading the CA bundle on every poll (~40 ms CPU).
        text = httpx.get(self.url + "/metrics", timeout=5, verify=False).text
        for line in text.splitlines():
            if line.startswith(gauge + " "):
                return int(float(line.split()[1]))
        raise AssertionError(f"no {gauge} metric")

    def start(self, timeout: float = 90.0) -> float:
        """Start and wait until `/readyz` answers 200; returns how long that took."""
        assert not self.running, "already running"
        started = time.monotonic()
        env = {
            **os.environ,
            "FADER_ADMIN_TOKEN": self.admin_token,
            "FADER_ADMIN_PASSWORD": "pw-" + self.admin_token[-16:],
            "FADER_SSE_HEARTBEAT_SECONDS": str(self.heartbeat),
        }
        storage = ["--data-dir", str(self.data_dir)]
        if self.database_url is not None:
            storage += ["--database-url", self.database_url]
        with self.log_path.open("ab") as log:
            log.write(f"--- start on port {self.port}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from fader_server.cli.main import main; main()",
                    "serve",
                    "--port",
                    str(self.port),
                    *storage,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if not wait_ready(self.url, self.process, started + timeout - time.monotonic(), 0.02):
            self.kill()
            raise RuntimeError(
                f"fader serve on port {self.port} did not become ready:\n{self.output()}"
            )
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown; the kernel closes its sockets."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)

    def errors(self) -> list[str]:
        """Lines of its output that report a server-side error (logged errors, tracebacks)."""
        markers = ('"level": "error"', '"level": "critical"', "Traceback (most recent call last)")
        return [
            line for line in self.output(limit=None).splitlines() if any(m in line for m in markers)
        ]

    def output(self, limit: int | None = 4000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text if limit is None else text[-limit:]
