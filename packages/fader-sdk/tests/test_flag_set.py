"""Flag sets built from a stream `patch` event (the holder's swap is covered via the sources)."""

from __future__ import annotations

import pytest
from sdk_doubles import document, snapshot

from fader_engine.patch import PatchError
from fader_sdk.flag_set import FlagSet, Origin


def test_a_patched_flag_set_leaves_the_one_being_evaluated_untouched() -> None:
    wire = snapshot(17)
    wire["document"]["flags"].update(document("blue", "banner")["flags"])
    base = FlagSet.from_wire(wire, Origin.SERVER)
    payload = {
        "base": 17,
        "version": 18,
        "flags": {"new-checkout": document(False)["flags"]["new-checkout"]},
    }

    patched = base.patched(payload)

    assert (patched.version, patched.origin) == (18, Origin.SERVER)
    assert (patched.project, patched.environment) == ("demo", "production")
    assert patched.engine.resolve_boolean("new-checkout", {}, True).value is False
    assert base.engine.resolve_boolean("new-checkout", {}, False).value is True
    assert base.document == wire["document"]  # other threads may still be evaluating it
    assert patched.document["flags"]["banner"] is base.document["flags"]["banner"]  # shared


def test_a_patch_for_another_version_or_of_another_shape_is_refused() -> None:
    base = FlagSet.from_wire(snapshot(17), Origin.SERVER)
    with pytest.raises(ValueError, match="applies to version 16"):
        base.patched({"base": 16, "version": 18, "flags": {}})
    with pytest.raises(PatchError):
        base.patched({"base": 17, "version": 18, "segments": ["x"]})
