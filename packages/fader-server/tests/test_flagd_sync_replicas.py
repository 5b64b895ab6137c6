"""Two `fader serve` replicas over one PostgreSQL database: a change made through replica A's
admin API reaches a flagd sync stream open on replica B (the change feed's LISTEN/NOTIFY), and a
key revoked on A ends B's stream. The stream is read with the flagd provider's own generated
client, as the providers read it.
"""

from __future__ import annotations

import json
import queue
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import grpc
from conftest import dedicated_postgres_database
from flagd_sync_support import (
    BANNER_ON,
    DEADLINE,
    START_TIMEOUT,
    SyncingFader,
    create_environment,
    new_key,
    put_config,
    revoke,
)
from openfeature.schemas.protobuf.flagd.sync.v1 import sync_pb2, sync_pb2_grpc
from processes import FaderProcess, free_port
from server_api import unique


def _start_all(replicas: list[FaderProcess]) -> None:
    """Start the replicas at once (each start waits for its /readyz)."""
    failures: list[BaseException] = []

    def start(replica: FaderProcess) -> None:
        try:
            replica.start(START_TIMEOUT)
        except BaseException as exc:  # reported below, with the replica's output
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures


def _read_into(stream: Any, into: queue.Queue[Any]) -> None:
    """Every document of `stream`, then how it ended (an RpcError, or None)."""
    try:
        for message in stream:
            into.put(json.loads(message.flag_configuration))
    except grpc.RpcError as exc:
        into.put(exc)
        return
    into.put(None)


def test_a_change_on_one_replica_reaches_a_sync_stream_on_another(
    tmp_path: Path, record_property: Any
) -> None:
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    with dedicated_postgres_database() as url:
        writer = FaderProcess(
            port=free_port(),
            admin_token=token,
            log_path=tmp_path / "a.log",
            data_dir=tmp_path / "a",
            database_url=url,
        )
        syncing = SyncingFader(
            sync_port=free_port(),
            port=free_port(),
            admin_token=token,
            log_path=tmp_path / "b.log",
            data_dir=tmp_path / "b",
            database_url=url,
        )
        try:
            _start_all([writer, syncing])
            project = unique("replicas")
            with writer.admin() as admin:
                create_environment(admin, project)
                key_id, key = new_key(admin, project)
            with grpc.insecure_channel(syncing.sync_target) as channel:
                stub = sync_pb2_grpc.FlagSyncServiceStub(channel)
                stream = stub.SyncFlags(
                    sync_pb2.SyncFlagsRequest(), metadata=(("flagd-selector", key),)
                )
                documents: queue.Queue[Any] = queue.Queue()
                reader = threading.Thread(target=_read_into, args=(stream, documents))
                reader.start()
                try:
                    first = documents.get(timeout=30)
                    assert first["flags"]["legacy-banner"]["defaultVariant"] == "off"

                    with writer.admin() as admin:
                        started = time.monotonic()
                        put_config(admin, project, "legacy-banner", BANNER_ON)
                    changed = documents.get(timeout=DEADLINE)
                    elapsed = time.monotonic() - started
                    assert changed["flags"]["legacy-banner"]["defaultVariant"] == "on"
                    record_property("flagd_sync_replica_change_ms", round(elapsed * 1000, 1))
                    print(f"replica B streamed A's change {elapsed * 1000:.1f} ms after the write")

                    with writer.admin() as admin:
                        revoke(admin, key_id)
                    ended = documents.get(timeout=DEADLINE)
                    assert isinstance(ended, grpc.RpcError), ended
                    assert ended.code() is grpc.StatusCode.UNAUTHENTICATED
                finally:
                    stream.cancel()
                    reader.join(timeout=10)
            assert writer.errors() == []
            assert syncing.errors() == []
        finally:
            writer.kill()
            syncing.kill()
