"""The OpenID Connect relying party: discovery, keys, the code exchange and the ID token.

Everything here speaks to the operator's providers through the guarded client of
:mod:`.outbound_http`, with the issuers' hosts allowed besides ``FADER_OUTBOUND_ALLOW``
(issuers often live on an internal network; nothing a user types is ever fetched), no
redirects followed, a deadline and a byte cap on every answer.

- **Discovery** (``/.well-known/openid-configuration``) is cached for :data:`METADATA_TTL`;
  its ``issuer`` must be the configured one exactly (OpenID Connect Discovery 4.3), and its
  endpoints must use https unless the issuer itself is a loopback ``http://`` one (tests,
  development).
- **Keys** (``jwks_uri``) are cached for :data:`KEYS_TTL` and fetched again when an ID token
  names a key id not in the cache (the provider rotated its keys), at most once per
  :data:`KEYS_REFETCH_GAP`, so forged tokens with random key ids cannot make Fader hammer
  the provider.
- **The ID token** must be signed with an asymmetric algorithm the provider advertises, by one
  of its published keys: ``none`` and the HMAC family are refused outright (an HMAC "signed"
  with a public key is the classic algorithm confusion). Then ``iss``, ``aud`` (and ``azp``
  when there are several audiences), ``exp``, ``iat`` and ``nonce`` are checked, with a
  minute of leeway for clocks.
- The client secret goes only into the token request's ``Authorization`` header; errors are
  reduced to :class:`OidcError` messages that name what failed, never a secret or a token.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from fader_server.runtime import outbound_http
from fader_server.services.identity import IdentityService
from fader_server.services.outbound_policy import OutboundPolicy
from fader_server.services.sso import Identity, SsoService, SsoTx
from fader_server.services.sso_providers import SsoConfig, SsoConfigError, SsoProvider
from fader_server.storage.ports.store import Store

METADATA_TTL = 3600.0
KEYS_TTL = 3600.0
KEYS_REFETCH_GAP = 30.0
DEADLINE = 10.0
MAX_DOCUMENT = 256 * 1024
MAX_GROUPS = 1000
LEEWAY = 60
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
USER_AGENT = "Fader-SSO/1"


class OidcError(Exception):
    """A provider could not be used, or its answer was refused; the message is for people."""


@dataclass(frozen=True, slots=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None
    signing_algs: frozenset[str]


@dataclass(frozen=True, slots=True)
class Exchanged:
    identity: Identity
    id_token: str


@dataclass(slots=True)
class _Keys:
    keys: KeySet
    kids: frozenset[str]
    fetched: float


class OidcClient:
    """One per process, shared by every request; thread-safe (caches behind a lock)."""

    def __init__(
        self,
        config: SsoConfig,
        outbound: OutboundPolicy,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        allowed = [*(str(n) for n in outbound.networks), *outbound.hosts, *config.issuer_hosts]
        self._http = outbound_http.client(OutboundPolicy.parse(allowed), user_agent=USER_AGENT)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._metadata: dict[str, tuple[float, Metadata]] = {}
        self._keys: dict[str, _Keys] = {}

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ discovery
    def metadata(self, provider: SsoProvider) -> Metadata:
        now = self._monotonic()
        with self._lock:
            cached = self._metadata.get(provider.id)
        if cached is not None and now - cached[0] < METADATA_TTL:
            return cached[1]
        document = self._get_json(
            provider, provider.issuer + "/.well-known/openid-configuration", "discovery document"
        )
        metadata = _metadata(provider, document)
        with self._lock:
            self._metadata[provider.id] = (now, metadata)
        return metadata

    def authorization_url(
        self, provider: SsoProvider, redirect_uri: str, state: str, nonce: str, challenge: str
    ) -> str:
        endpoint = self.metadata(provider).authorization_endpoint
        query = urlencode(
            {
                "response_type": "code",
                "client_id": provider.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(provider.scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
            quote_via=quote,
        )
        return endpoint + ("&" if "?" in endpoint else "?") + query

    def end_session_url(
        self, provider: SsoProvider, id_token: str, post_logout_redirect_uri: str
    ) -> str | None:
        """Where to send the browser to end the provider's session too (RP-initiated logout),
        or None when the provider advertises no ``end_session_endpoint``."""
        endpoint = self.metadata(provider).end_session_endpoint
        if endpoint is None:
            return None
        query = urlencode(
            {
                "id_token_hint": id_token,
                "post_logout_redirect_uri": post_logout_redirect_uri,
                "client_id": provider.client_id,
            }
        )
        return endpoint + ("&" if "?" in endpoint else "?") + query

    # --------------------------------------------------------------- the exchange
    def exchange(
        self, provider: SsoProvider, code: str, redirect_uri: str, verifier: str, nonce: str
    ) -> Exchanged:
        """Redeem an authorization code (with its PKCE verifier) and validate the ID token."""
        metadata = self.metadata(provider)
        credentials = (
            f"{quote(provider.client_id, safe='')}:{quote(provider.client_secret, safe='')}"
        )
        body = urlencode(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            }
        ).encode()
        headers = {
            "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode(),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        answer = self._send(
            provider, "POST", metadata.token_endpoint, "token endpoint", headers, body
        )
        document = _json_object(answer.body, "the token endpoint's answer")
        if answer.status != 200:
            error = document.get("error")
            reason = (
                error if isinstance(error, str) and error.isascii() and len(error) < 80 else None
            )
            raise OidcError(
                f"{provider.name} refused the authorization code"
                + (f" ({reason})" if reason else f" (HTTP {answer.status})")
                + "; it may have expired or been used already. Sign in again."
            )
        id_token = document.get("id_token")
        if not isinstance(id_token, str) or len(id_token) > MAX_DOCUMENT:
            raise OidcError(f"{provider.name} sent no ID token; is 'openid' among the scopes?")
        claims = self.validate(provider, id_token, nonce)
        return Exchanged(_identity(provider, claims), id_token)

    def validate(self, provider: SsoProvider, id_token: str, nonce: str) -> Mapping[str, Any]:
        """The ID token's claims, once its signature and claims are checked (module docstring)."""
        metadata = self.metadata(provider)
        try:
            header = extract_compact(id_token.encode()).protected
        except (JoseError, ValueError) as exc:
            raise OidcError(f"{provider.name} sent an ID token that is not a signed JWT") from exc
        alg = header.get("alg")
        if alg not in ASYMMETRIC or alg not in metadata.signing_algs:
            raise OidcError(
                f"the ID token from {provider.name} is signed with '{alg}', which Fader does not "
                "accept (only the asymmetric algorithms the provider advertises)"
            )
        kid = header.get("kid")
        keys = self._key_set(provider, metadata, kid if isinstance(kid, str) else None)
        try:
            token = jwt.decode(id_token, keys, algorithms=[alg])
            registry = jwt.JWTClaimsRegistry(
                leeway=LEEWAY,
                iss={"essential": True, "value": metadata.issuer},
                sub={"essential": True},
                aud={"essential": True, "value": provider.client_id},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            )
            registry.validate(token.claims)
        except JoseError as exc:
            raise OidcError(
                f"the ID token from {provider.name} was refused ({exc.error}); sign in again"
            ) from exc
        claims = token.claims
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != provider.client_id:
            raise OidcError(f"the ID token from {provider.name} was issued to another client")
        return claims

    def _key_set(self, provider: SsoProvider, metadata: Metadata, kid: str | None) -> KeySet:
        now = self._monotonic()
        with self._lock:
            cached = self._keys.get(provider.id)
        fresh = cached is not None and now - cached.fetched < KEYS_TTL
        unknown = cached is not None and kid is not None and kid not in cached.kids
        may_refetch = cached is None or now - cached.fetched >= KEYS_REFETCH_GAP
        if cached is None or not fresh or (unknown and may_refetch):
            document = self._get_json(provider, metadata.jwks_uri, "signing keys")
            try:
                keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise OidcError(
                    f"{provider.name} publishes signing keys Fader cannot read"
                ) from exc
            kids = frozenset(str(k.kid) for k in keys.keys if k.kid is not None)
            cached = _Keys(keys, kids, now)
            with self._lock:
                self._keys[provider.id] = cached
        if kid is not None and kid not in cached.kids:
            raise OidcError(
                f"the ID token from {provider.name} names a signing key it does not publish"
            )
        return cached.keys

    # ---------------------------------------------------------------------- HTTP
    def _get_json(self, provider: SsoProvider, url: str, what: str) -> dict[str, Any]:
        answer = self._send(provider, "GET", url, what, {"Accept": "application/json"}, None)
        if answer.status != 200:
            raise OidcError(f"{provider.name} answered HTTP {answer.status} for its {what}")
        return _json_object(answer.body, f"{provider.name}'s {what}")

    def _send(
        self,
        provider: SsoProvider,
        method: str,
        url: str,
        what: str,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> outbound_http.Answer:
        try:
            return outbound_http.fetch(
                self._http,
                method,
                url,
                deadline=time.monotonic() + DEADLINE,
                limit=MAX_DOCUMENT,
                headers=headers,
                content=body,
            )
        except outbound_http.FetchError as exc:
            raise OidcError(
                f"Fader could not reach {provider.name} for its {what} ({exc.error}); "
                "try again, or tell the operator if it persists"
            ) from exc


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise OidcError(f"{what} is not JSON") from exc
    if not isinstance(document, dict):
        raise OidcError(f"{what} is not a JSON object")
    return document


def _endpoint(
    provider: SsoProvider, document: Mapping[str, Any], name: str, *, required: bool
) -> str | None:
    value = document.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or len(value) > 2000:
        raise OidcError(f"{provider.name}'s discovery document has no usable {name}")
    parts = urlsplit(value)
    loopback_issuer = urlsplit(provider.issuer).scheme == "http"
    if parts.scheme != "https" and not (loopback_issuer and parts.scheme == "http"):
        raise OidcError(f"{provider.name}'s {name} must use https")
    if not parts.hostname or parts.fragment:
        raise OidcError(f"{provider.name}'s {name} is not a usable URL")
    return value


def _metadata(provider: SsoProvider, document: Mapping[str, Any]) -> Metadata:
    issuer = document.get("issuer")
    if not isinstance(issuer, str) or issuer.rstrip("/") != provider.issuer:
        raise OidcError(
            f"{provider.name}'s discovery document names another issuer; check the configured "
            "issuer URL (it must match the provider's exactly)"
        )
    algs = document.get("id_token_signing_alg_values_supported", ["RS256"])
    if not isinstance(algs, list):
        algs = ["RS256"]
    return Metadata(
        issuer=issuer,
        authorization_endpoint=str(
            _endpoint(provider, document, "authorization_endpoint", required=True)
        ),
        token_endpoint=str(_endpoint(provider, document, "token_endpoint", required=True)),
        jwks_uri=str(_endpoint(provider, document, "jwks_uri", required=True)),
        end_session_endpoint=_endpoint(provider, document, "end_session_endpoint", required=False),
        signing_algs=frozenset(a for a in algs if isinstance(a, str)) & ASYMMETRIC,
    )


def _identity(provider: SsoProvider, claims: Mapping[str, Any]) -> Identity:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise OidcError(f"the ID token from {provider.name} has no usable subject")
    raw_groups = claims.get(provider.groups_claim, [])
    if isinstance(raw_groups, str):
        raw_groups = [raw_groups]
    if not isinstance(raw_groups, list) or len(raw_groups) > MAX_GROUPS:
        raise OidcError(f"the '{provider.groups_claim}' claim from {provider.name} is not a list")
    groups = frozenset(g for g in raw_groups if isinstance(g, str) and len(g) <= 500)

    def text(name: str) -> str | None:
        value = claims.get(name)
        return value if isinstance(value, str) and 0 < len(value) <= 500 else None

    return Identity(
        issuer=str(claims["iss"]),
        subject=subject,
        preferred_username=text("preferred_username"),
        email=text("email"),
        groups=groups,
    )


@dataclass(frozen=True, slots=True)
class SingleSignOn:
    """What the console and the API need to sign people in: the operator's providers, the
    protocol client and the use case (``app.state.sso``; empty when none is configured)."""

    config: SsoConfig
    client: OidcClient
    service: SsoService
    public_url: str | None = None
    """The console's address as people reach it (``FADER_PUBLIC_URL``), from which redirect
    URIs are made exactly; None: the address each request arrived at."""


def load_config(
    config_file: Path | None, secrets: Mapping[str, str], *, local_login: bool
) -> SsoConfig:
    """Read the operator's providers (``FADER_SSO_CONFIG``): :class:`SsoConfigError` at start
    for any mistake, rather than at someone's first login (``fader serve`` checks it before it
    touches the database)."""
    config = SsoConfig()
    if config_file is not None:
        try:
            data = tomllib.loads(config_file.read_text())
        except OSError as exc:
            raise SsoConfigError(f"cannot read {config_file}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SsoConfigError(f"{config_file} is not valid TOML: {exc}") from exc
        config = SsoConfig.parse(data, secrets)
    if not local_login and not config.providers:
        raise SsoConfigError(
            "FADER_LOCAL_LOGIN=false needs at least one single sign-on provider "
            "(FADER_SSO_CONFIG); nobody could log in"
        )
    return config


def single_sign_on(
    config_file: Path | None,
    secrets: Mapping[str, str],
    outbound: OutboundPolicy,
    store: Store[SsoTx],
    identity: IdentityService,
    *,
    local_login: bool,
    public_url: str | None = None,
) -> SingleSignOn:
    """Build what signs people in over :func:`load_config`."""
    config = load_config(config_file, secrets, local_login=local_login)
    service = SsoService(store, identity.clock, identity)
    client = OidcClient(config, outbound)
    return SingleSignOn(config, client, service, public_url.rstrip("/") if public_url else None)
