"""`FaderProvider`: the Fader SDK behind the OpenFeature API (openfeature-sdk >= 0.8).

The only module that imports OpenFeature, so ``pip install fader-sdk`` works without it (the
``fader-sdk[openfeature]`` extra brings it). The engine already speaks OpenFeature's words
(reasons, error codes, variants, flag metadata), so mapping is name for name; the one addition is
``PROVIDER_NOT_READY`` while the client has no configuration, which the engine cannot know.

Events: configuration changes are emitted as ``PROVIDER_CONFIGURATION_CHANGED`` with the keys of
the flags whose definitions changed, so OpenFeature handlers can react without polling.

Status: when no configuration arrives within `init_timeout` (the server is down and there is no
cache), :meth:`FaderProvider.initialize` fails and OpenFeature marks the provider ``ERROR``; the
client keeps trying, and the first configuration that arrives is announced with
``PROVIDER_READY``, which moves it to ``READY``. A rejected SDK key is ``PROVIDER_FATAL``: no
retry can fix it.

Spec: https://openfeature.dev/specification/sections/providers
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode, ProviderFatalError, ProviderNotReadyError
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata
from openfeature.track import TrackingEventDetails

from fader_engine import Resolution
from fader_sdk.client import FaderClient
from fader_sdk.flag_set import FlagSet

__all__ = ["FaderProvider"]

T = TypeVar("T")
ObjectValue = Sequence[FlagValueType] | Mapping[str, FlagValueType]


def to_context(context: EvaluationContext | None) -> dict[str, Any]:
    """OpenFeature context → the engine's mapping (``targetingKey`` plus attributes).

    Datetimes become RFC 3339 strings, which the engine's `before`/`after` operators read.
    """
    if context is None:
        return {}
    out: dict[str, Any] = {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in context.attributes.items()
    }
    if context.targeting_key is not None:
        out["targetingKey"] = context.targeting_key
    return out


def to_details(resolution: Resolution) -> FlagResolutionDetails[Any]:
    """The engine's Resolution → OpenFeature's; codes and reasons share their names."""
    return FlagResolutionDetails(
        value=resolution.value,
        error_code=None if resolution.error_code is None else ErrorCode(resolution.error_code),
        error_message=resolution.error_message,
        reason=Reason(str(resolution.reason)),
        variant=resolution.variant,
        flag_metadata=dict(resolution.flag_metadata),
    )


class FaderProvider(AbstractProvider):
    """An OpenFeature provider evaluating locally through a :class:`FaderClient`."""

    def __init__(self, client: FaderClient, *, init_timeout: float = 5.0) -> None:
        super().__init__()
        self.client = client
        self._init_timeout = init_timeout
        self._lock = threading.Lock()
        self._announce_ready = False  # initialize() failed; say READY when flags arrive
        client.holder.add_listener(self._on_change)

    def get_metadata(self) -> Metadata:
        return Metadata(name="fader")

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Wait (bounded) for configuration; OpenFeature marks the provider READY, or ERROR
        (READY follows when the configuration arrives), or FATAL for a rejected key."""
        if self.client.wait_until_ready(self._init_timeout):
            return
        fatal = self.client.fatal_error
        if fatal is not None:
            raise ProviderFatalError(fatal)
        with self._lock:
            if self.client.is_ready:  # it arrived just now: the listener saw no waiter
                return
            self._announce_ready = True
        # (A configuration arriving between here and OpenFeature recording the error would be
        # announced before the error; the window is a few instructions wide.)
        raise ProviderNotReadyError(
            f"Fader has no configuration after {self._init_timeout:g} s (server unreachable, "
            "no cache file); still trying: PROVIDER_READY follows when it arrives"
        )

    def shutdown(self) -> None:
        self.client.close()

    def track(
        self,
        tracking_event_name: str,
        evaluation_context: EvaluationContext | None = None,
        tracking_event_details: TrackingEventDetails | None = None,
    ) -> None:
        value = None if tracking_event_details is None else tracking_event_details.value
        self.client.track(tracking_event_name, to_context(evaluation_context), value)

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(
            self.client.boolean_details, flag_key, default_value, evaluation_context
        )

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(
            self.client.string_details, flag_key, default_value, evaluation_context
        )

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(
            self.client.integer_details, flag_key, default_value, evaluation_context
        )

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._resolve(self.client.float_details, flag_key, default_value, evaluation_context)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: ObjectValue,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[ObjectValue]:
        return self._resolve(
            self.client.object_details, flag_key, default_value, evaluation_context
        )

    def _resolve(
        self,
        resolve: Any,
        flag_key: str,
        default_value: T,
        evaluation_context: EvaluationContext | None,
    ) -> FlagResolutionDetails[T]:
        if not self.client.is_ready:
            return FlagResolutionDetails(
                value=default_value,
                error_code=ErrorCode.PROVIDER_NOT_READY,
                error_message="Fader has no configuration yet",
                reason=Reason.ERROR,
            )
        details: FlagResolutionDetails[T] = to_details(
            resolve(flag_key, to_context(evaluation_context), default_value)
        )
        return details

    def _on_change(self, old: FlagSet | None, new: FlagSet) -> None:
        with self._lock:
            announce, self._announce_ready = self._announce_ready, False
        if announce:
            self.emit_provider_ready(ProviderEventDetails())
        before = {} if old is None else dict(old.document.get("flags", {}))
        after = dict(new.document.get("flags", {}))
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        self.emit_provider_configuration_changed(ProviderEventDetails(flags_changed=changed))
