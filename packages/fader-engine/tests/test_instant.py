"""Instants for `before` / `after`: RFC 3339 strings and Unix seconds, nothing else."""

from __future__ import annotations

import pytest

from fader_engine.instant import parse_instant

NEW_YEAR_2024 = 1_704_067_200.0


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-01T00:00:00Z",
        "2024-01-01t00:00:00z",
        "2024-01-01 00:00:00Z",
        "2024-01-01T02:00:00+02:00",
        "2023-12-31T19:00:00-05:00",
        "2024-01-01T00:00:00.000Z",
    ],
)
def test_rfc3339_strings_give_unix_seconds(text: str) -> None:
    assert parse_instant(text) == NEW_YEAR_2024


def test_fractional_seconds_are_kept() -> None:
    assert parse_instant("2024-01-01T00:00:00.25Z") == NEW_YEAR_2024 + 0.25


@pytest.mark.parametrize("number", [NEW_YEAR_2024, 1_704_067_200, 0, -1.5])
def test_numbers_are_unix_seconds(number: float) -> None:
    assert parse_instant(number) == float(number)


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        None,
        "2024-01-01",
        "2024-01-01T00:00:00",
        "2024-13-01T00:00:00Z",
        "2024-01-01T25:00:00Z",
        "yesterday",
        "1704067200",
        float("nan"),
        float("inf"),
        ["2024-01-01T00:00:00Z"],
    ],
)
def test_everything_else_is_none(value: object) -> None:
    assert parse_instant(value) is None
