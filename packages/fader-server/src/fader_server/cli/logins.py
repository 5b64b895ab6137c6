"""The tokens `fader login` keeps, per server, in the user's configuration directory.

The file is ``$XDG_CONFIG_HOME/fader/logins.json`` (``~/.config/fader/logins.json`` when the
variable is unset or not absolute, as the XDG base-directory specification says). It holds API
tokens, so it is treated like an SSH key: the directory is created with mode 0700, the file is
written with mode 0600 (to a new file, then renamed over the old one, so a crash never leaves
half a file and the secret is never briefly readable by others), and a file that other users
can read or write is refused rather than used.

Which server and token a command uses, first found wins::

    server: --url, FADER_URL, the server of the last `fader login`, http://127.0.0.1:8400
    token:  --token, FADER_TOKEN, the token `fader login` kept for that server

so a token kept for one server is never sent to another one.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fader_server.cli.client import DEFAULT_URL
from fader_server.cli.eval import InputError

FILE_NAME = "logins.json"
MAX_FILE_BYTES = 1024 * 1024
"""A logins file is a few hundred bytes per server; anything far larger is not one."""


@dataclass(frozen=True, slots=True)
class Login:
    """What `fader login` kept for one server. `token_id` is set when `fader login` created the
    token (with a password), so `fader logout` can revoke it on the server."""

    token: str
    username: str | None = None
    token_id: int | None = None
    expires_at: str | None = None


@dataclass(frozen=True, slots=True)
class Logins:
    """Every kept login, by server URL, and the server the last `fader login` chose."""

    servers: dict[str, Login]
    current: str | None = None


def config_dir(env: dict[str, str] | None = None) -> Path:
    source = os.environ if env is None else env
    base = source.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "fader"


def logins_path() -> Path:
    return config_dir() / FILE_NAME


def normalize_url(url: str) -> str:
    """The key a server is kept under: no trailing slash, so ``…:8400/`` is ``…:8400``."""
    return url.strip().rstrip("/")


def read_logins(path: Path | None = None) -> Logins:
    """The kept logins; none when the file does not exist."""
    path = path or logins_path()
    try:
        with path.open("rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise InputError(
                    f"{path} is accessible by other users (mode {stat.S_IMODE(mode):o}); it holds "
                    f"API tokens: run `chmod 600 {path}` or delete it and `fader login` again"
                )
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return Logins({})
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"{path} is larger than {MAX_FILE_BYTES} bytes: not a logins file")
    return _parse(data, path)


def _parse(data: bytes, path: Path) -> Logins:
    broken = InputError(f"{path} is not a logins file; delete it and `fader login` again")
    try:
        value: Any = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise broken from exc
    if not isinstance(value, dict) or not isinstance(value.get("servers", {}), dict):
        raise broken
    servers: dict[str, Login] = {}
    for url, entry in value.get("servers", {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            raise broken
        token_id = entry.get("token_id")
        username = entry.get("username")
        expires_at = entry.get("expires_at")
        if not (token_id is None or (isinstance(token_id, int) and token_id > 0)):
            raise broken
        if not all(v is None or isinstance(v, str) for v in (username, expires_at)):
            raise broken
        servers[url] = Login(entry["token"], username, token_id, expires_at)
    current = value.get("current")
    return Logins(servers, current if isinstance(current, str) else None)


def write_logins(logins: Logins, path: Path | None = None) -> Path:
    """Replace the file with `logins`, readable by its owner only (see the module docstring)."""
    path = path or logins_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)  # an existing directory of ours is tightened too
    document = {
        "current": logins.current,
        "servers": {url: asdict(login) for url, login in sorted(logins.servers.items())},
    }
    text = json.dumps(document, indent=2) + "\n"
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def chosen_server(url: str | None, logins: Logins) -> str:
    """The server a command talks to: `url` (flag or FADER_URL), else the last login's."""
    return normalize_url(url or logins.current or DEFAULT_URL)


def resolve(url: str | None, token: str | None) -> tuple[str, str | None]:
    """The server and token a command uses (precedence in the module docstring). `url` and
    `token` are what the command line or the environment gave (None: neither)."""
    if url and token:
        return normalize_url(url), token
    logins = read_logins()
    server = chosen_server(url, logins)
    if token:
        return server, token
    kept = logins.servers.get(server)
    return server, kept.token if kept else None
