"""The shipped reverse-proxy configuration, for real: Debian's nginx runs
``deploy/nginx/fader.conf`` (only its ports and file paths substituted) with a certificate from a
test CA, in front of two `fader serve` replicas sharing one PostgreSQL database.

Through it: the console logs in over HTTPS under a non-loopback host name (which Fader allows
only when it believes the request came over HTTPS, i.e. trusts the proxy's
``X-Forwarded-Proto``), its cookies are ``Secure``, CSRF tokens work; the SDK stream and the
OFREP change stream deliver a change while the stream is open (nginx buffering them would hold
the small events back far past the deadline); and when the replica holding a stream is killed,
the client reconnects through nginx to the other replica and receives a later change.

Skips, saying so, where nginx is not installed (``make system-packages`` installs it). The
systemd unit beside it is checked here too, with ``systemd-analyze verify``.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import dedicated_postgres_database
from ofrep_flags import new_key
from processes import FaderProcess, free_port
from server_api import create_flag, unique
from sse import Event, EventReader

from fader_server import settings

NGINX = Path("/usr/sbin/nginx")
OPENSSL = shutil.which("openssl")
DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
SHIPPED = DEPLOY / "nginx" / "fader.conf"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
HOST = "fader.example.com"
"""The shipped `server_name`, sent as the Host header: not a loopback name, so the console logs
in only if Fader sees the request as HTTPS."""
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
EVENT_DEADLINE = 20.0
"""Seconds a change may take to come out of a stream: generous for a loaded machine, and far
below the minutes a buffering proxy would hold half-second heartbeats and one small event."""
STARTUP_SECONDS = 180.0
"""How long a replica may take to answer /readyz: two start side by side, and on a loaded
two-core machine importing, migrating and bootstrapping has been seen to take over 90 s."""
BUFFERED = f"nothing within {EVENT_DEADLINE} s: is the proxy buffering the event stream?"

needs_nginx = pytest.mark.skipif(
    not NGINX.is_file() or OPENSSL is None,
    reason="needs Debian's nginx (/usr/sbin/nginx) and openssl: `make system-packages`",
)


@dataclass
class Site:
    """nginx on `https_port` (and `http_port`) in front of `replicas`."""

    https_port: int
    http_port: int
    replicas: list[FaderProcess]
    tls: ssl.SSLContext
    access_log: Path
    admin_token: str

    def client(self, token: str | None = None, *, read_timeout: float = 30) -> httpx.Client:
        """A client of the site as its public name, trusting only the test CA."""
        headers = {"Host": HOST}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(
            base_url=f"https://127.0.0.1:{self.https_port}",
            headers=headers,
            verify=self.tls,
            timeout=httpx.Timeout(30, read=read_timeout),
            follow_redirects=False,
        )


# ----------------------------------------------------------------------------- set-up
def _run(*command: str, cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}{done.stderr}"


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA, and a certificate it signed for HOST, localhost and 127.0.0.1."""
    assert OPENSSL is not None
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _run(
        OPENSSL, "req", "-x509", *curve, "-days", "2", "-subj", "/CN=Fader test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", "ca.key", "-out", "ca.pem",
        cwd=directory,
    )  # fmt: skip
    _run(
        OPENSSL, "req", *curve, "-subj", f"/CN={HOST}", "-keyout", "server.key",
        "-out", "server.csr",
        cwd=directory,
    )  # fmt: skip
    (directory / "server.ext").write_text(
        f"subjectAltName=DNS:{HOST},DNS:localhost,IP:127.0.0.1\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _run(
        OPENSSL, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.pem",
        cwd=directory,
    )  # fmt: skip
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


def shipped_config(substitutions: dict[str, str]) -> str:
    """deploy/nginx/fader.conf with each placeholder replaced: every one must be there exactly
    once, so the test cannot drift from the file it claims to test."""
    text = SHIPPED.read_text()
    for placeholder, value in substitutions.items():
        assert text.count(placeholder) == 1, f"{SHIPPED} no longer has one {placeholder!r}"
        text = text.replace(placeholder, value)
    return text


