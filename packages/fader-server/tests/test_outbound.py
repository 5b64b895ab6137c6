"""Outbound requests of rollout gates and webhooks (server-side request forgery).

Against real servers: one with the default policy refuses internal URLs at creation with a
problem naming FADER_OUTBOUND_ALLOW; `fader serve` processes read gates at local targets
(allowed explicitly) and store only numbers and an error class, whatever the target answers;
a host allowed once is checked again at every read and delivery. The reader's deadline and
byte cap are exercised against local servers that drip, redirect or answer megabytes.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ADMIN_PASSWORD, LogSink, Server, running_server
from outbound_targets import (
    answer,
    drip,
    fader_serve,
    gated_plan,
    huge,
    json_answer,
    prometheus_value,
    rollout_project,
    target,
    wait_for,
)
from server_api import unique

from fader_server.rollout_logic.plan import HttpCheckGate, PrometheusGate
from fader_server.runtime.gate_reader import GateReader
from fader_server.services.outbound_policy import OutboundPolicy, is_public
from fader_server.settings import Settings

LOOPBACK = OutboundPolicy.parse(["127.0.0.1/32"])


# ------------------------------------------------------------------------------- the policy
@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.1", False),
        ("127.255.0.9", False),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # CGNAT
        ("169.254.169.254", False),  # cloud metadata
        ("224.0.0.1", False),  # multicast (is_global in Python 3.11)
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:169.254.169.254", False),
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
    ],
)
def test_only_public_addresses_are_reachable_by_default(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public
    assert OutboundPolicy().allows_address(ipaddress.ip_address(address)) is public


def test_the_allow_setting_takes_cidrs_addresses_and_host_names() -> None:
    policy = OutboundPolicy.parse(["10.0.0.0/8", " ::1 ", "Prometheus.Internal.", "*.svc.local"])
    assert policy.allows_address(ipaddress.ip_address("10.9.9.9"))
    assert policy.allows_address(ipaddress.ip_address("::1"))
    assert not policy.allows_address(ipaddress.ip_address("127.0.0.1"))
    assert policy.allows_host("prometheus.internal")
    assert policy.allows_host("api.payments.svc.local")
    assert not policy.allows_host("svc.local")
    assert policy.check_url("http://prometheus.internal:9090") is None  # allowed by name
    for wrong in ("10.0.0.0/33", "not a host", "http://x"):
        with pytest.raises(ValueError, match="FADER_OUTBOUND_ALLOW"):
            OutboundPolicy.parse([wrong])


# --------------------------------------------------------------------- refused at creation
@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the default policy (no FADER_OUTBOUND_ALLOW): public addresses only."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("strict"),
        admin_password=ADMIN_PASSWORD,
        admin_token="fdr_admin_" + secrets.token_urlsafe(32),
        rollout_tick_seconds=0,
    )
    with running_server("sqlite", settings, LogSink()) as running:
        yield running


INTERNAL_URLS = [
    "http://127.0.0.1:{port}/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:{port}/",
    "http://localhost:{port}/",  # a name that resolves to loopback
    "http://10.1.2.3:9090",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://2130706433:{port}/",  # 127.0.0.1 as one number
    "http://0.0.0.0:{port}/",
    "http://no-such-host.invalid/",  # does not resolve: refused the same way
]


def test_internal_urls_are_refused_at_creation_with_a_problem_naming_the_setting(
    strict: Server,
) -> None:
    project = unique("ssrf")
    with strict.admin() as admin, target(answer(200, b"ok")) as local:
        rollout_project(admin, project, ["f"])
        base = f"/api/v1/projects/{project}"
        urls = [u.format(port=local.port) for u in INTERNAL_URLS]
        gates = [
            {"kind": "http_check", "url": url}
            if i % 2
            else {"kind": "prometheus", "url": url, "query": "up", "max_value": 1}
            for i, url in enumerate(urls)
        ]
        refused = admin.post(base + "/rollouts", json=gated_plan("f", *gates))
        assert refused.status_code == 422, refused.text
        problem = refused.json()
        assert {e["path"] for e in problem["errors"]} == {
            f"/body/gates/{i}/url" for i in range(len(urls))
        }
        assert all("FADER_OUTBOUND_ALLOW" in e["message"] for e in problem["errors"])
        template = {"key": "t", "name": "T", "stages": gated_plan("f")["stages"], "gates": gates}
        assert admin.post(base + "/rollout-templates", json=template).status_code == 422
        for url in urls[:3]:
            hook = admin.post(base + "/webhooks", json={"url": url})
            assert hook.status_code == 422, hook.text
            assert "FADER_OUTBOUND_ALLOW" in hook.json()["detail"]
            assert [e["path"] for e in hook.json()["errors"]] == ["/body/url"]
        # a public address is accepted (never contacted: this server does not tick)
        public = {**template, "gates": [{"kind": "http_check", "url": "https://8.8.8.8/health"}]}
        assert admin.post(base + "/rollout-templates", json=public).status_code == 201
        assert local.requests == []


# ------------------------------------------------------------ what a reading keeps and shows
def _everything_shown(api: httpx.Client, project: str) -> str:
    """Plans, incidents and the audit log as a viewer reads them, as one string."""
    base = f"/api/v1/projects/{project}"
    shown = [api.get(base + path).json() for path in ("/rollouts", "/incidents", "/audit")]
    for plan in shown[0]["items"]:
        shown.append(api.get(f"{base}/rollouts/{plan['id']}").json())
    return json.dumps(shown)


def test_readings_keep_numbers_and_an_error_class_never_what_the_target_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_error = {"status": "error", "errorType": "bad_data", "error": "SECRET-db-password"}
    with (
        target(json_answer(secret_error, status=400)) as prometheus_error,
        target(answer(500, b"SECRET-stack-trace")) as failing_check,
        target(answer(200, b"SECRET-not-tls")) as plain_http,
        target(answer(200, b"SECRET-inside")) as inside,
        target(answer(302, b"", {"Location": inside.url("/admin")})) as redirecting,
        fader_serve(tmp_path, monkeypatch, allow="127.0.0.1/32") as server,
        server.admin() as admin,
    ):
        closed = socket.create_server(("127.0.0.1", 0))
        refusing = f"http://127.0.0.1:{closed.getsockname()[1]}/"
        closed.close()  # nothing listens there now: connection refused
        project = unique("leak")
        expected = {
            "a": ({"kind": "prometheus", "url": prometheus_error.url(), "query": "up"},
                  {"status": 400, "error": "http_status"}),
            "b": ({"kind": "http_check", "url": failing_check.url("/health")},
                  {"status": 500, "error": "http_status"}),
            "c": ({"kind": "prometheus", "url": plain_http.url().replace("http:", "https:"),
                   "query": "up"}, {"error": "tls"}),
            "d": ({"kind": "http_check", "url": refusing}, {"error": "refused"}),
            "e": ({"kind": "http_check", "url": redirecting.url("/health")},
                  {"status": 302, "error": "http_status"}),
        }  # fmt: skip
        rollout_project(admin, project, list(expected))
        base = f"/api/v1/projects/{project}"
        plans = {}
        for flag, (given, _) in expected.items():
            gate = {**given, "trip_after": 1}
            if gate["kind"] == "prometheus":
                gate["max_value"] = 1
            made = admin.post(base + "/rollouts", json=gated_plan(flag, gate))
            assert made.status_code == 201, made.text
            plans[flag] = made.json()["id"]

        def rolled_back() -> bool:
            listed = admin.get(base + "/rollouts").json()["items"]
            return all(p["status"] == "rolled_back" for p in listed)

        wait_for("every plan to roll back", rolled_back)
        for flag, (_, seen) in expected.items():
            plan = admin.get(f"{base}/rollouts/{plans[flag]}").json()
            incident = admin.get(f"{base}/incidents/{plan['incident']}").json()
            evidence = dict(incident["evidence"][0]["evidence"])
            assert evidence.pop("strikes") == 1
            evidence.pop("latency_ms", None)  # a number, when the check got that far
            evidence.pop("max_value", None)
            assert evidence == seen, flag
        shown = _everything_shown(admin, project)
        assert "SECRET" not in shown
        assert "Errno" not in shown
        assert "refused" in shown  # the class, not the operating system's sentence
        assert inside.requests == []  # the redirect was not followed
        assert server.errors() == []


# ----------------------------------------------------------------- checked at every request
def test_a_host_allowed_once_is_checked_again_at_every_read_and_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Created while the operator allowed loopback, read after the allowance is gone (as when
    a name that was public resolves to an internal address later)."""
    project = unique("again")
    with target(answer(200, b"ok")) as check, target(answer(200, b"")) as receiver:
        with (
            fader_serve(tmp_path, monkeypatch, allow="127.0.0.1/32", tick="0") as first,
            first.admin() as admin,
        ):
            rollout_project(admin, project, ["f"])
            base = f"/api/v1/projects/{project}"
            hook = admin.post(base + "/webhooks", json={"url": receiver.url("/hook")})
            assert hook.status_code == 201, hook.text
            gate = {"kind": "http_check", "url": check.url("/health"), "interval": 0.2,
                    "trip_after": 2}  # fmt: skip
            plan = admin.post(base + "/rollouts", json=gated_plan("f", gate)).json()
        with fader_serve(tmp_path, monkeypatch, allow=None) as second, second.admin() as admin:
            wait_for(
                "the rollback",
                lambda: (
                    admin.get(f"{base}/rollouts/{plan['id']}").json()["status"] == "rolled_back"
                ),
            )
            incident_id = admin.get(f"{base}/rollouts/{plan['id']}").json()["incident"]
            incident = admin.get(f"{base}/incidents/{incident_id}").json()
            assert incident["evidence"][0]["evidence"]["error"] == "blocked"
            wait_for("the blocked delivery", lambda: '"outcome": "blocked"' in second.output(None))
        assert check.requests == []
        assert not any(b"rolled_back" in r for r in receiver.requests)


