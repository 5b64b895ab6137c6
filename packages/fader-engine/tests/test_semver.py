"""SemVer 2.0 parsing and precedence (https://semver.org/spec/v2.0.0.html#spec-item-11)."""

from __future__ import annotations

from itertools import pairwise

import pytest

from fader_engine.semver import VersionKey, parse_version


def key(text: str) -> VersionKey:
    version = parse_version(text)
    assert version is not None, text
    return version


def test_precedence_follows_the_spec_example_order() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "2.0.0",
        "10.0.0",
    ]
    keys = [key(text) for text in ordered]
    assert all(a < b for a, b in pairwise(keys))


def test_leading_v_is_accepted() -> None:
    assert key("v1.2.3") == key("1.2.3")


@pytest.mark.parametrize(("short", "full"), [("1", "1.0.0"), ("1.2", "1.2.0"), ("v2", "2.0.0")])
def test_partial_versions_are_padded_with_zeros(short: str, full: str) -> None:
    assert key(short) == key(full)


def test_build_metadata_is_ignored_for_precedence() -> None:
    assert key("1.2.3+build.5") == key("1.2.3+other")
    assert key("1.2.3+build.5").build == ("build", "5")


def test_numeric_prerelease_identifiers_compare_numerically_and_before_words() -> None:
    assert key("1.0.0-2") < key("1.0.0-10")
    assert key("1.0.0-999") < key("1.0.0-a")


def test_version_renders_canonically() -> None:
    assert str(key("v1.2-rc.1+x")) == "1.2.0-rc.1+x"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "x",
        "1.x",
        "01.2.3",
        "1.02.3",
        "1.2.3-01",
        "1.2.3.4",
        "1.2.3-",
        "1.2.3+",
        " 1.2.3",
        "V1.2.3",
        "1.2.3-beta..1",
        "\u0661.\u0662.\u0663",  # Arabic-Indic digits are not ASCII,
    ],
)
def test_invalid_versions_are_none(text: str) -> None:
    assert parse_version(text) is None


@pytest.mark.parametrize("value", [1, 1.2, None, True, ["1.0.0"]])
def test_non_strings_are_none(value: object) -> None:
    assert parse_version(value) is None
