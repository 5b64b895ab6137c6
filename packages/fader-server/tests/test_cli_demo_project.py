"""CLI commands a newcomer runs against the demo project (`fader serve --demo`).

The demo is seeded by the server itself, not through the API, so its data has the shapes the
API never writes (a template stage without `approval`): `rollouts templates show` once crashed
on exactly that. `environments document` prints what `fader eval` reads; evaluating the printed
document locally gives the answers the server's OFREP endpoint gives.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import LogSink, _serve
from typer.testing import CliRunner, Result

from fader_server.app import open_services
from fader_server.cli.main import app
from fader_server.services import demo
from fader_server.settings import Settings

runner = CliRunner()
CONTEXT = {"targetingKey": "u-1", "email": "dev@example.com"}


@pytest.fixture(scope="module")
def demo_server(
    tmp_path_factory: pytest.TempPathFactory, log_sink: LogSink
) -> Iterator[tuple[str, str]]:
    """A server over a fresh SQLite database with the demo project: (url, admin token)."""
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("demo"),
        admin_password="demo-" + secrets.token_hex(8),
        admin_token=token,
    )
    services, _ = open_services(settings)
    assert demo.seed(services)
    uv_server, thread, url, fastapi_app = _serve(settings, log_sink, services=services)
    try:
        yield url, token
    finally:
        uv_server.should_exit = True
        thread.join(timeout=10)
        fastapi_app.state.services.store.close()


def fader(server: tuple[str, str], *args: str) -> Result:
    url, token = server
    env = {"FADER_URL": url, "FADER_TOKEN": token, "FADER_PROJECT": None}
    result = runner.invoke(app, list(args), env=env, terminal_width=200)
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def test_a_seeded_template_is_shown_with_its_approval_stage(demo_server: tuple[str, str]) -> None:
    listed = json.loads(
        fader(demo_server, "rollouts", "templates", "list", "-p", "demo", "--json").stdout
    )
    assert listed, "the demo project has a release-plan template"
    key = listed[0]["key"]
    shown = fader(demo_server, "rollouts", "templates", "show", key, "-p", "demo").stdout
    stages = shown.split("Stages", 1)[1].split("Gates", 1)[0]
    rows = {line.split()[0]: line.split() for line in stages.splitlines() if line[:1].isdigit()}
    assert len(rows) == 6
    assert rows["1"][-1] == "no"  # written without `approval`: does not wait
    assert rows["4"][-1] == "yes"  # the 25% stage waits for a person


def test_an_environment_document_evaluates_as_the_server_does(
    demo_server: tuple[str, str], tmp_path: Path
) -> None:
    printed = fader(demo_server, "environments", "document", "-p", "demo", "-e", "production")
    document = json.loads(printed.stdout)
    assert "new-checkout" in document["flags"]
    file = tmp_path / "production.json"
    written = fader(
        demo_server,
        *("environments", "document", "-p", "demo", "-e", "production", "-o", str(file)),
    )
    assert f"to {file}" in written.stderr
    assert json.loads(file.read_text()) == document

    evaluated = fader(
        demo_server, "eval", str(file), "--flag", "new-checkout", "--context", json.dumps(CONTEXT)
    )
    local = json.loads(evaluated.stdout)
    url, token = demo_server
    server_key = fader(
        demo_server,
        *("tokens", "create", "-p", "demo", "-e", "production", "--kind", "server"),
        *("--name", "document-test"),
    ).stdout.strip()
    with httpx.Client(base_url=url, timeout=30) as client:
        remote = client.post(
            "/ofrep/v1/evaluate/flags/new-checkout",
            json={"context": CONTEXT},
            headers={"Authorization": f"Bearer {server_key}"},
        ).json()
    assert (local["value"], local["variant"]) == (remote["value"], remote["variant"])
    assert token not in printed.stdout + written.stderr


def test_a_missing_environment_is_reported(demo_server: tuple[str, str]) -> None:
    url, token = demo_server
    result = runner.invoke(
        app,
        ["environments", "document", "-p", "demo", "-e", "nowhere"],
        env={"FADER_URL": url, "FADER_TOKEN": token},
    )
    assert result.exit_code == 1
    assert "nowhere" in result.stderr
    assert result.stdout == ""