def test_a_name_that_resolves_to_an_internal_address_is_blocked_and_an_allowed_one_keeps_its_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The name is resolved inside the connection and the socket goes to the address that
    was checked: a resolver answering loopback for it is refused (no second lookup could
    differ), and an allowed name reaches that address with its own Host header."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def resolver(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebound.test":
            lookups.append(host)
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with target(json_answer(prometheus_value("0.5"))) as local:
        gate = PrometheusGate(url=local.url(host="rebound.test"), query="up", max_value=1)
        blocked = GateReader().read(gate)
        assert blocked.observation == {"max_value": 1, "error": "blocked"}
        assert local.requests == []
        allowed = GateReader(policy=OutboundPolicy.parse(["rebound.test"])).read(gate)
        assert allowed.observation == {"value": 0.5, "max_value": 1}
        (request,) = local.requests
        assert f"host: rebound.test:{local.port}".encode() in request.lower()
    assert lookups == ["rebound.test", "rebound.test"]  # once per request


# ------------------------------------------------------------------ deadlines and byte caps
def test_a_dripping_answer_is_cut_at_the_deadline_not_read_to_its_end() -> None:
    body = prometheus_value("0.5")
    whole = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    reader = GateReader(policy=LOOPBACK)
    with target(drip(whole, every=0.1)) as dripping:
        # each byte comes well within any per-read timeout; only a total deadline stops it
        gate = PrometheusGate(url=dripping.url(), query="up", max_value=1)
        assert reader.read(gate).observation == {"max_value": 1, "error": "timeout"}
        check = HttpCheckGate(url=dripping.url("/health"), max_latency_ms=200)
        assert reader.read(check).observation["error"] == "timeout"
        assert dripping.bytes_sent < 2 * len(whole)  # neither read was waited out


