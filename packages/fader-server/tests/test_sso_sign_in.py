"""Single sign-on's own rules, without a provider (the protocol runs against a real OpenID
provider in ``tests/web/test_web_sso.py``): the operator's configuration, an attempt's
state/nonce/verifier and what tampering does to them, and signing in over the in-memory store
(a user per issuer and subject, memberships following groups, hand-given roles kept)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fader_server.errors import PermissionDeniedError
from fader_server.services import Services
from fader_server.services.access import Principal
from fader_server.services.sso import Identity, SsoService, username_base
from fader_server.services.sso_flow import FLOW_LIFETIME, Flow, challenge_of, is_loopback_redirect
from fader_server.services.sso_providers import SsoConfig, SsoConfigError, SsoProvider
from fader_server.settings import Settings
from fader_server.storage.memory import MemoryStore

ADMIN = Principal("user:admin", instance_admin=True)
NOW = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)
ISSUER = "https://id.example.com/realms/corp"
PROVIDER = {
    "id": "corp",
    "name": "Corp ID",
    "issuer": ISSUER + "/",
    "client_id": "fader",
    "scopes": ["openid", "profile", "groups"],
    "admin_group": "fader-admins",
    "groups": {
        "payments": {"pay": "editor", "shop": "viewer"},
        "shop-admins": {"shop": "admin"},
        "ghosts": {"not-created-yet": "viewer"},
    },
}


# ------------------------------------------------------------------------- configuration
def test_configuration_reads_providers_secrets_and_mappings(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")
    config = SsoConfig.parse(
        {
            "providers": [
                PROVIDER,
                {**PROVIDER, "id": "okta", "client_secret_file": str(secret_file)},
            ],
        },
        {"corp": "from-the-environment"},
    )
    corp = config.get("corp")
    assert corp is not None
    assert corp.issuer == ISSUER  # a trailing slash is not part of the comparison
    assert corp.client_secret == "from-the-environment"
    assert "from-the-environment" not in repr(corp)
    assert config.providers["okta"].client_secret == "from-a-file"
    assert config.issuer_hosts == ("id.example.com",)
    roles = corp.roles_for(frozenset({"payments", "shop-admins", "unmapped"}))
    assert {key: role.label for key, role in roles.items()} == {
        "pay": "editor",
        "shop": "admin",  # the highest role any group grants
    }


@pytest.mark.parametrize(
    ("change", "secrets", "message"),
    [
        ({"id": "Corp"}, {"corp": "s"}, "lowercase"),
        ({"issuer": "http://id.example.com"}, {"corp": "s"}, "https"),
        ({"scopes": ["profile"]}, {"corp": "s"}, "openid"),
        ({"groups": {"g": {"pay": "owner"}}}, {"corp": "s"}, "viewer, editor or admin"),
        ({"client_secret": "inline"}, {"corp": "s"}, "unknown keys client_secret"),
        ({}, {}, "FADER_SSO_SECRET_CORP"),
    ],
)
def test_configuration_mistakes_are_named(
    change: dict[str, object], secrets: dict[str, str], message: str
) -> None:
    with pytest.raises(SsoConfigError, match=message):
        SsoConfig.parse({"providers": [{**PROVIDER, **change}]}, secrets)


def test_settings_collect_sso_secrets_and_the_local_login_switch() -> None:
    settings = Settings.load(
        {
            "FADER_SSO_CONFIG": "/etc/fader/sso.toml",
            "FADER_SSO_SECRET_CORP_EU": "s3cret",
            "FADER_LOCAL_LOGIN": "false",
        }
    )
    assert settings.sso_config == Path("/etc/fader/sso.toml")
    assert settings.sso_secrets == {"corp-eu": "s3cret"}
    assert not settings.local_login
    assert "s3cret" not in repr(settings)
    with pytest.raises(ValueError, match="FADER_LOCAL_LOGIN"):
        Settings.load({"FADER_LOCAL_LOGIN": "maybe"})


# ------------------------------------------------------------------------------ attempts
def test_an_attempt_derives_state_nonce_and_verifier_and_survives_its_cookie() -> None:
    flow = Flow.begin("corp", "https://fader.example.com/login/sso/corp/callback", "/p", NOW)
    again = Flow.decode(flow.encode())
    assert again == flow
    assert len({flow.state, flow.nonce, flow.verifier}) == 3
    assert len(flow.verifier) == 43
    assert challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636 appendix B
    )
    assert flow.matches(flow.state)
    assert not flow.matches(flow.nonce)
    assert not flow.expired(NOW + FLOW_LIFETIME)
    assert flow.expired(NOW + FLOW_LIFETIME + timedelta(seconds=1))
    assert flow.expired(NOW - timedelta(seconds=1))


@pytest.mark.parametrize("field", ["provider", "redirect_uri", "next_path", "issued"])
def test_changing_any_part_of_an_attempt_breaks_its_state(field: str) -> None:
    flow = Flow.begin("corp", "http://127.0.0.1:8400/login/sso/corp/callback", "/p", NOW)
    changed = {"provider": "okta", "redirect_uri": "https://evil.example/cb", "next_path": "/x"}
    fields = {
        "provider": flow.provider,
        "redirect_uri": flow.redirect_uri,
        "next_path": flow.next_path,
        "issued": flow.issued,
        "secret": flow.secret,
    }
    fields[field] = changed.get(field, flow.issued + 3600)
    forged = Flow(**fields)  # type: ignore[arg-type]
    assert not forged.matches(flow.state)
    assert forged.nonce != flow.nonce


@pytest.mark.parametrize("text", ["", "x" * 5000, "bm90IGpzb24", "WzEsMiwzXQ", None])
def test_what_is_not_an_attempt_decodes_to_none(text: str | None) -> None:
    assert Flow.decode(text) is None


@pytest.mark.parametrize(
    ("uri", "loopback"),
    [
        ("http://127.0.0.1:53123/callback", True),
        ("http://127.0.0.1:80/callback", False),  # a privileged port is not a CLI's
        ("http://localhost:53123/callback", False),
        ("https://127.0.0.1:53123/callback", False),
        ("http://127.0.0.1:53123/callback?x=1", False),
        ("http://127.0.0.1:53123@evil.example/callback", False),
    ],
)
def test_only_the_cli_loopback_redirect_is_accepted(uri: str, loopback: bool) -> None:
    assert is_loopback_redirect(uri) is loopback


# ------------------------------------------------------------------------------- sign-in
class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def services() -> Iterator[Services]:
    store = MemoryStore()
    found = Services.over(store, Clock())
    for key in ("pay", "shop", "ops"):
        found.projects.create(ADMIN, key, key.title())
    yield found
    store.close()


@pytest.fixture
def provider() -> SsoProvider:
    found = SsoConfig.parse({"providers": [PROVIDER]}, {"corp": "s"}).get("corp")
    assert found is not None
    return found


def _identity(subject: str, *groups: str, username: str | None = "alice") -> Identity:
    return Identity(ISSUER, subject, username, f"{subject}@example.com", frozenset(groups))


def _roles(services: Services, username: str) -> dict[str, str]:
    found = {}
    for key in ("pay", "shop", "ops"):
        for user, role in services.projects.members(ADMIN, key):
            if user.username == username:
                found[key] = role
    return found


def test_first_sign_in_creates_a_user_with_the_groups_roles(
    services: Services, provider: SsoProvider
) -> None:
    sso = SsoService(services.store, services.identity.clock, services.identity)
    signed = sso.sign_in(provider, _identity("s-1", "payments", "unknown-group"), "console")
    assert signed.user.username == "alice"
    assert _roles(services, "alice") == {"pay": "editor", "shop": "viewer"}
    assert services.identity.authenticate(signed.issued.secret).user_id == signed.user.id
    assert signed.issued.token.expires_at == NOW + timedelta(hours=12)
    # the same person again is the same user; another person named alice gets alice-2
    assert sso.sign_in(provider, _identity("s-1", "payments"), "c").user.id == signed.user.id
    assert sso.sign_in(provider, _identity("s-2"), "c").user.username == "alice-2"
    # nobody can log in to an SSO user with a password
    with pytest.raises(Exception, match="wrong password"):
        services.identity.login("alice", "", "127.0.0.1")


def test_groups_are_synchronised_and_hand_given_roles_are_kept(
    services: Services, provider: SsoProvider
) -> None:
    sso = SsoService(services.store, services.identity.clock, services.identity)
    sso.sign_in(provider, _identity("s-1", "payments", "fader-admins"), "c")
    assert services.identity.authenticate(
        sso.sign_in(provider, _identity("s-1", "payments", "fader-admins"), "c").issued.secret
    ).instance_admin
    services.projects.set_member(ADMIN, "ops", "alice", "viewer", None)  # by hand
    signed = sso.sign_in(provider, _identity("s-1", "shop-admins"), "c")
    assert _roles(services, "alice") == {"shop": "admin", "ops": "viewer"}  # pay removed
    assert not services.identity.authenticate(signed.issued.secret).instance_admin
    sso.sign_in(provider, _identity("s-1"), "c")
    assert _roles(services, "alice") == {"ops": "viewer"}  # only what SSO granted is gone
    removal = services.projects.audit(ADMIN, "pay", limit=1, before_id=None)[0]
    assert (removal.actor, removal.action, removal.entity_key) == ("sso:corp", "remove", "alice")


def test_a_granted_role_changed_by_hand_becomes_the_administrators(
    services: Services, provider: SsoProvider
) -> None:
    sso = SsoService(services.store, services.identity.clock, services.identity)
    sso.sign_in(provider, _identity("s-1", "payments"), "c")
    services.projects.set_member(ADMIN, "shop", "alice", "editor", None)  # was viewer by group
    sso.sign_in(provider, _identity("s-1", "payments"), "c")
    assert _roles(services, "alice") == {"pay": "editor", "shop": "editor"}
    sso.sign_in(provider, _identity("s-1"), "c")  # no group left: the hand-changed role stays
    assert _roles(services, "alice") == {"shop": "editor"}


@pytest.mark.parametrize(
    ("preferred", "email", "expected"),
    [
        ("Alice.Smith", None, "alice.smith"),
        (None, "bob@example.com", "bob"),
        ("ümlaut user", None, "mlaut-user"),
        ("---", None, "sso-user"),
        (None, None, "sso-user"),
    ],
)
def test_usernames_come_from_the_claims(
    preferred: str | None, email: str | None, expected: str
) -> None:
    assert username_base(Identity(ISSUER, "s", preferred, email, frozenset())) == expected


def test_password_login_can_be_turned_off() -> None:
    store = MemoryStore()
    services = Services.over(store, Clock(), local_login=False)
    with pytest.raises(PermissionDeniedError, match="single sign-on"):
        services.identity.login("admin", "whatever", "127.0.0.1")