def _main_config(prefix: Path, site_config: Path) -> str:
    """What /etc/nginx/nginx.conf provides around conf.d/, with every path under `prefix`;
    gzip on for event streams too (a main configuration may well say so), so the shipped
    stream locations must switch it off themselves."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # else workers would run as nobody
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"{temp}\n"
        "    default_type application/octet-stream;\n"
        f"    access_log {prefix / 'other.access.log'};\n"  # else the built-in /var/log path
        "    gzip on;\n"
        "    gzip_types text/event-stream application/json;\n"
        f"    include {site_config};\n"
        "}\n"
    )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    with dedicated_postgres_database() as database_url:
        replicas = [
            FaderProcess(
                port=free_port(),
                admin_token=token,
                log_path=tmp_path / f"replica-{n}.log",
                data_dir=tmp_path / f"replica-{n}",
                database_url=database_url,
            )
            for n in (1, 2)
        ]
        nginx: subprocess.Popen[bytes] | None = None
        try:
            failures = _start_all(replicas)
            assert not failures, failures
            prefix = tmp_path / "nginx"
            prefix.mkdir()
            ca, certificate, key = _certificates(prefix)
            https_port, http_port = free_port(), free_port()
            access_log = prefix / "access.log"
            site_config = prefix / "fader.conf"
            site_config.write_text(
                shipped_config(
                    {
                        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
                        "listen 80;": f"listen 127.0.0.1:{http_port};",
                        "server 127.0.0.1:8400 ": f"server 127.0.0.1:{replicas[0].port} ",
                        "server 127.0.0.1:8401 ": f"server 127.0.0.1:{replicas[1].port} ",
                        "/etc/ssl/fader/fullchain.pem": str(certificate),
                        "/etc/ssl/fader/privkey.pem": str(key),
                        "/var/log/nginx/fader.access.log": str(access_log),
                    }
                )
            )
            main_config = prefix / "nginx.conf"
            main_config.write_text(_main_config(prefix, site_config))
            command = [str(NGINX), "-p", str(prefix), "-c", str(main_config)]
            command += ["-e", str(prefix / "error.log")]
            _run(*command, "-t", cwd=prefix)
            nginx = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            made = Site(
                https_port=https_port,
                http_port=http_port,
                replicas=replicas,
                tls=ssl.create_default_context(cafile=str(ca)),
                access_log=access_log,
                admin_token=token,
            )
            _wait_for(made, nginx, prefix / "error.log")
            yield made
            for replica in replicas:
                assert replica.errors() == [], replica.output()
        finally:
            if nginx is not None:
                nginx.terminate()
                nginx.wait(timeout=10)
            for replica in replicas:
                replica.kill()


def _start_all(replicas: list[FaderProcess]) -> list[BaseException]:
    """Start the replicas side by side (each migrates or waits for the other's migration)."""
    failures: list[BaseException] = []

    def start(replica: FaderProcess) -> None:
        try:
            replica.start(timeout=STARTUP_SECONDS)
        except BaseException as exc:  # reported by the caller, with the replica's output
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def _wait_for(made: Site, nginx: subprocess.Popen[bytes], error_log: Path) -> None:
    deadline = time.monotonic() + 30
    with made.client() as client:
        while True:
            try:
                if client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if nginx.poll() is not None or time.monotonic() > deadline:
                log = error_log.read_text() if error_log.exists() else ""
                raise AssertionError(f"nginx did not serve /readyz; its error log:\n{log}")
            time.sleep(0.1)


# ----------------------------------------------------------------------------- helpers
def next_event(stream: EventReader) -> Event:
    """The next event with data (heartbeats skipped), within EVENT_DEADLINE."""
    deadline = time.monotonic() + EVENT_DEADLINE
    try:
        while time.monotonic() < deadline:
            event = stream.next(comments=True)
            if event.data:
                return event
    except httpx.ReadTimeout:
        pass
    raise AssertionError(BUFFERED)


def toggle(admin: httpx.Client, project: str, environment: str, enabled: bool) -> None:
    path = f"/api/v1/projects/{project}/environments/{environment}/flags/new-checkout/toggle"
    response = admin.post(path, json={"enabled": enabled})
    assert response.status_code == 200, response.text


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + EVENT_DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"not within {EVENT_DEADLINE} s: {what}"
        time.sleep(0.1)


def logged_ids(site: Site) -> set[str]:
    """The request ids in the access log (each line one JSON object: `log_format fader_json`)."""
    lines = site.access_log.read_text().splitlines()
    return {str(json.loads(line)["request_id"]) for line in lines if line.endswith("}")}


@contextmanager
def stream_through(site: Site, path: str, headers: dict[str, str]) -> Iterator[EventReader]:
    """An event stream through nginx, read as an SDK would."""
    with ExitStack() as stack:
        client = stack.enter_context(site.client(read_timeout=EVENT_DEADLINE))
        request = client.stream("GET", path, headers={"Accept": "text/event-stream", **headers})
        try:
            got = stack.enter_context(request)
        except httpx.ReadTimeout as exc:  # a buffering proxy holds back even the headers
            raise AssertionError(BUFFERED) from exc
        assert got.status_code == 200, got.read()
        assert got.headers["content-type"].startswith("text/event-stream")
        yield EventReader(got)


# ----------------------------------------------------------------------------- the tests
@needs_nginx
def test_nginx_serves_the_console_and_streams_and_fails_over(site: Site) -> None:
    project = unique("deploy")
    with site.client(site.admin_token) as admin:
        assert admin.post("/api/v1/projects", json={"key": project, "name": "D"}).is_success
        create_flag(admin, project, "new-checkout")
        server_key = new_key(admin, project, "server", "development")
        console_logs_in_over_https(site, admin, project)
        streams_pass_through_unbuffered(site, admin, project, server_key)
        a_stream_moves_to_the_surviving_replica(site, admin, project, server_key)


def console_logs_in_over_https(site: Site, admin: httpx.Client, project: str) -> None:
    with httpx.Client(
        base_url=f"http://127.0.0.1:{site.http_port}", headers={"Host": HOST}, timeout=30
    ) as plain:
        moved = plain.get("/login?next=/projects")
        assert moved.status_code == 308
        assert moved.headers["location"] == f"https://{HOST}/login?next=/projects"
    with site.client() as browser:
        form = browser.get("/login")
        assert form.status_code == 200
        assert "strict-transport-security" in form.headers
        pre_login = form.headers.get_list("set-cookie")  # the login form's CSRF cookie
        assert pre_login
        assert all("Secure" in c for c in pre_login)
        logged_in = browser.post(
            "/login",
            data={
                "csrf_token": csrf_of(form.text),
                "username": "admin",
                "password": "pw-" + site.admin_token[-16:],  # FaderProcess's admin password
            },
        )
        assert logged_in.status_code == 303, logged_in.text
        session = next(
            c for c in logged_in.headers.get_list("set-cookie") if c.startswith("fader_session=")
        )
        assert "Secure" in session
        assert "HttpOnly" in session
        page = browser.get(f"/projects/{project}/flags")
        assert page.status_code == 200
        assert "new-checkout" in page.text
        # The access log joins nginx's request to the replica's: the same X-Request-ID.
        # (nginx writes the line as it finishes the request, just after the client has it)
        request_id = page.headers["x-request-id"]
        wait_until(lambda: request_id in logged_ids(site), "the request in the access log")
        # CSRF: a console form posted without its token changes nothing; with it, it works.
        path = f"/projects/{project}/flags/new-checkout/toggle"
        form_data = {"env": "staging", "enabled": "on", "back": f"/projects/{project}/flags"}
        assert browser.post(path, data=form_data).status_code == 403
        accepted = browser.post(path, data={**form_data, "csrf_token": csrf_of(page.text)})
        assert accepted.status_code == 303, accepted.text
    config = admin.get(f"/api/v1/projects/{project}/environments/staging/flags/new-checkout")
    assert config.json()["enabled"] is True
    with site.client() as outsider:
        assert outsider.get("/metrics").status_code == 404  # replicas are scraped directly


def streams_pass_through_unbuffered(
    site: Site, admin: httpx.Client, project: str, server_key: str
) -> None:
    with site.client(server_key) as ofrep:
        bulk = ofrep.post("/ofrep/v1/evaluate/flags", json={"context": {"targetingKey": "u-1"}})
        assert bulk.status_code == 200, bulk.text
        (change_stream,) = bulk.json()["eventStreams"]
    auth = {"Authorization": f"Bearer {server_key}"}
    with (
        stream_through(site, "/api/v1/sdk/stream", auth) as sdk,
        stream_through(site, change_stream["endpoint"]["requestUri"], {}) as refetch,
    ):
        first = next_event(sdk)
        assert first.event == "snapshot"
        opening = next_event(refetch)  # one on connecting
        toggle(admin, project, "development", True)
        change = next_event(sdk)
        assert change.event == "change"
        assert int(change.id or 0) > int(first.id or 0)
        assert change.json()["document"]["flags"]["new-checkout"]["enabled"] is True
        notice = next_event(refetch)
        assert notice.json()["type"] == "refetchEvaluation"
        assert int(notice.id or 0) > int(opening.id or 0)


def a_stream_moves_to_the_surviving_replica(
    site: Site, admin: httpx.Client, project: str, server_key: str
) -> None:
    auth = {"Authorization": f"Bearer {server_key}"}
    with stream_through(site, "/api/v1/sdk/stream", auth) as sdk:
        last_id = next_event(sdk).id
        assert last_id is not None
        # (earlier streams may take a heartbeat to be noticed gone: wait for one in all)
        wait_until(lambda: sorted(r.streams() for r in site.replicas) == [0, 1], "one stream")
        (serving,) = [r for r in site.replicas if r.streams() == 1]
        (survivor,) = [r for r in site.replicas if r is not serving]
        serving.kill()
        with pytest.raises((httpx.TransportError, EOFError)):
            next_event(sdk)  # the stream ends with its replica
    # The client reconnects as an SDK does (Last-Event-ID), through nginx, which skips the
    # dead replica.
    with stream_through(site, "/api/v1/sdk/stream", {**auth, "Last-Event-ID": last_id}) as sdk:
        wait_until(lambda: survivor.streams() == 1, "the stream on the surviving replica")
        toggle(admin, project, "development", False)
        change = next_event(sdk)
        assert change.event == "change"
        assert int(change.id or 0) > int(last_id)
        assert change.json()["document"]["flags"]["new-checkout"]["enabled"] is False


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="needs systemd-analyze (Debian's systemd)")
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts deploy/systemd/fader.service (with ExecStart pointing at
    this environment's `fader`, since verify checks that the program exists), and the
    EnvironmentFile example sets only settings Fader or uvicorn read."""
    assert SYSTEMD_ANALYZE is not None
    unit = (DEPLOY / "systemd" / "fader.service").read_text()
    shipped_fader = "ExecStart=/opt/fader/bin/fader serve"
    assert unit.count(shipped_fader) == 1
    here = Path(sys.executable).parent / "fader"
    (tmp_path / "fader.service").write_text(unit.replace(shipped_fader, f"ExecStart={here} serve"))
    verified = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(tmp_path / "fader.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr.strip() == "", verified.stderr  # no warning either
    example = (DEPLOY / "systemd" / "fader.env.example").read_text()
    names = re.findall(r"^#? ?([A-Z_]+)=", example, flags=re.MULTILINE)
    known = set(re.findall(r'"(FADER_[A-Z_]+)"', inspect.getsource(settings)))
    assert names
    assert set(names) <= known | {"FORWARDED_ALLOW_IPS"}, set(names) - known
