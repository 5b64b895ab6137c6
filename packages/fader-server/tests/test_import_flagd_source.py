"""flagd as a source system, without a server: per-flag translation and its reports, the key
mapping, and the evaluator's loading of flagd's own provider."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from fader_server.migration import flagd_source, sources
from fader_server.migration.model import SourceDocumentError, SourceSDKMissingError
from fader_server.migration.parity import check_parity

BOOLEAN: dict[str, Any] = {
    "state": "ENABLED",
    "variants": {"on": True, "off": False},
    "defaultVariant": "off",
}
DOCUMENT: dict[str, Any] = {
    "flags": {
        "NewCheckout": {
            **BOOLEAN,
            "targeting": {"if": [{"==": [{"var": "plan"}, "pro"]}, "on", "off"]},
        },
        "kill-switch": {**BOOLEAN, "state": "DISABLED"},
        "clock": {
            **BOOLEAN,
            "targeting": {"if": [{">": [{"var": "$flagd.timestamp"}, 1]}, "on", "off"]},
        },
        "Bad Key!": BOOLEAN,
        "bad-key": BOOLEAN,
    }
}


def test_each_flag_is_translated_on_its_own_and_every_loss_is_named() -> None:
    translation = flagd_source.translate(DOCUMENT, "production")
    assert dict(translation.keys) == {
        "NewCheckout": "newcheckout",
        "kill-switch": "kill-switch",
        "Bad Key!": "bad-key-",
        "bad-key": "bad-key",
    }
    assert set(translation.document["flags"]) == {
        "newcheckout",
        "kill-switch",
        "bad-key-",
        "bad-key",
    }
    [clock] = translation.unsupported
    assert clock.flag == "clock"
    assert clock.construct.startswith("/flags/clock/targeting")
    notes = " | ".join(translation.notes)
    assert "'NewCheckout' is imported as 'newcheckout'" in notes
    assert "'kill-switch' is DISABLED" in notes
    assert translation.answers["newcheckout"]["on"].variant == "on"


def test_the_provider_verifies_with_source_keys_and_reports_disabled_flags() -> None:
    translation = flagd_source.translate(DOCUMENT, "production")
    evaluator = flagd_source.evaluator(DOCUMENT)
    try:
        contexts = [{"targetingKey": "u1", "plan": "pro"}, {"targetingKey": "u2"}]
        report = check_parity(translation, evaluator, contexts)
    finally:
        evaluator.close()
    rows = {row.source_key: row for row in report.flags}
    assert rows["NewCheckout"].agreed == 2
    assert rows["kill-switch"].disagreed == 2  # flagd: the caller's default; Fader: off variant
    assert rows["kill-switch"].examples[0].source.variant is None


def test_a_document_that_is_not_flagd_is_refused_whole() -> None:
    for wrong in ([], {"flags": []}, {"flags": {}, "$evaluators": []}):
        with pytest.raises(SourceDocumentError):
            flagd_source.translate(wrong, "production")


def test_without_the_provider_the_sdk_is_reported_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openfeature.contrib.provider.flagd", None)
    with pytest.raises(SourceSDKMissingError, match=r"fader-server\[migrate\]"):
        flagd_source.evaluator(DOCUMENT)


def test_the_registry_names_every_source() -> None:
    assert sources.NAMES == ("launchdarkly", "unleash", "flagd")
    assert (
        sources.get("flagd", bucketing="v3").translate(DOCUMENT, "e").document["bucketing"] == "v3"
    )
    with pytest.raises(sources.UnknownSourceError, match="one of launchdarkly, unleash, flagd"):
        sources.get("statsig")


def test_what_flagds_schema_allows_but_fader_cannot_load_is_reported_per_flag() -> None:
    """flagd's schema accepts a rule serving a variant the flag lacks and a four-part version;
    its evaluator fails on them at run time. The flag is left out and named, the rest imports."""
    document = {
        "flags": {
            "good": {**BOOLEAN, "targeting": {"if": [{"==": [{"var": "plan"}, "pro"]}, "on"]}},
            "ghost-variant": {
                **BOOLEAN,
                "targeting": {"if": [{"==": [{"var": "plan"}, "pro"]}, "fail", "off"]},
            },
            "four-part-version": {
                **BOOLEAN,
                "targeting": {"if": [{"sem_ver": [{"var": "v"}, "=", "2.0.0.0"]}, "on", "off"]},
            },
        }
    }
    translation = flagd_source.translate(document, "production")
    assert set(translation.document["flags"]) == {"good"}
    named = {u.flag for u in translation.unsupported}
    assert named == {"ghost-variant", "four-part-version"}
    assert all(u.detail for u in translation.unsupported)