def test_answers_are_read_up_to_a_cap() -> None:
    reader = GateReader(policy=LOOPBACK)
    with target(huge(50 * 1024 * 1024)) as big:
        gate = PrometheusGate(url=big.url(), query="up", max_value=1)
        assert reader.read(gate).observation == {"max_value": 1, "error": "too_large"}
        check = reader.read(HttpCheckGate(url=big.url("/health")))
        assert (check.bad, check.observation["status"]) == (False, 200)
        assert big.bytes_sent < 20 * 1024 * 1024  # the reader hung up early, twice
    with target(answer(200, b"x" * 2_000_000)) as declared:
        gate = PrometheusGate(url=declared.url(), query="up", max_value=1)
        assert reader.read(gate).observation["error"] == "too_large"  # its Content-Length
    with target(answer(200, b"\x1f\x8b", {"Content-Encoding": "gzip"})) as packed:
        # identity was asked for: a compressed answer could inflate far past the cap
        gate = PrometheusGate(url=packed.url(), query="up", max_value=1)
        assert reader.read(gate).observation["error"] == "invalid_response"
    with target(json_answer(b"[]")) as malformed:
        gate = PrometheusGate(url=malformed.url(), query="up", max_value=1)
        assert reader.read(gate).observation == {"max_value": 1, "error": "invalid_response"}
