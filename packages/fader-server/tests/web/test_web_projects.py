"""The project list: instance administrators create projects there; others only see theirs."""

from __future__ import annotations

from web_console import ADMIN, PASSWORD, Console, add_user, csrf_of, http_login, unique


def test_an_instance_admin_creates_a_project_with_its_environments(console: Console) -> None:
    key = unique("new")
    with console.browser_client() as client:
        http_login(client, ADMIN, PASSWORD)
        page = client.get("/projects")
        assert "New project" in page.text
        token = csrf_of(page.text)
        wrong = client.post("/projects", data={"csrf_token": token, "key": "Bad Key", "name": ""})
        assert wrong.status_code == 422
        assert "&#39;Bad Key&#39; is not a valid key" in wrong.text
        assert "Enter a name for the project." in wrong.text
        created = client.post("/projects", data={"csrf_token": token, "key": key, "name": "New"})
        assert created.status_code == 303
        assert created.headers["location"] == f"/projects/{key}"
        dashboard = client.get(created.headers["location"])
        assert "Created project" in dashboard.text
        for environment in ("Development", "Staging", "Production (protected)"):
            assert environment in dashboard.text
        again = client.post("/projects", data={"csrf_token": token, "key": key, "name": "New"})
        assert again.status_code == 422
        assert "already exists" in again.text


def test_members_only_see_their_projects_and_cannot_create_one(
    console: Console, project: str
) -> None:
    with console.browser_client() as client:
        http_login(client, *add_user(console, project, "editor"))
        page = client.get("/projects")
        assert f"/projects/{project}" in page.text
        assert "/projects/demo" not in page.text
        assert "New project" not in page.text
        refused = client.post(
            "/projects", data={"csrf_token": csrf_of(page.text), "key": unique("x"), "name": "X"}
        )
        assert refused.status_code == 403
        assert "only instance administrators can create projects" in refused.text
