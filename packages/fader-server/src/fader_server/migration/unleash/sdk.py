"""Unleash's own Python SDK, loaded from the imported payload, as a parity-check evaluator.

The client is bootstrapped from the payload through an in-memory cache: no network (toggle
fetching off), no metrics, no registration, no files. It evaluates through yggdrasil, Unleash's
shared engine, which is the reference every Unleash server SDK now uses. Imported only when
asked for: the SDK is the optional ``migrate`` extra.

Answers (docs/migration-unleash.md): ``variant`` is the Unleash variant name (``disabled`` for
none); ``value`` is the variant's payload when it has one, else whether the flag is enabled.
A context whose answer may be chance is answered ``Answer(None, None, "nondeterministic: ...")``
(:mod:`.chance`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fader_server.migration.model import Answer, SourceDocumentError, SourceSDKMissingError
from fader_server.migration.unleash.chance import NONDETERMINISTIC, reason
from fader_server.migration.unleash.context import unleash_context


def _client(payload: Mapping[str, Any]) -> Any:
    try:
        from UnleashClient.cache import BaseCache  # noqa: PLC0415
        from UnleashClient.clients.unleash_client import (  # noqa: PLC0415 - optional
            UnleashClient,
        )
        from UnleashClient.constants import FEATURES_URL  # noqa: PLC0415
        from UnleashClient.utils import InstanceAllowType  # noqa: PLC0415
    except ImportError as exc:
        raise SourceSDKMissingError("Unleash", "UnleashClient") from exc

    class MemoryCache(BaseCache):
        """The bootstrap payload, held in memory (the default cache writes files)."""

        def __init__(self, features: str) -> None:
            self._data: dict[str, Any] = {FEATURES_URL: features}
            self.bootstrapped = True

        def set(self, key: str, value: Any) -> None:
            self._data[key] = value

        def mset(self, data: dict[str, Any]) -> None:
            self._data.update(data)

        def get(self, key: str, default: Any = None) -> Any:
            return self._data.get(key, default)

        def exists(self, key: str) -> bool:
            return key in self._data

        def destroy(self) -> None:
            self._data.clear()

    client = UnleashClient(
        url="http://unleash.invalid/api",  # never contacted: no fetching, metrics, registration
        app_name="fader-import",
        disable_metrics=True,
        disable_registration=True,
        cache=MemoryCache(json.dumps(payload)),
        multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
    )
    # The SDK adds its own appName and environment to every context; under Fader's convention
    # they come from the context's attributes, and a context without them has none.
    client.unleash_static_context = {}
    client.initialize_client(fetch_toggles=False)
    return client


class UnleashEvaluator:
    """A :class:`~fader_server.migration.model.SourceEvaluator` over Unleash's Python SDK."""

    def __init__(self, data: Any) -> None:
        if not isinstance(data, Mapping) or not isinstance(data.get("features"), list):
            raise SourceDocumentError("an Unleash payload is an object with a 'features' list")
        self._flags = {
            f["name"]: f
            for f in data["features"]
            if isinstance(f, Mapping) and isinstance(f.get("name"), str)
        }
        self._segments = {
            s.get("id"): s for s in data.get("segments") or [] if isinstance(s, Mapping)
        }
        # Unleash servers always send "strategies"; the Python SDK's custom-strategy scan
        # fails without it (after the engine took the state), so it is filled in: yggdrasil
        # reads a missing list and an empty one alike.
        payload = dict(data)
        payload["features"] = [
            {"strategies": [], **f} if isinstance(f, Mapping) else f for f in data["features"]
        ]
        self._client = _client(payload)
        # The client's own get_variant is enrich + engine.get_variant + metrics bookkeeping;
        # check_variant answers identically without the bookkeeping, a third faster. Used when
        # this SDK version has both (it is the same engine and the same enrichment).
        engine = getattr(self._client, "_engine", None)
        enricher = getattr(self._client, "_enricher", None)
        self._fast: tuple[Any, Any] | None = (
            (engine, enricher)
            if hasattr(engine, "check_variant") and hasattr(enricher, "build")
            else None
        )

    def answer(self, source_key: str, context: Mapping[str, Any]) -> Answer:
        ctx = unleash_context(context)
        flag = self._flags.get(source_key)
        if flag is not None:
            why = reason(flag, ctx, self._flags, self._segments)
            if why is not None:
                return Answer(None, None, f"{NONDETERMINISTIC} {why}")
        if self._fast is not None:
            engine, enricher = self._fast
            found: Any = engine.check_variant(source_key, enricher.build(ctx)).variant
            name, payload, enabled = found.name, found.payload, bool(found.feature_enabled)
        else:
            variant = self._client.get_variant(source_key, ctx)
            name, payload = variant.get("name"), variant.get("payload")
            enabled = bool(variant.get("feature_enabled"))
        return Answer(
            payload if payload is not None else enabled,
            str(name),
            "enabled" if enabled else "not enabled",
        )

    def close(self) -> None:
        self._client.destroy()


def evaluator(data: Any) -> UnleashEvaluator:
    return UnleashEvaluator(data)
