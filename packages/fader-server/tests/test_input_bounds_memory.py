"""A 300 MB body sent to the unauthenticated login endpoint of a real ``fader serve`` process
is refused (413) without the server holding it: its peak memory stays flat.

The body is streamed from a generator (one 1 MiB chunk sent 300 times), so the test itself
never holds it either. Peak memory is the kernel's high-water mark of the server process'
resident set (``VmHWM``), which catches a body that was buffered and freed again.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from processes import FaderProcess, free_port

MIB = 1024 * 1024
BODY = 300 * MIB
GROWTH = 50 * MIB


def peak_rss(pid: int) -> int:
    """The process' resident-set high-water mark, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def stream(total: int) -> Iterator[bytes]:
    chunk = b"x" * MIB
    yield b'{"username": "admin", "password": "'
    for _ in range(total // MIB):
        yield chunk
    yield b'"}'


@pytest.fixture
def fader(tmp_path: Path) -> Iterator[FaderProcess]:
    """A server per test: the high-water mark only ever grows, so a test sharing a process
    with an earlier one could not see its own growth."""
    root = tmp_path
    process = FaderProcess(
        port=free_port(),
        admin_token="fdr_admin_" + secrets.token_urlsafe(32),
        log_path=root / "server.log",
        data_dir=root / "data",
    )
    process.start()
    try:
        yield process
    finally:
        process.kill()


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_300_mb_login_body_is_refused_with_flat_memory(
    fader: FaderProcess, declared: bool
) -> None:
    assert fader.process is not None
    pid = fader.process.pid
    with httpx.Client(base_url=fader.url, timeout=300) as client:
        warm_up = client.post("/api/v1/auth/login", json={"username": "admin", "password": "no"})
        assert warm_up.status_code == 401, warm_up.text
        before = peak_rss(pid)
        headers = {"Content-Type": "application/json"}
        if declared:
            headers["Content-Length"] = str(BODY + len(b'{"username": "admin", "password": ""}'))
        response = client.post("/api/v1/auth/login", content=stream(BODY), headers=headers)
    grown = peak_rss(pid) - before
    assert grown < GROWTH, f"the server's peak memory grew by {grown / MIB:.0f} MiB"
    assert response.status_code == 413, response.text
    assert response.json()["type"] == "urn:fader:problem:body-too-large"
    assert not fader.errors(), fader.output()
