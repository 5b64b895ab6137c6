"""The console's core flows once more on PostgreSQL (full-text search is the backend's own
there): search, the kill switch with its confirmation page, the engine's check, revert."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web_console import (
    ADMIN,
    PASSWORD,
    Console,
    config,
    csrf_of,
    fader_serve,
    http_login,
    postgres_database,
    seed_project,
)


@pytest.fixture(scope="module")
def pg_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with postgres_database() as url, fader_serve(tmp_path_factory.mktemp("pg"), url) as running:
        yield running


def test_search_kill_switch_check_and_revert_on_postgresql(pg_console: Console) -> None:
    project = seed_project(pg_console)
    with pg_console.browser_client() as client:
        assert http_login(client, ADMIN, PASSWORD).status_code == 303
        found = client.get(
            f"/projects/{project}/flags", params={"env": "production", "q": "checkout"}
        )
        assert "2 flags match “checkout”" in found.text
        assert "search-page-size" not in found.text
        token = csrf_of(found.text)
        path = f"/projects/{project}/flags/new-checkout/toggle"
        form = {"csrf_token": token, "env": "production", "enabled": "off"}
        asked = client.post(path, data=form)
        assert asked.status_code == 200
        assert "Production is a protected environment." in asked.text
        assert config(pg_console, project, "production", "new-checkout")["enabled"] is True
        done = client.post(path, data={**form, "confirmed": "yes", "comment": "on fire"})
        assert done.status_code == 303
        assert config(pg_console, project, "production", "new-checkout")["enabled"] is False

        check = client.post(
            f"/projects/{project}/flags/new-checkout/rules/check",
            data={
                "csrf_token": token,
                "env": "production",
                "off-variant": "off",
                "default-serve": "split",
                "default-weight-0": "10",
                "default-weight-1": "80",
            },
        )
        assert check.json() == {
            "problems": [
                {
                    "field": "default-weights",
                    "message": "split weights of the default of flag 'new-checkout' sum to 90%; "
                    "they must sum to exactly 100%",
                }
            ]
        }

        reverted = client.post(
            f"/projects/{project}/history/revert",
            data={
                "csrf_token": token,
                "env": "production",
                "type": "config",
                "key": "new-checkout",
                "environment": "production",
                "version": "1",
                "confirmed": "yes",
            },
        )
        assert reverted.status_code == 303
        restored = config(pg_console, project, "production", "new-checkout")
        assert restored["enabled"] is True
        assert restored["version"] == 3
