"""The PyPI flagd provider (``openfeature-provider-flagd``), unmodified, in in-process mode
against a real ``fader serve --flagd-sync-port``: it evaluates every generated context as Fader's
own SDK does, sees a change made through the admin API, survives a server restart, and is cut
off when its key is revoked. Its server SDK key is its ``selector``.

Raw calls with the provider's own generated stubs check what the provider does not exercise
(``FetchAllFlags``, the refusals, a document flagd cannot express).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from flagd_sync_support import (
    BANNER_ON,
    CHANGE_PROBE,
    DEADLINE,
    ENVIRONMENT,
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
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from openfeature.schemas.protobuf.flagd.sync.v1 import sync_pb2, sync_pb2_grpc
from server_api import unique

CONTEXTS = 3000


@pytest.fixture
def fader(tmp_path: Path) -> Iterator[SyncingFader]:
    with syncing_fader(tmp_path) as server:
        yield server


def provider_for(fader: SyncingFader, key: str) -> FlagdProvider:
    return FlagdProvider(
        resolver_type=ResolverType.IN_PROCESS,
        host="127.0.0.1",
        port=fader.sync_port,
        selector=key,
        deadline_ms=30_000,  # the first document, on a loaded machine
        retry_backoff_ms=200,
        retry_backoff_max_ms=1000,  # reconnects in tests within a second or so
    )


def open_client(provider: FlagdProvider, name: str) -> OpenFeatureClient:
    api.set_provider_and_wait(provider, domain=name)
    return api.get_client(domain=name)


def evaluation(context: dict[str, Any]) -> EvaluationContext:
    attributes = {k: v for k, v in context.items() if k != "targetingKey"}
    return EvaluationContext(context["targetingKey"], attributes)


def provider_answers(
    client: OpenFeatureClient, cases: list[dict[str, Any]]
) -> list[dict[str, tuple[Any, str | None]]]:
    getters = {
        "boolean": lambda k, c: client.get_boolean_details(k, False, c),
        "string": lambda k, c: client.get_string_details(k, "", c),
        "number": lambda k, c: client.get_integer_details(k, -1, c),
    }
    answers = []
    for context in cases:
        ctx = evaluation(context)
        row = {}
        for key, kind in TYPES.items():
            details = getters[kind](key, ctx)
            row[key] = (details.value, details.variant)
        answers.append(row)
    return answers


def banner(client: OpenFeatureClient) -> bool:
    return client.get_boolean_value("legacy-banner", False, evaluation(CHANGE_PROBE))


def status_of(call: Any) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    raise AssertionError("the call was not refused")


def test_the_pypi_provider_follows_fader_through_changes_restarts_and_revocation(
    fader: SyncingFader, record_property: Any
) -> None:
    project = unique("sync")
    with fader.admin() as admin:
        create_environment(admin, project)
        _, reference_key = new_key(admin, project)
        provider_id, provider_key = new_key(admin, project)
        _, client_key = new_key(admin, project, "client")
        flagd_http = admin.get(
            "/api/v1/sdk/flagd", headers={"Authorization": f"Bearer {reference_key}"}
        )
        assert flagd_http.status_code == 200, flagd_http.text
    reference = fader_client(fader.url, reference_key)
    provider = provider_for(fader, provider_key)
    channel = grpc.insecure_channel(fader.sync_target)
    stub = sync_pb2_grpc.FlagSyncServiceStub(channel)
    try:
        client = open_client(provider, f"sync-{project}")

        # 1. The same answers as Fader's SDK on every context.
        cases = list(contexts(seed=20261203, count=CONTEXTS))
        theirs = provider_answers(client, cases)
        ours = fader_answers(reference, cases)
        mismatches = disagreements(theirs, ours, cases)
        assert mismatches == [], f"{len(mismatches)} of {CONTEXTS * len(TYPES)}:\n" + "\n".join(
            mismatches[:10]
        )
        assert_every_variant_served(ours)
        record_property("flagd_sync_python_agreeing", CONTEXTS * len(TYPES))

        # 2. A change through the admin API reaches the provider (the figure is reported).
        assert banner(client) is False
        with fader.admin() as admin:
            started = time.monotonic()
            put_config(admin, project, "legacy-banner", BANNER_ON)
            seen = wait_for(lambda: banner(client), DEADLINE)
            after = time.monotonic() - started
        assert seen is not None, f"the provider did not see the change within {DEADLINE} s"
        record_property("flagd_sync_python_change_ms", round(after * 1000, 1))
        print(
            f"python provider: change seen {after * 1000:.1f} ms after the admin write began, "
            f"{seen * 1000:.1f} ms after its response"
        )

        # 3. Raw calls: the one-shot fetch, the metadata call, and what is refused.
        header = (("flagd-selector", provider_key),)
        fetched = stub.FetchAllFlags(sync_pb2.FetchAllFlagsRequest(), metadata=header, timeout=30)
        document = json.loads(fetched.flag_configuration)
        assert document["flags"]["new-checkout"] == flagd_http.json()["flags"]["new-checkout"]
        assert document["flags"]["legacy-banner"]["defaultVariant"] == "on"  # the change
        assert document["metadata"]["scope"] == f"{project}/{ENVIRONMENT}"
        metadata = stub.GetMetadata(sync_pb2.GetMetadataRequest(), timeout=30)
        assert metadata.HasField("metadata")  # the Python provider reads it unconditionally
        assert len(metadata.metadata) == 0
        assert_refusals(stub, client_key, fader.admin_token)

        # 4. A restart (SIGKILL): the provider reconnects and sees a change made after it.
        fader.kill()
        fader.start()
        with fader.admin() as admin:
            put_config(admin, project, "legacy-banner", {**BANNER_ON, "enabled": False})
        back = wait_for(lambda: not banner(client), 60.0, interval=0.05)
        assert back is not None, "after the restart the provider never saw the change"

        # 5. Revocation: the stream ends, later changes never reach the provider, and its
        # reconnections are refused.
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
        opened = len(fader.log_events("flagd_sync_stream_opened"))
        refused = len(fader.log_events("flagd_sync_refused"))
        with fader.admin() as admin:
            put_config(admin, project, "legacy-banner", BANNER_ON)
        assert wait_for(lambda: reference.boolean("legacy-banner", CHANGE_PROBE, False), 30)
        retried = wait_for(
            lambda: len(fader.log_events("flagd_sync_refused")) > refused, DEADLINE, 0.05
        )
        assert retried is not None, "the provider did not try to reconnect"
        assert banner(client) is False, "a change after the revocation reached the provider"
        assert len(fader.log_events("flagd_sync_stream_opened")) == opened
        code, _ = status_of(
            lambda: next(
                iter(stub.SyncFlags(sync_pb2.SyncFlagsRequest(selector=provider_key), timeout=30))
            )
        )
        assert code is grpc.StatusCode.UNAUTHENTICATED

        # 6. An environment flagd cannot express is refused, naming what.
        assert_inexpressible_refused(fader, stub)
    finally:
        channel.close()
        provider.shutdown()
        reference.close()
    no_secret_logged(fader.output(limit=None), reference_key, provider_key, client_key)
    assert fader.errors() == []


def assert_refusals(stub: Any, client_key: str, admin_token: str) -> None:
    """No key, an unknown key, a client key, an admin token: each refused with its status."""
    fetch = sync_pb2.FetchAllFlagsRequest
    none = status_of(lambda: stub.FetchAllFlags(fetch(), timeout=30))
    assert none[0] is grpc.StatusCode.UNAUTHENTICATED
    assert "selector" in none[1]
    unknown = status_of(lambda: stub.FetchAllFlags(fetch(selector="fdr_srv_" + "x" * 40)))
    assert unknown[0] is grpc.StatusCode.UNAUTHENTICATED
    client = status_of(lambda: stub.FetchAllFlags(fetch(selector=client_key), timeout=30))
    assert client[0] is grpc.StatusCode.PERMISSION_DENIED
    admin = status_of(
        lambda: stub.FetchAllFlags(fetch(), metadata=(("flagd-selector", admin_token),), timeout=30)
    )
    assert admin[0] is grpc.StatusCode.PERMISSION_DENIED
    bearer = status_of(
        lambda: stub.FetchAllFlags(
            fetch(), metadata=(("authorization", "Bearer " + client_key),), timeout=30
        )
    )
    assert bearer[0] is grpc.StatusCode.PERMISSION_DENIED  # read from the header, refused


def assert_inexpressible_refused(fader: SyncingFader, stub: Any) -> None:
    project = unique("inexpressible")
    with fader.admin() as admin:
        create_environment(admin, project)
        matches = [{"attribute": "email", "op": "matches", "values": ["^a.*"]}]
        put_config(
            admin,
            project,
            "legacy-banner",
            {
                "enabled": True,
                "offVariant": "off",
                "rules": [{"clauses": matches, "variant": "on"}],
                "default": {"variant": "off"},
            },
        )
        _, key = new_key(admin, project)
    code, detail = status_of(
        lambda: next(iter(stub.SyncFlags(sync_pb2.SyncFlagsRequest(selector=key), timeout=30)))
    )
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert "legacy-banner" in detail, detail
