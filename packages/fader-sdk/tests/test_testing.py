"""TestData: users pin flag values without a server; changes apply live."""

from __future__ import annotations

import pytest

from fader_sdk import FaderClient
from fader_sdk.testing import TestData


def test_pinned_values_apply_live_through_the_real_engine() -> None:
    td = TestData()
    client = FaderClient.for_testing(td)
    assert client.is_ready
    assert str(client.boolean_details("new-checkout", {}, False).error_code) == "FLAG_NOT_FOUND"
    td.flag("new-checkout")
    assert client.boolean("new-checkout", {}, False) is True  # a new flag is on for everyone
    td.flag("new-checkout").on_for("u-1", "u-2")
    assert client.boolean("new-checkout", {"targetingKey": "u-1"}, False) is True
    details = client.boolean_details("new-checkout", {"targetingKey": "u-3"}, True)
    assert (details.value, str(details.reason)) == (False, "DEFAULT")
    td.flag("new-checkout").off()
    assert str(client.boolean_details("new-checkout", {"targetingKey": "u-1"}, True).reason) == (
        "DISABLED"
    )
    td.remove("new-checkout")
    assert client.boolean("new-checkout", {}, False) is False
    client.close()


def test_values_per_attribute_and_metadata() -> None:
    td = TestData()
    td.flag("limits").value(10).value_for(100, "gold", attribute="plan").metadata(owner="billing")
    with FaderClient.for_testing(td) as client:
        assert client.integer("limits", {"plan": "gold"}, 0) == 100
        details = client.integer_details("limits", {"plan": "free"}, 0)
        assert (details.value, dict(details.flag_metadata)) == (10, {"owner": "billing"})


def test_non_boolean_targeting_needs_a_default_first() -> None:
    with pytest.raises(ValueError, match=r"\.value\(default\)"):
        TestData().flag("theme").value_for("dark", "u-1")
