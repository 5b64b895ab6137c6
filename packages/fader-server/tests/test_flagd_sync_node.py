"""The npm flagd provider (``@openfeature/flagd-provider`` with ``@openfeature/server-sdk``),
unmodified, in in-process mode in Node against a real ``fader serve --flagd-sync-port``: the same
answers as Fader's own SDK on every generated context, a change seen, and cut off when its key
is revoked. The provider is configured only by its own environment variables
(``FLAGD_RESOLVER``, ``FLAGD_HOST``, ``FLAGD_SYNC_PORT``, ``FLAGD_SOURCE_SELECTOR``), as
docs/sdks.md tells users to.

``node_flagd/`` pins the packages (package-lock.json); the test installs them with ``npm ci``
when ``node_modules`` is missing, and skips only when ``node`` or ``npm`` is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import node_packages
import pytest
from flagd_sync_support import (
    BANNER_ON,
    CHANGE_PROBE,
    DEADLINE,
    TYPES,
    SyncingFader,
    assert_every_variant_served,
    contexts,
    create_environment,
    disagreements,
    fader_answers,
    fader_client,
    new_key,
    no_secret_logged,
    put_config,
    revoke,
    syncing_fader,
    wait_for,
)
from server_api import unique

NODE_DIR = Path(__file__).parent / "node_flagd"
CONTEXTS = 3000


def _node_packages() -> Path:
    """``node_flagd`` with its pinned packages installed (``npm ci`` once)."""
    return node_packages.installed(NODE_DIR, "the npm flagd provider")


class NodeProvider:
    """``check.mjs``: the npm provider in a Node process, driven one JSON line at a time."""

    def __init__(self, directory: Path, target: str, key: str, log: Path) -> None:
        host, _, port = target.rpartition(":")
        env = {
            **os.environ,
            "FLAGD_RESOLVER": "in-process",
            "FLAGD_HOST": host,
            "FLAGD_SYNC_PORT": port,
            "FLAGD_SOURCE_SELECTOR": key,
            "FLAGD_DEADLINE_MS": "30000",  # the first document, on a loaded machine
            "FLAGD_RETRY_BACKOFF_MAX_MS": "1000",
        }
        self._stderr = log.open("wb")
        self.process = subprocess.Popen(
            [str(shutil.which("node")), "check.mjs"],
            cwd=directory,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.log = log
        try:
            ready = self.read()
            assert ready.get("ready") is True, f"{ready}\n{log.read_text(errors='replace')}"
        except BaseException:
            self.close()
            raise

    def read(self) -> dict[str, Any]:
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        line = stdout.readline()
        assert line, f"check.mjs ended:\n{self.log.read_text(errors='replace')}"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, **command: Any) -> dict[str, Any]:
        stdin: IO[str] | None = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(command) + "\n")
        stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.ask(op="close")
                self.process.wait(timeout=15)
            except (AssertionError, OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=10)
        for pipe in (self.process.stdin, self.process.stdout, self._stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def fader(tmp_path: Path) -> Iterator[SyncingFader]:
    with syncing_fader(tmp_path) as server:
        yield server


def test_the_npm_provider_agrees_sees_changes_and_is_cut_off_when_revoked(
    fader: SyncingFader, tmp_path: Path, record_property: Any
) -> None:
    directory = _node_packages()
    project = unique("node")
    with fader.admin() as admin:
        create_environment(admin, project, bucketing="v2")  # what npm flagd-core 4 hashes
        _, reference_key = new_key(admin, project)
        provider_id, provider_key = new_key(admin, project)
    reference = fader_client(fader.url, reference_key)
    node = NodeProvider(directory, fader.sync_target, provider_key, tmp_path / "node.log")
    try:
        # The same answers as Fader's SDK on every context; the key never in flag metadata.
        cases = list(contexts(seed=20261204, count=CONTEXTS))
        (tmp_path / "contexts.json").write_text(json.dumps(cases))
        evaluated = node.ask(
            op="evaluate",
            input=str(tmp_path / "contexts.json"),
            output=str(tmp_path / "answers.json"),
            types=TYPES,
        )
        assert evaluated == {"done": CONTEXTS, "leaks": 0}, evaluated
        theirs = json.loads((tmp_path / "answers.json").read_text())
        ours = fader_answers(reference, cases)
        mismatches = disagreements(theirs, ours, cases)
        assert mismatches == [], f"{len(mismatches)} of {CONTEXTS * len(TYPES)}:\n" + "\n".join(
            mismatches[:10]
        )
        assert_every_variant_served(ours)
        record_property("flagd_sync_node_agreeing", CONTEXTS * len(TYPES))

        # A change through the admin API reaches the provider (the figure is reported).
        probe = {"flag": "legacy-banner", "context": CHANGE_PROBE}
        assert node.ask(op="value", fallback=True, **probe) == {"value": False}
        with fader.admin() as admin:
            started = time.monotonic()
            put_config(admin, project, "legacy-banner", BANNER_ON)
            written = time.monotonic() - started
        seen = node.ask(op="await", expect=True, timeoutMs=DEADLINE * 1000, **probe)
        assert seen["seen"], f"the npm provider did not see the change within {DEADLINE} s"
        total_ms = written * 1000 + seen["ms"]
        record_property("flagd_sync_node_change_ms", round(total_ms, 1))
        print(f"npm provider: change seen {total_ms:.1f} ms after the admin write began")

        # Revocation: the stream ends, a later change never arrives, reconnections are refused.
        refused = len(fader.log_events("flagd_sync_refused"))
        with fader.admin() as admin:
            revoke(admin, provider_id)
        ended = wait_for(
            lambda: any(
                f'"actor": "token:{provider_id}"' in line and "UNAUTHENTICATED" in line
                for line in fader.log_events("flagd_sync_stream_ended")
            ),
            DEADLINE,
        )
        assert ended is not None, "the revoked key's stream did not end"
        with fader.admin() as admin:
            put_config(admin, project, "legacy-banner", {**BANNER_ON, "enabled": False})
        assert wait_for(lambda: not reference.boolean("legacy-banner", CHANGE_PROBE, True), 30)
        retried = wait_for(
            lambda: any(
                '"rpc": "SyncFlags"' in line
                for line in fader.log_events("flagd_sync_refused")[refused:]
            ),
            DEADLINE,
            0.05,
        )
        assert retried is not None, "the npm provider did not try to reconnect"
        assert node.ask(op="value", fallback=False, **probe) == {"value": True}, (
            "a change after the revocation reached the provider"
        )
        assert node.ask(op="events")["stale"] >= 1  # the application is told it is cut off
    finally:
        node.close()
        reference.close()
    no_secret_logged(fader.output(limit=None), reference_key, provider_key)
    no_secret_logged((tmp_path / "node.log").read_text(errors="replace"), provider_key)
    assert fader.errors() == []
