"""LaunchDarkly's and Unleash's bucketing: the vendors' published vectors, exactness against a
float re-statement of each vendor's loop, growth that only adds users, and validation."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import mmh3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fader_engine
from fader_engine import ConfigurationError
from fader_engine.flagd.export import ExportError, to_flagd
from fader_engine.parse import parse_document
from fader_engine.serialize import to_json
from fader_engine.vendor_bucketing import launchdarkly_hash, unleash_hash


def document(split: dict[str, Any], rules: list[Any] | None = None) -> dict[str, Any]:
    names = [w["variant"] for w in split["weights"]]
    return {
        "format": "fader/v1",
        "flags": {
            "f": {
                "type": "string",
                "variants": {name: name for name in names},
                "offVariant": names[0],
                "rules": rules or [],
                "default": {"split": split},
            }
        },
    }


def ld_split(weights: list[float], prefix: str, **extra: Any) -> dict[str, Any]:
    return {
        "weights": [{"variant": f"v{i}", "weight": w} for i, w in enumerate(weights)],
        "bucketing": {"algorithm": "launchdarkly", "prefix": prefix, **extra},
    }


def unleash_split(weights: list[int], group: str, modulus: int = 1000, **extra: Any) -> Any:
    step = Decimal(100) / modulus
    return {
        "weights": [{"variant": f"v{i}", "weight": float(w * step)} for i, w in enumerate(weights)],
        "bucketing": {
            "algorithm": "unleash",
            "group": group,
            "seed": 86028157,
            "modulus": modulus,
            **extra,
        },
    }


def variant(doc: dict[str, Any], ctx: dict[str, Any]) -> str | None:
    return fader_engine.load(doc).evaluate("f", ctx).variant


# -- published vectors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "prefix", "bucket"),
    [
        # LaunchDarkly's SDK test vectors: flag "hashKey", salt "saltyA"; and seed 61.
        ("userKeyA", "hashKey.saltyA", 0.42157587),
        ("userKeyB", "hashKey.saltyA", 0.6708485),
        ("userKeyC", "hashKey.saltyA", 0.10343106),
        ("userKeyA", "61", 0.09801207),
        ("userKeyB", "61", 0.14483777),
        ("userKeyC", "61", 0.9242641),
    ],
)
def test_launchdarkly_vectors(key: str, prefix: str, bucket: float) -> None:
    assert launchdarkly_hash(prefix, key) / 0xFFFFFFFFFFFFFFF == pytest.approx(bucket, abs=1e-7)
    # A 42.157% / 57.843% split puts userKeyA (bucket 0.42157587) just past the first variant.
    just_below = round(
        float(Decimal(str(bucket)).quantize(Decimal("0.00001"), "ROUND_DOWN") * 100), 3
    )
    doc = document(ld_split([just_below, round(100 - just_below, 3)], prefix))
    assert variant(doc, {"targetingKey": key}) == "v1"


@pytest.mark.parametrize(
    ("value", "group", "expected"), [("123", "gr1", 73), ("999", "groupX", 25)]
)
def test_unleash_normalized_hash_vectors(value: str, group: str, expected: int) -> None:
    """Unleash's client specification: normalizedHash("123", "gr1") is 73."""
    assert unleash_hash(group, value, 0) % 100 + 1 == expected
    rollout = {"attribute": "targetingKey", "op": "unleash_rollout", "values": [group, expected]}
    doc = document(
        {"weights": [{"variant": "out", "weight": 100}]}, [{"clauses": [rollout], "variant": "out"}]
    )
    doc["flags"]["f"]["variants"]["in"] = "in"
    doc["flags"]["f"]["rules"][0]["variant"] = "in"
    assert variant(doc, {"targetingKey": value}) == "in"
    rollout["values"] = [group, expected - 1]
    assert variant(doc, {"targetingKey": value}) == "out"


# -- exactness against each vendor's own loop ---------------------------------------------------


def ld_reference(prefix: str, value: str, weights: list[int]) -> int:
    """LaunchDarkly's loop, in floating point as its SDKs run it."""
    bucket = int(hashlib.sha1(f"{prefix}.{value}".encode()).hexdigest()[:15], 16)
    bucket_f = bucket / float(0xFFFFFFFFFFFFFFF)
    total = 0.0
    for index, weight in enumerate(weights):
        total += weight / 100000.0
        if bucket_f < total:
            return index
    return len(weights) - 1


