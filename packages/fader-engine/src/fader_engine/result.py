"""What an evaluation returns, in OpenFeature's words.

These types are the engine's whole output vocabulary: a value, the variant that produced it, a
reason and, on failure, an OpenFeature error code. They are shared by every document format
(Fader's own and flagd's) so that an SDK, the OFREP endpoint and the CLI render one shape.

Spec: https://openfeature.dev/specification/types#resolution-details
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class Reason(StrEnum):
    """Why a value was chosen: OpenFeature's reasons (docs/flag-format.md, "Reasons")."""

    STATIC = "STATIC"
    """The flag has no targeting at all: every context gets the default variant."""
    TARGETING_MATCH = "TARGETING_MATCH"
    """A targeting rule matched and chose a variant."""
    SPLIT = "SPLIT"
    """A weighted split (percentage rollout) chose the variant."""
    DEFAULT = "DEFAULT"
    """Targeting exists but nothing matched: the default variant, or the code default."""
    DISABLED = "DISABLED"
    """The flag is switched off: the off variant, or the code default."""
    ERROR = "ERROR"
    """Evaluation failed; the value is the caller's default and `error_code` says why."""


class ErrorCode(StrEnum):
    """OpenFeature error codes the engine can produce."""

    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    PARSE_ERROR = "PARSE_ERROR"
    TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
    INVALID_CONTEXT = "INVALID_CONTEXT"
    GENERAL = "GENERAL"


class ValueType(StrEnum):
    """The value type a flag declares; every variant of the flag has it."""

    BOOLEAN = "boolean"
    STRING = "string"
    NUMBER = "number"
    OBJECT = "object"


class ResolvedType(StrEnum):
    """The type a caller asks for (OpenFeature's typed resolvers distinguish int and float)."""

    BOOLEAN = "boolean"
    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    OBJECT = "object"


EMPTY_METADATA: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome of evaluating one flag for one context.

    `value` is `None` with `variant` `None` when the configuration deliberately names no variant
    (flagd's "no default variant"): the caller's own default applies. The typed resolvers of
    :class:`fader_engine.evaluate.Engine` substitute it.
    """

    value: Any
    variant: str | None
    reason: Reason
    error_code: ErrorCode | None = None
    error_message: str | None = None
    flag_metadata: Mapping[str, Any] = field(default_factory=lambda: EMPTY_METADATA)

    def to_json(self) -> dict[str, Any]:
        """The JSON shape used by `fader eval` and, later, the HTTP APIs."""
        out: dict[str, Any] = {
            "value": self.value,
            "variant": self.variant,
            "reason": str(self.reason),
            "error_code": None if self.error_code is None else str(self.error_code),
        }
        if self.error_message is not None:
            out["error_message"] = self.error_message
        if self.flag_metadata:
            out["metadata"] = dict(self.flag_metadata)
        return out
