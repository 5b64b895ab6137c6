"""Instants for the `before` / `after` operators: RFC 3339 strings or Unix seconds.

Both forms reduce to Unix seconds as a float, so a rule written with a date string compares
correctly against a context attribute sent as a number and vice versa. A string without a UTC
offset is rejected rather than guessed: "local time" on a server is not the user's local time.
Booleans are rejected although Python treats them as integers; ``true`` is not a moment.

Spec: https://www.rfc-editor.org/rfc/rfc3339#section-5.6
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

__all__ = ["parse_instant"]

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)


def parse_instant(value: Any) -> float | None:
    """Unix seconds for an RFC 3339 date-time string or a finite number; else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if not isinstance(value, str) or _RFC3339.fullmatch(value) is None:
        return None
    text = value[:-1] + "+00:00" if value[-1] in "Zz" else value
    text = text[:10] + "T" + text[11:]
    try:
        # fromisoformat (3.11) handles any number of fractional digits and the offset; the
        # regular expression above keeps it to RFC 3339's subset of ISO 8601.
        return datetime.fromisoformat(text).timestamp()
    except ValueError:  # e.g. month 13 or 25:00
        return None