def unleash_reference(group: str, value: str, weights: list[int]) -> int:
    """Unleash's loop: the first variant whose running weight reaches hash % total + 1."""
    point = mmh3.hash(f"{group}:{value}", 86028157, signed=False) % sum(weights) + 1
    running = 0
    for index, weight in enumerate(weights):
        running += weight
        if point <= running:
            return index
    raise AssertionError("unreachable")


TEXT = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))
"""Any text a document can hold (PostgreSQL cannot store NUL; surrogates are not UTF-8)."""


def partition(total: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, total), min_size=1, max_size=4).map(
        lambda cuts: [
            b - a for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), total], strict=True)
        ]
    )


@settings(max_examples=60, deadline=None)
@given(
    weights=partition(100000),
    prefix=st.text(TEXT, min_size=1, max_size=20),
    keys=st.lists(st.text(TEXT, min_size=1, max_size=12), min_size=1, max_size=30),
)
def test_launchdarkly_split_matches_the_vendor_loop(
    weights: list[int], prefix: str, keys: list[str]
) -> None:
    doc = document(ld_split([w / 1000 for w in weights], prefix))
    engine = fader_engine.load(doc)
    for key in keys:
        assert engine.evaluate("f", {"targetingKey": key}).variant == (
            f"v{ld_reference(prefix, key, weights)}"
        )


@settings(max_examples=60, deadline=None)
@given(
    weights=partition(1000).filter(lambda ws: sum(ws) > 0),
    group=st.text(TEXT, min_size=1, max_size=20),
    keys=st.lists(st.text(TEXT, min_size=1, max_size=12), min_size=1, max_size=30),
)
def test_unleash_split_matches_the_vendor_loop(
    weights: list[int], group: str, keys: list[str]
) -> None:
    engine = fader_engine.load(document(unleash_split(weights, group)))
    for key in keys:
        assert engine.evaluate("f", {"targetingKey": key}).variant == (
            f"v{unleash_reference(group, key, weights)}"
        )


# -- context shapes ---------------------------------------------------------------------------


def test_launchdarkly_seed_values_kinds_and_missing_values() -> None:
    doc = document(ld_split([0, 50, 50], "flag.salt", contextKind="org"))
    doc["flags"]["f"]["default"]["split"]["by"] = "orgId"
    # Another kind: LaunchDarkly's bucket -1, the first variation even at weight 0.
    assert variant(doc, {"targetingKey": "u", "orgId": "o1"}) == "v0"
    assert variant(doc, {"targetingKey": "u", "kind": "user", "orgId": "o1"}) == "v0"
    # The rollout's kind without the attribute (or unbucketable): bucket 0, the first
    # variation with weight.
    for value in (None, 1.5, True, ["o1"]):
        assert variant(doc, {"kind": "org", "targetingKey": "o", "orgId": value}) == "v1"
    # Integers hash as their digits.
    as_int = variant(doc, {"kind": "org", "orgId": 12345})
    assert as_int == variant(doc, {"kind": "org", "orgId": "12345"})


def test_unleash_falls_back_through_stickiness_attributes() -> None:
    split = unleash_split([500, 500], "g", fallback=["sessionId", "remoteAddress"])
    doc = document(split)
    by_session = variant(doc, {"sessionId": "s-1"})
    assert by_session == f"v{unleash_reference('g', 's-1', [500, 500])}"
    assert variant(doc, {"remoteAddress": "s-1"}) == by_session
    assert variant(doc, {"targetingKey": "s-1", "sessionId": "other"}) == by_session
    result = fader_engine.load(doc).evaluate("f", {"unrelated": 1})
    assert result.error_code is not None
    assert result.error_code.value == "TARGETING_KEY_MISSING"
    assert "targetingKey or sessionId or remoteAddress" in (result.error_message or "")


