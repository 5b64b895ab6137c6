"""Moving a project between two real Fader servers (issue 17, section 4), on SQLite and on
PostgreSQL: ``GET .../export`` on one, ``POST .../imports`` with ``"source": "fader"`` on the
other, and ``fader export``.

The second server has a database of its own (another data directory, another PostgreSQL
database), so nothing reaches it but the bundle. The rules themselves (what is refused, who may
import) are held over the in-memory store in ``test_project_bundle.py``; here the same things
are checked through HTTP once each: the file a user downloads, that it carries no secret, that
the moved project serves the same documents with 100% parity, and who may export.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import (
    ADMIN_PASSWORD,
    OUTBOUND_ALLOW,
    LogSink,
    Server,
    dedicated_postgres_database,
    running_server,
)
from server_api import create_flag, unique
from test_cli_admin import ok, run

from fader_server.settings import Settings

ENVIRONMENTS = ("development", "staging", "production")
SEGMENT = {
    "key": "staff",
    "included": ["alice"],
    "rules": [{"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@shop.test"]}]}],
}
RULED = {
    "enabled": True,
    "offVariant": "off",
    "rules": [
        {"id": "staff", "clauses": [{"op": "in_segment", "values": ["staff"]}], "variant": "on"}
    ],
    "default": {
        "split": {"weights": [{"variant": "on", "weight": 25}, {"variant": "off", "weight": 75}]}
    },
    "prerequisites": [{"flag": "base", "variants": ["on"]}],
}
ON = {"enabled": True, "offVariant": "off", "default": {"variant": "on"}}
GATE_PASSWORD = "gate-" + secrets.token_hex(8)
TEMPLATE = {
    "key": "careful",
    "name": "Careful",
    "stages": [
        {"name": "staff", "min_duration": 60, "segment": "staff"},
        {"name": "half", "min_duration": 60, "percent": 50},
    ],
    "gates": [
        {
            "kind": "prometheus",
            "url": f"http://reader:{GATE_PASSWORD}@prometheus.example:9090",
            "query": "sum(rate(errors[5m]))",
            "max_value": 0.5,
        }
    ],
}


@pytest.fixture(scope="module")
def second(
    server: Server, tmp_path_factory: pytest.TempPathFactory, log_sink: LogSink
) -> Iterator[Server]:
    """Another instance on the same backend, with a database of its own."""
    with ExitStack() as stack:
        database_url = None
        if server.backend == "postgresql":
            database_url = stack.enter_context(dedicated_postgres_database())
        settings = Settings(
            data_dir=tmp_path_factory.mktemp("second-instance"),
            database_url=database_url,
            admin_password=ADMIN_PASSWORD,
            admin_token="fdr_admin_" + secrets.token_urlsafe(32),
            outbound_allow=OUTBOUND_ALLOW,
        )
        yield stack.enter_context(running_server(server.backend, settings, log_sink))


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def _populate(admin: httpx.Client, project: str) -> list[str]:
    """A project worth moving; returns the secrets it holds (which must never be exported)."""
    base = f"/api/v1/projects/{project}"
    _ok(admin.post(base + "/segments", json=SEGMENT), 201)
    create_flag(admin, project, "base")
    create_flag(admin, project, "checkout", client_side=True)
    for env in ENVIRONMENTS:
        path = f"{base}/environments/{env}/flags"
        _ok(admin.put(f"{path}/base", json=ON, headers={"If-Match": '"0"'}))
        if env != "development":
            _ok(admin.put(f"{path}/checkout", json=RULED, headers={"If-Match": '"0"'}))
    _ok(admin.post(base + "/rollout-templates", json=TEMPLATE), 201)
    held = [GATE_PASSWORD]
    for kind in ("server", "client"):
        body = {"kind": kind, "name": kind, "project": project, "environment": "production"}
        held.append(_ok(admin.post("/api/v1/tokens", json=body), 201)["token"])
    hook = _ok(admin.post(base + "/webhooks", json={"url": "https://hooks.example/x"}), 201)
    held.append(hook["secret"])
    chosen = "webhook-secret-" + secrets.token_hex(12)
    _ok(admin.post(base + "/webhooks", json={"url": "https://h.example/y", "secret": chosen}), 201)
    held.append(chosen)
    return held


def _document(client: httpx.Client, project: str, env: str) -> dict[str, Any]:
    found = _ok(client.get(f"/api/v1/projects/{project}/environments/{env}/document"))
    return {**found, "metadata": {**found["metadata"], "project": None}}


def test_a_project_moves_to_another_instance_and_serves_the_same(
    server: Server, second: Server, admin: httpx.Client, project: str
) -> None:
    held = _populate(admin, project)
    exported = admin.get(f"/api/v1/projects/{project}/export")
    bundle = _ok(exported)
    disposition = exported.headers["content-disposition"]
    assert re.fullmatch(
        rf'attachment; filename="fader-{project}-\d{{4}}-\d{{2}}-\d{{2}}.json"', disposition
    )
    text = exported.text
    for secret in held:
        assert secret not in text
    assert not re.search(r"fdr_[a-z]+_", text)  # no token or key of any kind
    assert "webhook" not in text
    assert "hooks.example" not in text
    assert "reader" not in text
    moved = unique("moved")
    with second.admin() as other:
        body = {"source": "fader", "document": bundle, "generate_contexts": 300}
        report = _ok(other.post(f"/api/v1/projects/{moved}/imports", json=body), 201)
        assert report["written"] is True
        assert report["project_created"] is True
        assert report["counts"]["flags"] == {"created": 2, "updated": 0, "unchanged": 0}
        for env in ENVIRONMENTS:
            assert report["parity"][env]["agreement"] == 1.0
            assert report["parity"][env]["evaluations"] == 300 * 2
            assert _document(other, moved, env) == _document(admin, project, env)
        template = _ok(other.get(f"/api/v1/projects/{moved}/rollout-templates/careful"))
        assert template["gates"][0]["url"] == "http://prometheus.example:9090"
        # the same bundle again changes nothing
        again = _ok(other.post(f"/api/v1/projects/{moved}/imports", json=body), 200)
        assert again["written"] is False
        assert all(c["created"] == c["updated"] == 0 for c in again["counts"].values())


def test_a_refused_import_writes_nothing_on_the_other_instance(
    second: Server, admin: httpx.Client, project: str
) -> None:
    _populate(admin, project)
    bundle = _ok(admin.get(f"/api/v1/projects/{project}/export"))
    moved = unique("moved")
    with second.admin() as other:
        tampered = {**bundle, "segments": []}  # checkout's rule names segment staff
        refused = other.post(
            f"/api/v1/projects/{moved}/imports", json={"source": "fader", "document": tampered}
        )
        assert refused.status_code == 422, refused.text
        problem = refused.json()
        assert problem["category"] == "user_fixable"
        assert any("staff" in e["message"] for e in problem["errors"])
        future = {**bundle, "format": "fader-bundle/v9"}
        refused = other.post(
            f"/api/v1/projects/{moved}/imports", json={"source": "fader", "document": future}
        )
        assert refused.status_code == 422
        assert "fader-bundle/v9" in refused.json()["detail"]
        dry = other.post(
            f"/api/v1/projects/{moved}/imports",
            json={"source": "fader", "document": bundle, "dry_run": True},
        )
        assert _ok(dry)["written"] is False
        assert other.get(f"/api/v1/projects/{moved}").status_code == 404


def _member_token(server: Server, admin: httpx.Client, project: str, role: str) -> str:
    name = unique("u")
    password = "pw-" + unique("secret")
    _ok(admin.post("/api/v1/users", json={"username": name, "password": password}), 201)
    _ok(admin.put(f"/api/v1/projects/{project}/members/{name}", json={"role": role}))
    with server.client() as anonymous:
        login = anonymous.post("/api/v1/auth/login", json={"username": name, "password": password})
    return str(_ok(login, 201)["token"])


def test_editors_export_viewers_and_other_projects_cannot(
    server: Server, admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project, "base")
    other_project = unique("p")
    _ok(admin.post("/api/v1/projects", json={"key": other_project, "name": "Other"}), 201)
    path = f"/api/v1/projects/{project}/export"
    with server.client(_member_token(server, admin, project, "viewer")) as viewer:
        denied = viewer.get(path)
        assert denied.status_code == 403
        assert "editor" in denied.json()["detail"]
    with server.client(_member_token(server, admin, project, "editor")) as editor:
        assert _ok(editor.get(path))["project"]["key"] == project
    with server.client(_member_token(server, admin, other_project, "admin")) as outsider:
        assert outsider.get(path).status_code == 404
        refused = outsider.post(
            f"/api/v1/projects/{project}/imports",
            json={"source": "fader", "document": _ok(admin.get(path))},
        )
        assert refused.status_code == 404
    sdk_key = _ok(
        admin.post(
            "/api/v1/tokens",
            json={"kind": "server", "name": "s", "project": project, "environment": "staging"},
        ),
        201,
    )["token"]
    with server.client(sdk_key) as sdk:
        assert sdk.get(path).status_code == 403


def test_cli_export_writes_the_bundle_to_a_file_or_standard_output(
    server: Server, admin: httpx.Client, project: str, tmp_path: Path
) -> None:
    _populate(admin, project)
    target = tmp_path / "shop.json"
    summary = json.loads(
        ok(run(server, "export", "-p", project, "-o", str(target), "--json")).stdout
    )
    assert summary == {
        "project": project,
        "exported_at": summary["exported_at"],
        "environments": 3,
        "flags": 2,
        "segments": 1,
        "configurations": 5,
        "rollout_templates": 1,
        "file": str(target),
    }
    written = json.loads(target.read_text(encoding="utf-8"))
    assert written["format"] == "fader-bundle/v1"
    assert [p.name for p in tmp_path.iterdir()] == ["shop.json"]  # no temporary file left
    printed = json.loads(ok(run(server, "export", "-p", project)).stdout)
    assert printed["flags"] == written["flags"]
    table = ok(run(server, "export", "-p", project, "-o", str(target)))
    assert f"exported project {project} to {target}" in table.stderr
    missing = run(server, "export", "-p", unique("nope"))
    assert missing.exit_code != 0
    assert "does not exist" in missing.stderr


def test_cli_moves_a_project_with_export_then_import_fader(
    server: Server, second: Server, admin: httpx.Client, project: str, tmp_path: Path
) -> None:
    _populate(admin, project)
    bundle = tmp_path / "bundle.json"
    ok(run(server, "export", "-p", project, "-o", str(bundle)))
    moved = unique("moved")
    dry = run(second, "import", "fader", str(bundle), "-p", moved, "--dry-run", "--json")
    assert json.loads(ok(dry).stdout)["written"] is False
    report = json.loads(
        ok(run(second, "import", "fader", str(bundle), "-p", moved, "--json")).stdout
    )
    assert report["written"] is True
    assert all(p["complete"] for p in report["parity"].values())
    with second.admin() as other:
        for env in ENVIRONMENTS:
            assert _document(other, moved, env) == _document(admin, project, env)
