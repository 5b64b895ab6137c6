"""Every split buckets as documented, whichever code generation it gets (a property test).

Splits are written into each flag's generated function by one function
(``fader_engine.codegen.split_expression``): v2 or v3, seeded by the targeting key or by an
attribute (top-level or nested), in a rule or as the default. Hypothesis draws weights with
three decimals and seeds of every JSON type; the reference is docs/flag-format.md ("Split")
computed with the hashes of ``fader_engine.bucketing``, which are tested against flagd's own
vectors in ``test_bucketing.py``.
"""

from __future__ import annotations

from itertools import accumulate, pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import fader_engine
from fader_engine import ErrorCode, Reason
from fader_engine.bucketing import hash_v2, hash_v3, pick

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)


def seed_hash(flag: str, by: str | None, algorithm: str, ctx: dict[str, Any]) -> int | None:
    """docs/flag-format.md, "Split": the hash of the flag key and the seed attribute (a string,
    or an integer as its digits), or None when there is no such seed (TARGETING_KEY_MISSING).
    v3's default seed is the array [flag key, targeting key] (fader_engine.bucketing)."""
    if by is None:
        key = ctx.get("targetingKey")
        if type(key) is not str:
            return None
        return hash_v2(flag + key) if algorithm == "v2" else hash_v3([flag, key])
    value: Any = ctx
    for part in by.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if type(value) not in (str, int):
        return None
    seed = flag + str(value)
    return hash_v2(seed) if algorithm == "v2" else hash_v3(seed)


seeds = st.one_of(st.text(max_size=6), st.integers(-3, 10**12), st.booleans(), finite, st.none())


@settings(max_examples=120, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 100_000), max_size=2),
    by=st.sampled_from([None, "targetingKey", "org", "org.id"]),
    algorithm=st.sampled_from(["v2", "v3"]),
    drawn=st.lists(st.tuples(seeds, seeds), min_size=1, max_size=8),
)
def test_splits_bucket_as_documented_in_a_rule_and_by_default(
    cuts: list[int], by: str | None, algorithm: str, drawn: list[tuple[Any, Any]]
) -> None:
    """Every split is generated code now (v2 and v3, by the targeting key or an attribute)."""
    bounds = [0, *sorted(cuts), 100_000]
    weights = [upper - lower for lower, upper in pairwise(bounds)]
    split: dict[str, Any] = {
        "weights": [{"variant": f"v{i}", "weight": w / 1000} for i, w in enumerate(weights)]
    }
    if by is not None:
        split["by"] = by
    variants: dict[str, Any] = {f"v{i}": i for i in range(len(weights))} | {"none": -1}
    base = {"type": "number", "variants": variants, "offVariant": "none"}
    never = {"clauses": [{"attribute": "x", "op": "exists"}], "variant": "none"}
    flags = {
        "by-default": {**base, "rules": [never], "default": {"split": split}},
        "in-a-rule": {
            **base,
            "rules": [{"clauses": [], "split": split}],
            "default": {"variant": "none"},
        },
    }
    engine = fader_engine.load({"format": "fader/v1", "flags": flags, "bucketing": algorithm})
    cumulative = list(accumulate(weights))
    for key, org in drawn:
        ctx = {"targetingKey": key, "org": {"id": org} if by == "org.id" else org}
        for flag in flags:
            hashed = seed_hash(flag, by, algorithm, ctx)
            result = engine.evaluate(flag, ctx)
            if hashed is None:
                assert result.error_code is ErrorCode.TARGETING_KEY_MISSING, (flag, ctx, result)
            else:
                want = (Reason.SPLIT, pick(hashed, cumulative))
                assert (result.reason, result.value) == want, (flag, ctx)
