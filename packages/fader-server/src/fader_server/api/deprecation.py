"""Field-level deprecation: the admin API is versioned per field, not per URL.

A :class:`DeprecatedField` names a field, its replacement and a sunset date at least twelve
weeks after the announcement (checked at import). A model field marked with
``json_schema_extra=MARK`` and the field's :attr:`~DeprecatedField.message` as its description
is ``deprecated: true`` in the OpenAPI document; :func:`announce` adds to a response the
``Deprecation`` header (RFC 9745: ``@<unix time>``), the ``Sunset`` header (RFC 8594, an
HTTP-date) and a human-readable ``Warning``. Responses that carry or accepted the field are
announced, because the server cannot know whether a client reads it. A whole endpoint is
deprecated the same way (``subject="endpoint"``): its route says ``deprecated=True`` and every
answer is announced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime

from fastapi import Response
from pydantic.config import JsonDict

MIN_NOTICE = timedelta(weeks=12)
MARK: JsonDict = {"deprecated": True}
"""The ``json_schema_extra`` of a deprecated field. (Pydantic's own ``deprecated=`` would warn
on every attribute access, which our warnings-as-errors test runs rightly refuse.)"""


@dataclass(frozen=True, slots=True)
class DeprecatedField:
    name: str
    replacement: str
    announced: date
    sunset: date
    subject: str = "field"
    """What is deprecated: a ``field``, or an ``endpoint`` (then `name` is its method and path,
    and its route is ``deprecated=True``)."""

    def __post_init__(self) -> None:
        if self.sunset - self.announced < MIN_NOTICE:
            raise ValueError(f"{self.name}: a sunset needs at least twelve weeks of notice")

    @property
    def message(self) -> str:
        return (
            f"{self.subject} '{self.name}' is deprecated; use '{self.replacement}' instead. "
            f"It will be removed after {self.sunset.isoformat()}."
        )


FLAG_OWNER = DeprecatedField(
    name="owner", replacement="owner_team", announced=date(2026, 11, 1), sunset=date(2027, 3, 1)
)

SDK_EVENTS = DeprecatedField(
    name="POST /api/v1/sdk/events",
    replacement="POST /api/v1/sdk/summaries",
    announced=date(2026, 12, 3),
    sunset=date(2027, 6, 1),
    subject="endpoint",
)
"""One exposure per evaluation: replaced by summaries (docs/events.md); older SDKs keep working
until the sunset, their events folded into the same rollups."""


def announce(response: Response, *fields: DeprecatedField) -> None:
    if not fields:
        return
    first = min(fields, key=lambda f: f.announced)
    announced = datetime.combine(first.announced, datetime.min.time(), UTC)
    sunset = datetime.combine(min(f.sunset for f in fields), datetime.min.time(), UTC)
    response.headers["Deprecation"] = f"@{int(announced.timestamp())}"
    response.headers["Sunset"] = format_datetime(sunset, usegmt=True)
    response.headers["Warning"] = ", ".join(f'299 fader "{f.message}"' for f in fields)
