"""The cache file: atomic writes, tolerant reads, and starting from it while the server is down."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from sdk_doubles import KEY, Recorder, event_stream, snapshot, sse

from fader_sdk import FaderClient, FlagSet, Origin
from fader_sdk.sources.bootstrap import FileSource, load_flag_set, save_flag_set


def test_save_then_load_round_trips_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "flags.json"
    save_flag_set(path, FlagSet.from_wire(snapshot(17), Origin.SERVER))
    save_flag_set(path, FlagSet.from_wire(snapshot(18, False), Origin.SERVER))
    loaded = load_flag_set(path)
    assert loaded is not None
    assert (loaded.version, loaded.origin, loaded.project) == (18, Origin.CACHE, "demo")
    assert [p.name for p in path.parent.iterdir()] == ["flags.json"]


def test_a_corrupt_or_missing_file_is_ignored(tmp_path: Path) -> None:
    broken = tmp_path / "flags.json"
    broken.write_text('{"version": 3, "document": {"format": "fader/v1", "fla')
    assert load_flag_set(broken) is None
    assert load_flag_set(tmp_path / "absent.json") is None


def server_down(request: httpx.Request, n: int) -> httpx.Response:
    raise httpx.ConnectError("connection refused")


def test_client_starts_from_the_cache_while_the_server_is_down(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(snapshot(17, True)))
    transport = httpx.MockTransport(Recorder(server_down))
    with FaderClient(KEY, transport=transport, cache_path=path, init_timeout=0) as client:
        assert client.is_ready
        assert not client.is_fresh
        details = client.boolean_details("new-checkout", {"targetingKey": "u-1"}, False)
        assert (details.value, details.error_code) == (True, None)


def test_server_down_and_no_cache_serves_defaults_with_an_error_reason(tmp_path: Path) -> None:
    transport = httpx.MockTransport(Recorder(server_down))
    with FaderClient(
        KEY, transport=transport, cache_path=tmp_path / "none.json", init_timeout=0, events=False
    ) as client:
        details = client.boolean_details("new-checkout", {}, False)
        assert (details.value, str(details.reason), str(details.error_code)) == (
            False,
            "ERROR",
            "GENERAL",
        )
        assert details.error_message is not None
        assert "no configuration" in details.error_message


def test_server_snapshots_are_persisted_for_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    transport = httpx.MockTransport(Recorder(lambda r, n: event_stream(sse("snapshot", 21))))
    with FaderClient(KEY, transport=transport, cache_path=path, events=False) as client:
        assert client.is_fresh
    assert json.loads(path.read_text())["version"] == 21


def test_file_source_serves_a_snapshot_file_offline(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(snapshot(4, "blue")))
    with FaderClient("", source=FileSource(path), events=False) as client:
        assert client.string("new-checkout", {}, "red") == "blue"
