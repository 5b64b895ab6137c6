"""FaderProvider through the OpenFeature API."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode, ProviderFatalError, ProviderNotReadyError
from openfeature.flag_evaluation import Reason
from openfeature.provider import ProviderStatus
from sdk_doubles import KEY, event_stream, snapshot, sse

from fader_sdk import FaderClient
from fader_sdk.openfeature import FaderProvider
from fader_sdk.testing import TestData


@pytest.fixture
def td() -> Iterator[TestData]:
    data = TestData()
    data.flag("new-checkout").on_for("u-1")
    data.flag("theme").value("dark").metadata(owner="design")
    yield data
    api.shutdown()
    api.clear_providers()


def test_values_and_details_come_through_openfeature(td: TestData) -> None:
    api.set_provider_and_wait(FaderProvider(FaderClient.for_testing(td)))
    client = api.get_client()
    assert api.get_provider_metadata().name == "fader"
    assert client.get_boolean_value("new-checkout", False, EvaluationContext("u-1")) is True
    details = client.get_boolean_details("new-checkout", True, EvaluationContext("u-9"))
    assert (details.value, details.reason, details.variant) == (False, Reason.DEFAULT, "off")
    theme = client.get_string_details("theme", "light", EvaluationContext("u-1", {"plan": "x"}))
    assert (theme.value, theme.reason, theme.flag_metadata) == (
        "dark",
        Reason.STATIC,
        {"owner": "design"},
    )


def test_errors_map_to_openfeature_codes(td: TestData) -> None:
    api.set_provider_and_wait(FaderProvider(FaderClient.for_testing(td)))
    client = api.get_client()
    missing = client.get_boolean_details("nope", True)
    assert (missing.value, missing.error_code) == (True, ErrorCode.FLAG_NOT_FOUND)
    mismatch = client.get_integer_details("theme", 3)
    assert (mismatch.value, mismatch.error_code, mismatch.reason) == (
        3,
        ErrorCode.TYPE_MISMATCH,
        Reason.ERROR,
    )


def test_configuration_changes_are_emitted(td: TestData) -> None:
    api.set_provider_and_wait(FaderProvider(FaderClient.for_testing(td)))
    seen: list[list[str] | None] = []
    heard = threading.Event()

    def on_change(details: EventDetails) -> None:
        seen.append(details.flags_changed)
        heard.set()

    api.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)
    try:
        td.flag("theme").value("light")
        assert heard.wait(10)  # OpenFeature runs handlers on its own executor thread
    finally:
        api.remove_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)
    assert seen == [["theme"]]
    assert api.get_client().get_string_value("theme", "x") == "light"


def test_not_ready_provider_reports_provider_not_ready() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(503))
    fader = FaderClient(KEY, transport=transport, init_timeout=0, events=False)
    provider = FaderProvider(fader, init_timeout=0)
    details = provider.resolve_boolean_details("new-checkout", False)
    assert (details.value, details.error_code) == (False, ErrorCode.PROVIDER_NOT_READY)
    fader.close()


def test_provider_turns_ready_when_configuration_arrives_after_a_failed_start() -> None:
    server_up = threading.Event()

    def server(request: httpx.Request) -> httpx.Response:
        if not server_up.is_set():
            return httpx.Response(503)
        if request.url.path.endswith("/flags"):
            return httpx.Response(200, json=snapshot(3, "dark"))
        return event_stream(sse("snapshot", 3, "dark"))

    fader = FaderClient(
        KEY,
        transport=httpx.MockTransport(server),
        init_timeout=0,
        events=False,
        poll_interval=0.05,
        max_reconnect_delay=0.05,
    )
    provider = FaderProvider(fader, init_timeout=0.1)
    try:
        with pytest.raises(ProviderNotReadyError):
            api.set_provider_and_wait(provider, "recovering")
        client = api.get_client("recovering")
        assert client.get_provider_status() is ProviderStatus.ERROR
        ready = threading.Event()
        client.add_handler(ProviderEvent.PROVIDER_READY, lambda details: ready.set())
        server_up.set()
        assert ready.wait(10)
        assert client.get_provider_status() is ProviderStatus.READY
        assert client.get_string_value("new-checkout", "light") == "dark"
    finally:
        api.shutdown()
        api.clear_providers()


def test_a_rejected_key_makes_the_provider_fatal() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(401))
    fader = FaderClient(KEY, transport=transport, init_timeout=0, events=False)
    try:
        with pytest.raises(ProviderFatalError, match="server-side SDK key"):
            api.set_provider_and_wait(FaderProvider(fader, init_timeout=10), "rejected")
        client = api.get_client("rejected")
        assert client.get_provider_status() is ProviderStatus.FATAL
        details = client.get_boolean_details("new-checkout", False)
        assert (details.value, details.error_code) == (False, ErrorCode.PROVIDER_FATAL)
    finally:
        api.shutdown()
        api.clear_providers()
