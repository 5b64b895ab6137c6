"""Cached keys and snapshots in use are renewed in the background before they lapse
(``delivery/renewal.py``), without serving anything longer than before.

A real server (SQLite and PostgreSQL) provides the data; the key cache and the snapshot service
under test are built over its store with a clock the test moves, so "before it lapses" and
"after" are exact instants, not sleeps. Renewals run on their own thread: the tests wait for
their effect with a generous deadline.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ADMIN_PASSWORD, LogSink, _serve
from ofrep_flags import create_flags, toggle
from server_api import unique

from fader_server.delivery.keys import SdkKeys
from fader_server.delivery.renewal import Renewer
from fader_server.delivery.snapshots import EnvironmentRef, SnapshotService
from fader_server.settings import Settings
from fader_server.storage.ports import Token, TokenKind

GENEROUS = 30.0
TTL = 5.0
SERVER = frozenset({TokenKind.SERVER})


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Replica:
    admin: httpx.Client
    app: Any


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def replica(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replica]:
    backend: str = request.param
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    data_dir: Path = tmp_path_factory.mktemp(f"renewal-{backend}")
    settings = Settings(
        data_dir=data_dir,
        database_url=(
            request.getfixturevalue("module_postgres_url") if backend == "postgresql" else None
        ),
        admin_password=ADMIN_PASSWORD,
        admin_token=token,
    )
    uv_server, thread, url, app = _serve(settings, LogSink())
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    try:
        yield Replica(admin, app)
    finally:
        admin.close()
        uv_server.should_exit = True
        thread.join(timeout=10)
        app.state.services.store.close()


def _project(replica: Replica) -> str:
    key = unique("renewal")
    created = replica.admin.post("/api/v1/projects", json={"key": key, "name": "Renewal"})
    assert created.status_code == 201, created.text
    create_flags(replica.admin, key)
    return key


def _key(replica: Replica, project: str) -> tuple[int, str]:
    body = {"kind": "server", "name": "sdk", "project": project, "environment": "production"}
    created = replica.admin.post("/api/v1/tokens", json=body)
    assert created.status_code == 201, created.text
    return int(created.json()["id"]), str(created.json()["token"])


def _keys(replica: Replica, clock: Clock, used: list[Token]) -> SdkKeys:
    """A key cache of its own: the server's announcements (revocations) never reach it, as if
    they were lost."""
    services = replica.app.state.services
    return SdkKeys(
        services.store, services.identity.clock, ttl=TTL, monotonic=clock, on_use=used.append
    )


def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GENEROUS
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_a_key_in_use_is_renewed_before_its_entry_lapses(replica: Replica) -> None:
    _, secret = _key(replica, _project(replica))
    clock, used = Clock(), []
    keys = _keys(replica, clock, used)
    caller = keys.authenticate(secret, SERVER)  # read: cached for TTL from now
    assert len(used) == 1
    clock.now += TTL - 2  # not yet within the renewal window: nothing is read
    assert keys.cached(secret, SERVER) == caller
    time.sleep(0.2)
    assert len(used) == 1
    clock.now += 1.5  # within it: still served, and read again in the background
    assert keys.cached(secret, SERVER) == caller
    _eventually(lambda: len(used) == 2, "the key was not read again")
    assert keys.cached(secret, SERVER) == caller  # one renewal per entry
    clock.now += 1.0  # past the first entry's lapse: the renewed one serves
    assert keys.cached(secret, SERVER) == caller
    time.sleep(0.2)
    assert len(used) == 2
    clock.now += TTL  # past the renewed entry too (nothing used it meanwhile): it lapsed
    assert keys.cached(secret, SERVER) is None


def test_a_renewal_drops_a_key_revoked_without_an_announcement(replica: Replica) -> None:
    token_id, secret = _key(replica, _project(replica))
    clock, used = Clock(), []
    keys = _keys(replica, clock, used)
    keys.authenticate(secret, SERVER)
    revoked = replica.admin.delete(f"/api/v1/tokens/{token_id}")
    assert revoked.status_code == 204, revoked.text
    assert keys.cached(secret, SERVER) is not None  # this cache heard nothing, within the TTL
    clock.now += TTL - 0.5
    keys.cached(secret, SERVER)  # starts the renewal, which finds the key revoked
    _eventually(lambda: keys.cached(secret, SERVER) is None, "the revoked key stayed cached")
    assert len(used) == 1


def test_a_snapshot_in_use_is_confirmed_again_before_it_lapses(replica: Replica) -> None:
    known = _ref(replica, _project(replica))
    clock = Clock()
    snapshots = SnapshotService(replica.app.state.services.store, fresh_for=1.0, monotonic=clock)
    first = snapshots.current(known)
    assert first is not None
    clock.now += 0.4
    assert snapshots.fresh(known) is first  # young: served, nothing started
    clock.now += 0.2  # past half of fresh_for: served, and confirmed again in the background
    assert snapshots.fresh(known) is first
    clock.now += 0.5  # the first confirmation lapsed; the renewed one is younger
    _eventually(lambda: snapshots.fresh(known) is first, "the snapshot was not confirmed again")
    clock.now += 1.5  # nothing used it meanwhile: it lapsed, and needs a read again
    assert snapshots.fresh(known) is None
    assert snapshots.current(known) is first  # same revision: the same snapshot


def test_a_renewal_finds_a_change_whose_notification_was_lost(replica: Replica) -> None:
    project = _project(replica)
    ref = _ref(replica, project)
    clock = Clock()
    snapshots = SnapshotService(replica.app.state.services.store, fresh_for=1.0, monotonic=clock)
    first = snapshots.current(ref)
    assert first is not None
    assert first.document["flags"]["banner"]["enabled"] is True
    toggle(replica.admin, project, "banner", False)
    assert snapshots.fresh(ref) is first  # this service heard nothing: served within the bound
    clock.now += 0.6
    assert snapshots.fresh(ref) is first  # and the renewal reads the new revision

    def newer() -> bool:
        fresh = snapshots.fresh(ref)
        return fresh is not None and fresh.version > first.version

    _eventually(newer, "the renewal did not pick up the new revision")
    after = snapshots.fresh(ref)
    assert after is not None
    assert after.document["flags"]["banner"]["enabled"] is False


def _ref(replica: Replica, project: str) -> EnvironmentRef:
    """The production environment of `project`, as keys point at it."""
    services = replica.app.state.services
    with services.store.read() as tx:
        found = tx.get_project(project)
    assert found is not None
    return EnvironmentRef(found.id, found.key, "production")


def test_a_closed_renewer_waits_for_the_renewal_running_and_starts_no_other() -> None:
    """Delivery closes its renewers before the store closes: a renewal running then finishes
    first, and none starts afterwards (it would open a connection on a closed store)."""
    renewer = Renewer("key")
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def slow() -> None:
        started.set()
        release.wait(60)
        ran.append("running")

    renewer.submit(slow)
    assert started.wait(60)
    closer = threading.Thread(target=renewer.close)
    closer.start()
    release.set()
    closer.join(60)
    assert not closer.is_alive()
    assert ran == ["running"]  # close returned only after the running renewal finished
    renewer.submit(lambda: ran.append("late"))
    renewer.close()  # twice is fine
    assert ran == ["running"]
