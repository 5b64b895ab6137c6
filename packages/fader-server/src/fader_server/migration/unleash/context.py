"""How a Fader evaluation context reads as an Unleash context (docs/migration-unleash.md).

One convention, used by the SDK evaluator and assumed by every translated clause:

- ``targetingKey`` is Unleash's ``userId``;
- the attributes ``sessionId``, ``remoteAddress``, ``environment``, ``appName`` and
  ``currentTime`` are the Unleash fields of those names;
- every other attribute is an Unleash *property*. Unleash properties are strings, so values are
  rendered: a string as itself, ``true``/``false`` for booleans, an integer as its decimal
  digits, an integral float as the integer it equals (JSON does not tell ``5`` from ``5.0``,
  and Fader's ``in`` treats them as equal, so Unleash must see the same text for both), any
  other float as Python's shortest round-trip text (``1.5``, ``1e-07``). A null is absent.
  Nested objects and lists have no Unleash equivalent and are left out.

The rendering is part of the translation's contract: a typed ``in`` clause lists, next to each
Unleash string, the JSON number or boolean whose rendering is that string (:func:`typed_values`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

TOP_LEVEL = ("sessionId", "remoteAddress", "environment", "appName", "currentTime")
"""Fader attributes that are Unleash context fields rather than properties."""
USER_ID = "targetingKey"

_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)", re.ASCII)
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?", re.ASCII)


def render(value: Any) -> str | None:
    """The Unleash string for one Fader attribute value; ``None`` when it has none."""
    if value is None or isinstance(value, dict | list | tuple):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    return value if isinstance(value, str) else None


def typed_values(text: str) -> list[Any]:
    """Every JSON scalar whose :func:`render` is exactly `text` (the string itself first).

    ``"5"`` is also the integer 5 (and so the float 5.0, which Fader's ``in`` treats as
    equal); ``"1.5"`` is also 1.5; ``"true"`` is also ``true``. ``"05"`` or ``"1.50"`` are
    only strings: no number renders that way.
    """
    out: list[Any] = [text]
    if text in ("true", "false"):
        out.append(text == "true")
    elif _INTEGER.fullmatch(text) and text != "-0":
        out.append(int(text))
    elif _DECIMAL.fullmatch(text):
        number = float(text)
        if math.isfinite(number) and not number.is_integer() and repr(number) == text:
            out.append(number)
    return out


def unleash_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """The Unleash context for a Fader evaluation context (see the module docstring)."""
    out: dict[str, Any] = {}
    properties: dict[str, str] = {}
    for name, value in context.items():
        text = render(value)
        if text is None:
            continue
        if name == USER_ID:
            out["userId"] = text
        elif name in TOP_LEVEL:
            out[name] = text
        else:
            properties[name] = text
    out["properties"] = properties
    return out
