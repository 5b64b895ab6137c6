"""The console acts through the services' permission checks: what a role cannot do has no
control on the page, and posting the form anyway gets the service's 403."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from web_console import Console, add_user, config, csrf_of, http_login, unique


@contextmanager
def _logged_in(console: Console, username: str, password: str) -> Iterator[httpx.Client]:
    with console.browser_client() as client:
        assert http_login(client, username, password).status_code == 303
        yield client


def test_a_viewer_sees_no_edit_controls_and_gets_403_when_posting_anyway(
    console: Console, project: str
) -> None:
    with _logged_in(console, *add_user(console, project, "viewer")) as viewer:
        flags = viewer.get(f"/projects/{project}/flags?env=production")
        assert flags.status_code == 200
        assert "New checkout" in flags.text
        assert "Turn off" not in flags.text
        assert "New flag" not in flags.text
        detail = viewer.get(f"/projects/{project}/flags/new-checkout?env=staging")
        assert "Edit rules" not in detail.text
        assert "Edit details" not in detail.text
        assert "Read-only for you" in detail.text
        token = csrf_of(flags.text)
        refused = viewer.post(
            f"/projects/{project}/flags/new-checkout/toggle",
            data={"csrf_token": token, "env": "staging", "enabled": "on", "confirmed": "yes"},
        )
        assert refused.status_code == 403
        assert "needs the editor role" in refused.text
        assert config(console, project, "staging", "new-checkout")["enabled"] is False
        created = viewer.post(
            f"/projects/{project}/flags/_new",
            data={
                "csrf_token": token,
                "key": "sneaky",
                "name": "Sneaky",
                "action": "save",
                "variants-0-name": "on",
                "variants-0-value": "true",
            },
        )
        assert created.status_code == 403
        assert viewer.get(f"/projects/{project}/flags/new-checkout/rules").status_code == 403
        assert viewer.get(f"/projects/{project}/tokens").status_code == 403
        assert viewer.get(f"/projects/{project}/webhooks").status_code == 403
        hook = viewer.post(
            f"/projects/{project}/webhooks",
            data={"csrf_token": token, "url": "http://127.0.0.1:9/x", "events": "flag"},
        )
        assert hook.status_code == 403
        assert "Webhooks" not in viewer.get(f"/projects/{project}/flags").text


def test_an_editor_can_switch_staging_but_not_protected_production(
    console: Console, project: str
) -> None:
    with _logged_in(console, *add_user(console, project, "editor")) as editor:
        production = editor.get(f"/projects/{project}/flags?env=production")
        assert "Turn off" not in production.text
        assert "only project admins can turn flags on or off here" in production.text
        staging = editor.get(f"/projects/{project}/flags?env=staging")
        assert 'Turn on<span class="visually-hidden"> new-checkout in Staging' in staging.text
        token = csrf_of(staging.text)
        refused = editor.post(
            f"/projects/{project}/flags/new-checkout/toggle",
            data={"csrf_token": token, "env": "production", "enabled": "off", "confirmed": "yes"},
        )
        assert refused.status_code == 403
        assert "needs the admin role" in refused.text
        assert config(console, project, "production", "new-checkout")["enabled"] is True
        allowed = editor.post(
            f"/projects/{project}/flags/new-checkout/toggle",
            data={"csrf_token": token, "env": "staging", "enabled": "on"},
        )
        assert allowed.status_code == 303
        assert config(console, project, "staging", "new-checkout")["enabled"] is True


def test_someone_without_a_role_cannot_tell_the_project_exists(
    console: Console, project: str
) -> None:
    other_project = unique("other")
    with console.api() as api:
        api.post("/api/v1/projects", json={"key": other_project, "name": "Other"})
    with _logged_in(console, *add_user(console, other_project, "admin")) as outsider:
        response = outsider.get(f"/projects/{project}/flags")
        assert response.status_code == 404
        assert "does not exist or you have no access to it" in response.text
        assert project not in outsider.get("/projects").text
