"""Opaque keyset cursors: the base64 of the last key of a page.

Keyset (not offset) pagination stays correct while flags are added and deleted between pages.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Query

from fader_server.api.schemas import MAX_INTEGER
from fader_server.errors import FieldProblem, InvalidInputError

Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Cursor = Annotated[str | None, Query(max_length=400, description="from the previous page")]


def encode(key: str | int | None) -> str | None:
    if key is None:
        return None
    return base64.urlsafe_b64encode(str(key).encode()).decode()


def decode(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInputError(
            "the cursor is not one this server issued; use next_cursor from a previous page",
            [FieldProblem("/query/cursor", "not a valid cursor")],
        ) from None


def decode_int(cursor: str | None) -> int | None:
    key = decode(cursor)
    if key is None:
        return None
    # ASCII only: str.isdigit() also takes "²", which int() refuses; ids are SQL INTEGERs.
    if not (key.isascii() and key.isdigit()) or int(key) > MAX_INTEGER:
        raise InvalidInputError(
            "the cursor is not one this server issued",
            [FieldProblem("/query/cursor", "not a valid cursor")],
        )
    return int(key)


def next_cursor(keys: list[str], limit: int) -> str | None:
    return encode(keys[-1]) if len(keys) == limit else None
