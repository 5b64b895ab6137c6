"""`fader login` / `fader logout` against a real server (SQLite and PostgreSQL).

Each test has its own configuration directory (XDG_CONFIG_HOME in a tmp dir), so nothing a
developer keeps in ~/.config is read or written. Checked: the token is kept with modes 0600 and
0700 and is never printed; `--token` beats FADER_TOKEN beats the kept login; a token kept for
one server is never sent to another; logout revokes the token login created (and only that
one); refused logins and unsafe or broken files keep nothing and say why.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest import Server
from server_api import unique
from typer.testing import CliRunner, Result

from fader_server.cli import logins
from fader_server.cli.main import app

runner = CliRunner()


def fader(config: Path, *args: str, stdin: str | None = None, **env: str | None) -> Result:
    """`fader ARGS` with no connection variables but those given, and `config` as the
    configuration directory."""
    variables: dict[str, str | None] = {
        "XDG_CONFIG_HOME": str(config),
        "FADER_URL": None,
        "FADER_TOKEN": None,
        "FADER_PROJECT": None,
    }
    variables.update(env)
    return runner.invoke(app, list(args), input=stdin, env=variables)


def login(server: Server, config: Path) -> Result:
    return fader(
        config,
        *("login", "--url", server.url, "--username", "admin", "--password-stdin"),
        stdin=server.admin_password + "\n",
    )


def kept(config: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((config / "fader" / "logins.json").read_text())
    return document


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def status_with(server: Server, token: str) -> int:
    with server.client(token) as client:
        return client.get("/api/v1/projects").status_code


def test_login_keeps_a_token_only_its_owner_can_read_and_commands_use_it(
    server: Server, tmp_path: Path
) -> None:
    result = login(server, tmp_path)
    assert result.exit_code == 0, result.stderr
    path = tmp_path / "fader" / "logins.json"
    assert (mode(path), mode(path.parent)) == (0o600, 0o700)
    entry = kept(tmp_path)["servers"][server.url]
    assert kept(tmp_path)["current"] == server.url
    assert entry["username"] == "admin"
    assert isinstance(entry["token_id"], int)
    assert server.admin_password not in path.read_text()
    assert entry["token"] not in result.stdout + result.stderr
    assert f"Logged in to {server.url} as admin" in result.stderr

    # No --url, no FADER_URL, no token: the kept login names both.
    listed = fader(tmp_path, "projects", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)


def test_a_flag_beats_the_environment_which_beats_the_kept_login(
    server: Server, tmp_path: Path
) -> None:
    assert login(server, tmp_path).exit_code == 0
    bogus = "fdr_admin_" + "x" * 40
    refused = fader(tmp_path, "projects", "list", FADER_TOKEN=bogus)
    assert refused.exit_code == 1
    assert "refused the API token" in refused.stderr
    flagged = fader(tmp_path, "projects", "list", "--token", server.admin_token, FADER_TOKEN=bogus)
    assert flagged.exit_code == 0, flagged.stderr


def test_a_token_kept_for_one_server_is_not_sent_to_another(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert login(server, tmp_path).exit_code == 0
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    token = kept(tmp_path)["servers"][server.url]["token"]
    assert logins.resolve(None, None) == (server.url, token)
    assert logins.resolve(server.url + "/", None) == (server.url, token)
    assert logins.resolve("http://127.0.0.1:9", None) == ("http://127.0.0.1:9", None)
    assert logins.resolve(None, "given") == (server.url, "given")


def test_logout_revokes_the_token_login_created_and_forgets_it(
    server: Server, tmp_path: Path
) -> None:
    assert login(server, tmp_path).exit_code == 0
    token = kept(tmp_path)["servers"][server.url]["token"]
    assert status_with(server, token) == 200
    result = fader(tmp_path, "logout")
    assert result.exit_code == 0, result.stderr
    assert f"Logged out of {server.url}" in result.stderr
    assert status_with(server, token) == 401
    assert kept(tmp_path) == {"current": None, "servers": {}}
    after = fader(tmp_path, "projects", "list", "--url", server.url)
    assert after.exit_code == 1
    assert "No API token was given" in after.stderr
    assert f"fader login --url {server.url}" in after.stderr
    again = fader(tmp_path, "logout", "--url", server.url)
    assert (again.exit_code, again.stderr.strip()) == (0, f"Not logged in to {server.url}.")


def test_a_token_from_stdin_is_checked_kept_and_never_revoked_by_logout(
    server: Server, tmp_path: Path
) -> None:
    bogus = fader(tmp_path, "login", "--url", server.url, "--token-stdin", stdin="fdr_admin_nope\n")
    assert bogus.exit_code == 1
    assert f"{server.url} refused the login" in bogus.stderr
    assert not (tmp_path / "fader" / "logins.json").exists()

    stored = fader(
        tmp_path, "login", "--url", server.url, "--token-stdin", stdin=server.admin_token + "\n"
    )
    assert stored.exit_code == 0, stored.stderr
    entry = kept(tmp_path)["servers"][server.url]
    assert (entry["token"], entry["token_id"]) == (server.admin_token, None)
    assert fader(tmp_path, "logout").exit_code == 0
    assert status_with(server, server.admin_token) == 200  # not ours to revoke


def test_a_refused_password_keeps_nothing(server: Server, tmp_path: Path) -> None:
    result = fader(
        tmp_path,
        *("login", "--url", server.url, "-u", unique("nobody"), "--password-stdin"),
        stdin="wrong-password\n",
    )
    assert result.exit_code == 1
    assert f"{server.url} refused the login" in result.stderr
    assert "fader login" not in result.stderr  # no advice to do what just failed
    assert not (tmp_path / "fader").exists()


def test_the_password_is_prompted_for_without_echo(server: Server, tmp_path: Path) -> None:
    result = fader(
        tmp_path, "login", stdin=f"admin\n{server.admin_password}\n", FADER_URL=server.url
    )
    assert result.exit_code == 0, result.stderr
    assert "Username:" in result.stdout
    assert "Password:" in result.stdout
    assert server.admin_password not in result.stdout + result.stderr
    assert kept(tmp_path)["current"] == server.url


def test_a_logins_file_other_users_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fader" / "logins.json"
    path.parent.mkdir()
    path.write_text('{"current": null, "servers": {}}')
    path.chmod(0o644)
    result = fader(tmp_path, "projects", "list")
    assert result.exit_code == 2
    assert "accessible by other users (mode 644)" in result.stderr
    assert f"chmod 600 {path}" in result.stderr


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"servers": []}',
        '{"servers": {"http://x": {"token": 5}}}',
        '{"servers": {"http://x": {"token": "t", "token_id": -1}}}',
    ],
)
def test_a_broken_logins_file_is_named_and_not_used(tmp_path: Path, content: str) -> None:
    path = tmp_path / "fader" / "logins.json"
    path.parent.mkdir()
    path.write_text(content)
    path.chmod(0o600)
    result = fader(tmp_path, "projects", "list")
    assert result.exit_code == 2
    assert f"{path} is not a logins file" in result.stderr


def test_the_configuration_directory_follows_xdg() -> None:
    assert logins.config_dir({"XDG_CONFIG_HOME": "/srv/conf"}) == Path("/srv/conf/fader")
    home = Path.home() / ".config" / "fader"
    assert logins.config_dir({}) == home
    assert logins.config_dir({"XDG_CONFIG_HOME": "relative/dir"}) == home  # not absolute


def test_a_server_url_never_reaches_the_login_file_without_a_login(tmp_path: Path) -> None:
    """A command that fails to connect writes nothing to the configuration directory."""
    result = fader(tmp_path, "projects", "list", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert not (tmp_path / "fader").exists()
