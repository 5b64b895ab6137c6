"""Where a flag-sync request carries its server SDK key.

The stock flagd providers let their users configure two strings that reach the server:
``selector`` (every provider; sent as the ``flagd-selector`` request header and, during flagd's
deprecation period, also as the request's ``selector`` field) and ``provider_id`` (not
configurable in every provider: the JavaScript one always sends it empty). The key therefore
rides in the selector. The Python provider calls ``GetMetadata`` without the header, which is
why that call needs no key (it reveals nothing; :mod:`.service`). Clients written by hand may
send ``authorization: Bearer <key>`` instead, as on the HTTP endpoints.

A key is a secret: it is read here, hashed by :class:`~fader_server.delivery.keys.SdkKeys`, and
never logged or echoed in a status message.
"""

from __future__ import annotations

from collections.abc import Iterable

SELECTOR_HEADER = "flagd-selector"
MAX_KEY_LENGTH = 256
"""Longer than any key Fader issues; a longer value is refused without being hashed."""


def presented_key(
    selector_field: str, metadata: Iterable[tuple[str, str | bytes]] | None
) -> str | None:
    """The key the client presents: the ``flagd-selector`` header, else the request's
    ``selector`` field, else an ``authorization: Bearer`` header; None when there is none.

    Values longer than :data:`MAX_KEY_LENGTH` are returned truncated to one character more,
    so that the caller refuses them as invalid keys without hashing megabytes."""
    header: str | None = None
    bearer: str | None = None
    for name, value in metadata or ():
        if not isinstance(value, str):
            continue  # binary headers (-bin) never carry a key
        lowered = name.lower()
        if lowered == SELECTOR_HEADER and header is None:
            header = value
        elif lowered == "authorization" and bearer is None:
            scheme, _, credential = value.partition(" ")
            if scheme.lower() == "bearer":
                bearer = credential
    for candidate in (header, selector_field, bearer):
        if candidate is not None and candidate.strip():
            return candidate.strip()[: MAX_KEY_LENGTH + 1]
    return None
