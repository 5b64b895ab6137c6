"""The OpenID providers the operator configured for single sign-on (docs/sso.md).

The configuration is a TOML file (``FADER_SSO_CONFIG``), read once at start::

    [[providers]]
    id = "corp"                        # in URLs: /login/sso/corp, fader login --sso corp
    name = "Corporate SSO"             # on the login button
    issuer = "https://id.example.com/realms/corp"
    client_id = "fader"
    client_secret_file = "/run/secrets/fader-sso-corp"   # or FADER_SSO_SECRET_CORP
    scopes = ["openid", "profile", "email", "groups"]
    groups_claim = "groups"
    admin_group = "fader-admins"       # optional: members are instance administrators
    [providers.groups]
    "payments-dev" = { payments = "editor", checkout = "viewer" }

The client secret is never in the file itself: it comes from the file the configuration names
or from the ``FADER_SSO_SECRET_<ID>`` variable (which :class:`~fader_server.settings.Settings`
collects), and :class:`SsoProvider` keeps it out of ``repr`` so a provider can be logged.
Every mistake is reported at start with the provider and the key, rather than at the first
login of a confused user.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fader_server.services.access import Role

PROVIDER_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
DEFAULT_SCOPES = ("openid", "profile", "email")
MAX_PROVIDERS = 20
MAX_GROUPS = 1000


class SsoConfigError(ValueError):
    """The single sign-on configuration cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class SsoProvider:
    """One OpenID provider: where it is, who Fader is there, and what its groups mean."""

    id: str
    name: str
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    groups_claim: str = "groups"
    group_roles: Mapping[str, Mapping[str, Role]] = field(default_factory=dict)
    """group → {project key: role}."""
    admin_group: str | None = None

    def roles_for(self, groups: frozenset[str]) -> dict[str, Role]:
        """project key → the highest role any of these groups grants there."""
        roles: dict[str, Role] = {}
        for group in sorted(groups):
            for project, role in self.group_roles.get(group, {}).items():
                roles[project] = max(role, roles.get(project, role))
        return roles


@dataclass(frozen=True, slots=True)
class SsoConfig:
    """Every configured provider, by id, in the order of the file (the login page's)."""

    providers: Mapping[str, SsoProvider] = field(default_factory=dict)

    def get(self, provider_id: str) -> SsoProvider | None:
        return self.providers.get(provider_id)

    @property
    def issuer_hosts(self) -> tuple[str, ...]:
        """Host names the operator named as issuers: outbound requests may reach them although
        they are internal (issuers often are)."""
        return tuple(sorted({urlsplit(p.issuer).hostname or "" for p in self.providers.values()}))

    @classmethod
    def parse(cls, data: Mapping[str, Any], secrets: Mapping[str, str]) -> SsoConfig:
        """Build from the TOML document; `secrets`: ``FADER_SSO_SECRET_<ID>`` values by id."""
        unknown = set(data) - {"providers"}
        if unknown:
            raise SsoConfigError(f"unknown top-level keys: {', '.join(sorted(unknown))}")
        entries = data.get("providers", [])
        if not isinstance(entries, list) or len(entries) > MAX_PROVIDERS:
            raise SsoConfigError(f"'providers' must be a list of at most {MAX_PROVIDERS} tables")
        providers: dict[str, SsoProvider] = {}
        for index, entry in enumerate(entries):
            provider = _provider(entry, index, secrets)
            if provider.id in providers:
                raise SsoConfigError(f"provider id '{provider.id}' is used twice")
            providers[provider.id] = provider
        return cls(providers)


_KEYS = {
    "id",
    "name",
    "issuer",
    "client_id",
    "client_secret_file",
    "scopes",
    "groups_claim",
    "groups",
    "admin_group",
}


def _provider(entry: Any, index: int, secrets: Mapping[str, str]) -> SsoProvider:
    where = f"providers[{index}]"
    if not isinstance(entry, dict):
        raise SsoConfigError(f"{where} must be a table")
    unknown = set(entry) - _KEYS
    if unknown:
        raise SsoConfigError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    provider_id = _text(entry.get("id"), f"{where}.id", 40)
    if not PROVIDER_ID.match(provider_id):
        raise SsoConfigError(f"{where}.id must be lowercase letters, digits and '-' (at most 40)")
    where = f"provider '{provider_id}'"
    issuer = _url(entry.get("issuer"), f"{where} issuer").rstrip("/")
    scopes = entry.get("scopes", list(DEFAULT_SCOPES))
    if (
        not isinstance(scopes, list)
        or "openid" not in scopes
        or not all(
            isinstance(s, str) and re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", s) for s in scopes
        )
    ):
        raise SsoConfigError(f"{where}: scopes must be a list of scope names including 'openid'")
    admin_group = entry.get("admin_group")
    if admin_group is not None:
        admin_group = _text(admin_group, f"{where} admin_group", 500)
    return SsoProvider(
        id=provider_id,
        name=_text(entry.get("name", provider_id), f"{where} name", 100),
        issuer=issuer,
        client_id=_text(entry.get("client_id"), f"{where} client_id", 500),
        client_secret=_secret(entry.get("client_secret_file"), secrets.get(provider_id), where),
        scopes=tuple(scopes),
        groups_claim=_text(entry.get("groups_claim", "groups"), f"{where} groups_claim", 200),
        group_roles=_group_roles(entry.get("groups", {}), where),
        admin_group=admin_group,
    )


def _text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise SsoConfigError(f"{what} must be a non-empty string of at most {limit} characters")
    return value.strip()


def _url(value: Any, what: str) -> str:
    text = _text(value, what, 500)
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise SsoConfigError(f"{what} must be an https:// URL without query or fragment")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SsoConfigError(f"{what} must use https (plain http only on this machine)")
    return text


def _secret(path: Any, from_env: str | None, where: str) -> str:
    if path is not None:
        if from_env:
            raise SsoConfigError(f"{where}: give the client secret in one place, not two")
        try:
            secret = Path(_text(path, f"{where} client_secret_file", 4096)).read_text().strip()
        except OSError as exc:
            raise SsoConfigError(
                f"{where}: cannot read client_secret_file ({exc.strerror})"
            ) from exc
    else:
        secret = (from_env or "").strip()
    if not secret:
        name = where.split("'")[1].upper().replace("-", "_")
        raise SsoConfigError(
            f"{where} has no client secret: set FADER_SSO_SECRET_{name} or client_secret_file"
        )
    return secret


def _group_roles(value: Any, where: str) -> dict[str, dict[str, Role]]:
    if not isinstance(value, dict) or len(value) > MAX_GROUPS:
        raise SsoConfigError(f"{where}: groups must be a table of at most {MAX_GROUPS} groups")
    mapping: dict[str, dict[str, Role]] = {}
    for group, projects in value.items():
        if not isinstance(projects, dict) or not projects:
            raise SsoConfigError(f"{where}: group '{group}' must map project keys to roles")
        roles: dict[str, Role] = {}
        for project, role in projects.items():
            try:
                roles[str(project)] = Role.parse(str(role))
            except KeyError:
                raise SsoConfigError(
                    f"{where}: group '{group}', project '{project}': role must be viewer, "
                    "editor or admin"
                ) from None
        mapping[str(group)] = roles
    return mapping