@pytest.mark.parametrize("algorithm", ["launchdarkly", "unleash"])
def test_growing_a_rollout_only_adds_users(algorithm: str) -> None:
    keys = [f"user-{i}" for i in range(3000)]
    served: set[str] = set()
    for percent in (1, 5, 25, 50, 100):
        if algorithm == "launchdarkly":
            split = ld_split([percent, 100 - percent], "rollout.salt")
        else:
            split = unleash_split([percent * 10, 1000 - percent * 10], "rollout")
        engine = fader_engine.load(document(split))
        now = {k for k in keys if engine.evaluate("f", {"targetingKey": k}).variant == "v0"}
        assert served <= now
        assert abs(len(now) - len(keys) * percent / 100) < len(keys) * 0.04 + 10
        served = now
    assert served == set(keys)


def test_ip_in_matches_addresses_and_networks() -> None:
    clause = {
        "attribute": "ip",
        "op": "ip_in",
        "values": ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"],
    }
    doc = document(
        {"weights": [{"variant": "no", "weight": 100}]}, [{"clauses": [clause], "variant": "no"}]
    )
    doc["flags"]["f"]["variants"]["yes"] = "yes"
    doc["flags"]["f"]["rules"][0]["variant"] = "yes"
    cases = {
        "10.20.30.40": "yes",
        "192.168.1.7": "yes",
        "192.168.1.8": "no",
        "2001:db8::1": "yes",
        "::ffff:10.0.0.1": "no",
        "not an address": "no",
        "": "no",
    }
    for address, expected in cases.items():
        assert variant(doc, {"targetingKey": "k", "ip": address}) == expected, address
    assert variant(doc, {"targetingKey": "k", "ip": 167772161}) == "no"  # numbers are not IPs


# -- validation, serialisation, export ----------------------------------------------------------


@pytest.mark.parametrize(
    ("bucketing", "message"),
    [
        ({"algorithm": "optimizely"}, "unknown bucketing algorithm"),
        ({"algorithm": "launchdarkly"}, "'prefix'"),
        ({"algorithm": "launchdarkly", "prefix": "p", "group": "g"}, "not a parameter"),
        ({"algorithm": "unleash", "group": "g", "modulus": 7}, "must divide 100000"),
        ({"algorithm": "unleash", "group": "g", "seed": -1}, "'seed'"),
        ({"algorithm": "unleash", "group": "g", "modulus": 10}, "whole number of 1/10 steps"),
        ({"algorithm": "unleash", "group": "g", "fallback": ["a..b"]}, "empty path segment"),
    ],
)
def test_bad_bucketing_is_reported(bucketing: dict[str, Any], message: str) -> None:
    split = {"weights": [{"variant": "a", "weight": 33.5}, {"variant": "b", "weight": 66.5}]}
    split["bucketing"] = bucketing
    with pytest.raises(ConfigurationError) as caught:
        parse_document(document(split))
    assert message in str(caught.value)
    assert "/bucketing" in str(caught.value)


@pytest.mark.parametrize("values", [["g"], ["g", 101], ["", 5], [5, "g"], ["g", True], ["g", 5, 6]])
def test_bad_unleash_rollout_values_are_reported(values: list[Any]) -> None:
    clause = {"attribute": "targetingKey", "op": "unleash_rollout", "values": values}
    doc = document(
        {"weights": [{"variant": "a", "weight": 100}]}, [{"clauses": [clause], "variant": "a"}]
    )
    with pytest.raises(ConfigurationError, match="takes exactly two values"):
        parse_document(doc)


def test_bad_networks_are_reported() -> None:
    clause = {"attribute": "ip", "op": "ip_in", "values": ["10.0.0.0/33"]}
    doc = document(
        {"weights": [{"variant": "a", "weight": 100}]}, [{"clauses": [clause], "variant": "a"}]
    )
    with pytest.raises(ConfigurationError, match="CIDR networks"):
        parse_document(doc)


def test_vendor_bucketing_round_trips_and_is_refused_by_flagd_export() -> None:
    ld = document(ld_split([30, 70], "f.salt", contextKind="org"))
    un = document(unleash_split([300, 700], "f", fallback=["sessionId"]))
    for doc in (ld, un):
        parsed = parse_document(doc)
        assert parse_document(to_json(parsed)) == parsed
        assert (
            to_json(parsed)["flags"]["f"]["default"]["split"]["bucketing"]
            == (doc["flags"]["f"]["default"]["split"]["bucketing"])
        )
        with pytest.raises(ExportError, match="bucketing, which flagd"):
            to_flagd(parsed)
