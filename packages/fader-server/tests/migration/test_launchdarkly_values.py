"""LaunchDarkly's readings of versions, instants and regular expressions, reproduced exactly."""

from __future__ import annotations

import random
import re

import pytest

from fader_engine.regex import compile_pattern
from fader_server.migration.launchdarkly.values import (
    UntranslatableValueError,
    ld_time_ms,
    ld_version,
    re2_pattern,
    seconds_after,
    seconds_before,
)


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("1.2.3", "1.2.3"),
        ("1.2", "1.2.0"),
        ("1", "1.0.0"),
        ("1-beta", "1.0.0-beta"),
        ("1.2+build.5", "1.2.0+build.5"),
        ("1.2.3-rc.1+b", "1.2.3-rc.1+b"),
        ("v1.2.3", None),  # Fader's own parser accepts the v; LaunchDarkly does not
        ("01.2.3", None),
        ("1.02", None),
        ("1.2.3.4", None),
        ("1.2.3-01", None),
        ("", None),
        ("1.", None),
        (12, None),
    ],
)
def test_versions_are_read_as_launchdarkly_reads_them(text: object, version: str | None) -> None:
    assert ld_version(text) == version


def test_versions_agree_with_the_sdk_parser() -> None:
    value_parsing = pytest.importorskip("ldclient.impl.model.value_parsing")
    samples = [
        "1.2.3",
        "1.2",
        "1",
        "1-rc",
        "1.2-rc.1+x",
        "v1",
        "1.2.3.4",
        "x",
        "1..2",
        "0.0",
        "1.2.3-alpha.01",
        "99999999999999999999.1",
        "1.2.3-+",
        "1+",
        "2.0-0",
    ]
    for text in samples:
        ours = ld_version(text)
        theirs = value_parsing.parse_semver(text)
        assert (ours is None) == (theirs is None), text
        if theirs is not None:
            assert ours == str(theirs), text


def test_instants_are_milliseconds_or_offset_date_strings() -> None:
    assert ld_time_ms(1_600_000_000_000) == 1_600_000_000_000.0
    assert ld_time_ms("1970-01-01T00:00:01Z") == 1000.0
    assert ld_time_ms("1970-01-01T02:00:01.5+02:00") == 1500.0
    assert ld_time_ms("2024-01-01T00:00:00") is None  # no offset
    assert ld_time_ms("soon") is None
    assert ld_time_ms(True) is None


def test_second_bounds_reproduce_launchdarklys_float_comparison_exactly() -> None:
    rng = random.Random(7)
    for _ in range(2_000):
        limit = float(rng.randrange(-(10**13), 10**13))
        before, after = seconds_before(limit), seconds_after(limit)
        for x in (limit / 1000.0, before, after, rng.uniform(-1e10, 1e10)):
            for y in (x, x + 1e-6, x - 1e-6, x + 5e-4, x - 5e-4):
                assert (y * 1000.0 < limit) == (y < before)
                assert (y * 1000.0 > limit) == (y > after)


@pytest.mark.parametrize(
    ("pattern", "translated"),
    [
        ("^abc$", "^abc(?:\\n?\\z)"),
        ("a|b$", "a|b(?:\\n?\\z)"),
        ("a$|b", "a(?:\\n?\\z)|b"),
        ("^\\d{3}[\\d-]+$", "^\\p{Nd}{3}[\\p{Nd}-]+(?:\\n?\\z)"),
        ("[$]x", "[$]x"),
        ("(?:a|b)(?P<n>c)", "(?:a|b)(?P<n>c)"),
    ],
)
def test_patterns_are_rewritten_where_python_and_re2_differ(pattern: str, translated: str) -> None:
    assert re2_pattern(pattern) == translated


@pytest.mark.parametrize(
    "pattern",
    [
        "\\w+",
        "\\s",
        "\\bx",
        "(?i)abc",
        "(?=a)",
        "(a)\\1",
        "a{,3}",
        "[[:alpha:]]",
        "a$b",
        "(a$)",
        "a++",
        "x\\Z",
    ],
)
def test_patterns_that_mean_something_else_in_re2_are_refused(pattern: str) -> None:
    with pytest.raises(UntranslatableValueError):
        re2_pattern(pattern)


def test_rewritten_patterns_find_what_python_finds() -> None:
    samples = ["abc", "abc\n", "abc\n\n", "x123-4", "\u0661\u0662\u0663-", "b", "a", "zzb\n"]
    for pattern in ["^abc$", "a|b$", "^\\d{3}[\\d-]+$", "\\D\\d", "^.*$"]:
        ours = compile_pattern(re2_pattern(pattern))
        for text in samples:
            assert (ours.search(text) is not None) == (re.search(pattern, text) is not None), (
                pattern,
                text,
            )
