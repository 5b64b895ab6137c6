"""The import page's reading of import reports, and splits' bucketing in words (no browser)."""

from __future__ import annotations

from fader_server.web import import_report
from fader_server.web.flag_page import serves
from fader_server.web.import_report import percent


def test_agreement_is_rounded_down_so_it_never_reads_100_percent_when_it_is_not() -> None:
    assert percent(0, 0) == "100%"
    assert percent(5, 0) == "100%"
    assert percent(199_999, 1) == "99.99%"
    assert percent(779, 21) == "97.37%"
    assert percent(0, 3) == "0.00%"


def _parity(agreed: int, disagreed: int) -> dict[str, object]:
    example = {
        "context": {"targetingKey": "u1"},
        "source": {"value": True, "variant": "on", "detail": "TARGETING_MATCH"},
        "fader": {"value": False, "variant": "off", "detail": "SPLIT"},
    }
    return {
        "contexts": agreed + disagreed,
        "evaluations": agreed + disagreed,
        "agreed": agreed,
        "disagreed": disagreed,
        "agreement": agreed / (agreed + disagreed),
        "complete": disagreed == 0,
        "flags": [
            {
                "flag": "Dark_Mode",
                "fader_flag": "dark-mode",
                "contexts": agreed + disagreed,
                "agreed": agreed,
                "disagreed": disagreed,
                "nondeterministic": 0,
                "examples": [example] if disagreed else [],
            }
        ],
    }


def test_an_import_report_reads_as_counts_unsupported_constructs_and_parity() -> None:
    report = {
        "source": "launchdarkly",
        "environment": "staging",
        "dry_run": True,
        "created": {"flags": ["dark-mode"], "segments": []},
        "updated": {"flags": [], "segments": ["beta"]},
        "unchanged": {"flags": ["old"], "segments": []},
        "keys": {"Dark_Mode": "dark-mode"},
        "unsupported": [
            {"construct": "rule 1, clause 1", "detail": "fuzzyMatch", "flag": "fuzzy"},
            {"construct": "rule 2", "detail": "weighted", "segment": "half"},
        ],
        "notes": ["a note"],
        "parity": _parity(9, 1),
        "refused": True,
        "written": False,
    }
    view = import_report.view_of(report)
    assert [(r.what, r.created, r.updated, r.unchanged, r.keys) for r in view.counts] == [
        ("Flags", 1, 0, 1, "dark-mode"),
        ("Segments", 0, 1, 0, "beta"),
    ]
    assert [u.where for u in view.unsupported] == ["fuzzy", "segment half"]
    assert view.renamed == [("Dark_Mode", "dark-mode")]
    [table] = view.parity
    assert (table.agreement, table.complete, view.complete) == ("90.00%", False, False)
    [disagreement] = table.disagreements
    assert disagreement.source == "true; variant “on”; TARGETING_MATCH"
    assert disagreement.fader == "false; variant “off”; SPLIT"
    assert view.changes == 2
    assert view.source_label == "LaunchDarkly"


def test_a_bundle_report_has_a_parity_table_per_environment() -> None:
    report = {
        "source": "fader",
        "project": "shop",
        "project_created": False,
        "environments": [{"key": "production"}, {"key": "staging"}],
        "counts": {"flags": {"created": 2, "updated": 0, "unchanged": 1}},
        "kept": {"flags": ["local-only"]},
        "contexts": {"production": 10, "staging": 10},
        "parity": {"staging": _parity(10, 0), "production": _parity(10, 0)},
        "dry_run": True,
        "written": False,
    }
    view = import_report.view_of(report)
    assert [t.environment for t in view.parity] == ["production", "staging"]
    assert view.complete
    assert view.counts[0].created == 2
    assert view.counts[1].created == 0
    assert view.notes == ["Kept flags the project has and the bundle lacks: local-only"]


def test_a_vendor_bucketed_split_says_whose_hash_places_users() -> None:
    weights = [{"variant": "on", "weight": 30}, {"variant": "off", "weight": 70}]
    unleash = {
        "algorithm": "unleash",
        "group": "g",
        "seed": 86028157,
        "modulus": 1000,
        "fallback": ["sessionId", "remoteAddress"],
    }
    assert serves({"split": {"weights": weights}}) == (
        "a percentage split: “on” 30%, “off” 70% (bucketed by targetingKey)"
    )
    assert serves({"split": {"weights": weights, "bucketing": unleash}}) == (
        "a percentage split: “on” 30%, “off” 70% (bucketed by targetingKey, else sessionId or "
        "remoteAddress, with Unleash's hash, as imported)"
    )
    ld = {"algorithm": "launchdarkly", "prefix": "f.s", "contextKind": "org"}
    assert serves({"split": {"by": "orgId", "weights": weights, "bucketing": ld}}) == (
        "a percentage split: “on” 30%, “off” 70% (bucketed by orgId with LaunchDarkly's hash "
        "of “org” contexts, as imported)"
    )
