"""Percentage bucketing: deterministic, monotone as a rollout grows, and fair."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import fader_engine
from fader_engine.bucketing import bucket, cbor_seed, hash_v2, hash_v3


def rollout(percent: Decimal | float, algorithm: str = "v2", by: str | None = None) -> Any:
    on = Decimal(str(percent))
    split: dict[str, Any] = {
        "weights": [
            {"variant": "on", "weight": float(on)},
            {"variant": "off", "weight": float(Decimal(100) - on)},
        ]
    }
    if by:
        split["by"] = by
    return fader_engine.load(
        {
            "format": "fader/v1",
            "bucketing": algorithm,
            "flags": {
                "new-checkout": {
                    "type": "boolean",
                    "variants": {"on": True, "off": False},
                    "offVariant": "off",
                    "default": {"split": split},
                }
            },
        }
    )


percentages = st.decimals(min_value=0, max_value=100, places=3)


def test_v2_hash_matches_murmur3_reference_vectors() -> None:
    # MurmurHash3_x86_32 reference values (seed 0) from the algorithm's published test suite.
    assert hash_v2("") == 0
    assert hash_v2("hello") == 0x248BFA47
    assert hash_v2("Hello, world!") == 0xC0363E43


def test_v3_seed_is_canonical_cbor() -> None:
    assert cbor_seed("a") == b"\x61a"
    assert cbor_seed(1.0) == cbor_seed(1)  # integral floats become integers
    assert cbor_seed(-0.0) == cbor_seed(0)
    assert cbor_seed({"b": 1, "a": 2}) == cbor_seed({"a": 2, "b": 1})  # sorted map keys
    assert hash_v3(["flag", "user"]) == hash_v3(["flag", "user"])


@given(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=1, max_value=2**31 - 1))
def test_bucket_stays_in_range(hash_value: int, total: int) -> None:
    assert 0 <= bucket(hash_value, total) < total


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=40), percentages, st.sampled_from(["v2", "v3"]))
def test_same_user_same_variant_every_time(key: str, percent: Decimal, algorithm: str) -> None:
    first, second = rollout(percent, algorithm), rollout(percent, algorithm)
    context = {"targetingKey": key}
    assert first.evaluate("new-checkout", context) == second.evaluate("new-checkout", context)


@settings(max_examples=40, deadline=None)
@given(percentages, percentages, st.sampled_from(["v2", "v3"]))
def test_growing_a_rollout_only_adds_users(p: Decimal, q: Decimal, algorithm: str) -> None:
    low, high = sorted((p, q))
    small, large = rollout(low, algorithm), rollout(high, algorithm)
    rng = random.Random(f"{low}-{high}")
    for _ in range(300):
        context = {"targetingKey": f"user-{rng.getrandbits(48)}"}
        if small.evaluate("new-checkout", context).value:
            assert large.evaluate("new-checkout", context).value


def _shares(engine: Any, keys: int, seed: int, attribute: str = "targetingKey") -> dict[Any, int]:
    rng = random.Random(seed)
    counts: dict[Any, int] = {}
    for _ in range(keys):
        context = {"targetingKey": f"k{rng.getrandbits(64):x}"}
        if attribute != "targetingKey":
            context[attribute] = f"org-{rng.getrandbits(64):x}"
        variant = engine.evaluate("f", context).variant
        counts[variant] = counts.get(variant, 0) + 1
    return counts


def _three_way(weights: tuple[float, float, float], algorithm: str, by: str | None) -> Any:
    split: dict[str, Any] = {
        "weights": [
            {"variant": name, "weight": w} for name, w in zip(("a", "b", "c"), weights, strict=True)
        ]
    }
    if by:
        split["by"] = by
    return fader_engine.load(
        {
            "format": "fader/v1",
            "bucketing": algorithm,
            "flags": {
                "f": {
                    "type": "string",
                    "variants": {"a": "A", "b": "B", "c": "C"},
                    "offVariant": "a",
                    "default": {"split": split},
                }
            },
        }
    )


def test_split_shares_are_within_half_a_point_over_100k_keys() -> None:
    cases = [
        ((10, 20, 70), "v2", None),
        ((33.333, 33.333, 33.334), "v2", None),
        ((1, 4, 95), "v3", None),
        ((25, 25, 50), "v2", "orgId"),
    ]
    for index, (weights, algorithm, by) in enumerate(cases):
        engine = _three_way(weights, algorithm, by)
        counts = _shares(engine, 100_000, seed=index, attribute=by or "targetingKey")
        for name, weight in zip(("a", "b", "c"), weights, strict=True):
            share = 100 * counts.get(name, 0) / 100_000
            assert abs(share - weight) <= 0.5, (weights, algorithm, name, share)


def test_thousandth_of_a_percent_granularity() -> None:
    engine = rollout(Decimal("0.001"))
    rng = random.Random(7)
    hits = sum(
        bool(engine.evaluate("new-checkout", {"targetingKey": str(rng.getrandbits(64))}).value)
        for _ in range(200_000)
    )
    assert 0 < hits < 12  # expected 2 of 200,000


@given(
    st.one_of(
        st.text(max_size=300),
        st.lists(st.text(max_size=40), max_size=30),
        st.tuples(st.text(max_size=30), st.text(max_size=30)).map(list),
    )
)
def test_direct_cbor_encoding_of_strings_equals_the_canonical_encoder(value: Any) -> None:
    import cbor2

    assert cbor_seed(value) == cbor2.dumps(value, canonical=True)
