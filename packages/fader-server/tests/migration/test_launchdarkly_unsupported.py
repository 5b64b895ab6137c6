"""What has no exact Fader equivalent is left out and reported: flag, construct, and why."""

from __future__ import annotations

from launchdarkly_support import load_fixture

from fader_server.migration.launchdarkly import SOURCE

EXPECTED = {
    # (flag or segment, construct): a phrase the detail must contain
    ("big-segment", "unbounded"): "big-segment store",
    ("half-segment", "rule 1"): "50%",
    ("loop-a", "rule 1, clause 1"): "cycle",
    ("loop-b", "rule 1, clause 1"): "cycle",
    ("uses-big-segment", "rule 1, clause 1"): "segment 'big-segment' is not imported",
    ("uses-weighted-segment", "rule 1, clause 1"): "segment 'half-segment' is not imported",
    ("segment-cycle-user", "rule 1, clause 1"): "segment 'loop-a' is not imported",
    ("off-without-off-variation", "offVariation"): "caller's default",
    ("prereq-without-off-variation", "offVariation"): "prerequisite fails",
    ("mixed-types", "variations"): "different JSON types",
    ("null-variation", "variations"): "null",
    ("unicode-word-regex", "rule 1, clause 1"): "\\w",
    ("case-insensitive-regex", "rule 1, clause 1"): "inline flags",
    ("unknown-operator", "rule 1, clause 1"): "'fuzzyMatch'",
    ("invalid-reference", "rule 1, clause 1"): "'/a//b' is invalid",
    ("dotted-attribute", "rule 1, clause 1"): "containing '.'",
    ("missing-variation", "rule 1"): "variation 5 does not exist",
    ("no-fallthrough", "fallthrough"): "neither a variation nor a rollout",
    ("cycle-a", "prerequisites"): "cycle",
    ("cycle-b", "prerequisites"): "cycle",
    ("behind-unsupported", "prerequisites"): "'unknown-operator' is not imported",
    ("bucket-by-kind", "fallthrough, rollout, bucketBy"): "'kind'",
    ("object-in-value", "rule 1, clause 1"): "array or object",
    ("requires-chain-off", "prerequisites"): "off variation of 'chain-base'",
}


def test_every_unsupported_construct_is_reported_once_with_its_reason() -> None:
    translation = SOURCE.translate(load_fixture("unsupported.json"), "production")
    reported = {(u.flag or u.segment, u.construct): u for u in translation.unsupported}
    assert len(reported) == len(translation.unsupported)
    assert set(reported) == set(EXPECTED)
    for where, phrase in EXPECTED.items():
        assert phrase in reported[where].detail, (where, reported[where].detail)
    segments = {"big-segment", "half-segment", "loop-a", "loop-b"}
    for (owner, _), entry in reported.items():
        assert entry.as_json()["segment" if owner in segments else "flag"] == owner


def test_unsupported_flags_and_segments_are_absent_and_the_rest_imported() -> None:
    translation = SOURCE.translate(load_fixture("unsupported.json"), "production")
    assert translation.keys == {"fine-flag": "fine-flag", "chain-base": "chain-base"}
    assert set(translation.document["flags"]) == {"fine-flag", "chain-base"}
    assert not {"big-segment", "half-segment", "loop-a", "loop-b"} & set(
        translation.document["segments"]
    )
    assert set(translation.answers) == {"fine-flag", "chain-base"}
