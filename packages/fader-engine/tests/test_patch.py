"""Document patches: applying the diff of two documents gives the second, whatever they hold."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fader_engine.patch import PatchError, apply_patch, diff_documents, is_empty

_json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
_entry = st.dictionaries(st.sampled_from(["type", "variants", "rules", "x"]), _json, max_size=4)
_names = st.sampled_from(["a", "b", "c", "d", "e"])
_document = st.fixed_dictionaries(
    {
        "flags": st.dictionaries(_names, _entry, max_size=5),
        "segments": st.dictionaries(_names, _entry, max_size=3),
    },
    optional={
        "format": st.just("fader/v1"),
        "bucketing": st.sampled_from(["v2", "v3"]),
        "metadata": st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    },
)


@settings(max_examples=120, deadline=None)
@given(_document, _document)
def test_applying_the_diff_gives_the_new_document(old: dict[str, Any], new: dict[str, Any]) -> None:
    before = copy.deepcopy(old)
    patch = diff_documents(old, new)
    assert apply_patch(old, patch) == new
    assert old == before, "applying must not modify the document it starts from"
    assert is_empty(patch) == (old == new)


def test_a_patch_holds_only_what_changed() -> None:
    old = {
        "format": "fader/v1",
        "bucketing": "v2",
        "flags": {"kept": {"enabled": True}, "changed": {"enabled": False}, "gone": {}},
        "segments": {"s": {"rules": []}},
    }
    new = {
        "format": "fader/v1",
        "bucketing": "v3",
        "flags": {"kept": {"enabled": True}, "changed": {"enabled": True}, "added": {"a": None}},
        "segments": {"s": {"rules": []}},
    }
    assert diff_documents(old, new) == {
        "flags": {"changed": {"enabled": True}, "gone": None, "added": {"a": None}},
        "segments": {},
        "fields": {"bucketing": "v3"},
    }


def test_unchanged_entries_are_shared_not_copied() -> None:
    entry = {"variants": {"on": True}}
    doc = {"flags": {"same": entry, "other": {}}, "segments": {}}
    patched = apply_patch(doc, {"flags": {"other": {"enabled": True}}})
    assert patched["flags"]["same"] is entry
    assert doc["flags"]["other"] == {}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"flags": ["a"]}, "patch 'flags' must be an object"),
        ({"flags": {"a": 1}}, "patch entry 'flags/a' must be an object or null"),
        ({"fields": {"flags": {}}}, "cannot replace 'flags'"),
        ({"fields": "x"}, "patch 'fields' must be an object"),
    ],
)
def test_malformed_patches_are_refused(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(PatchError, match=message):
        apply_patch({"flags": {}, "segments": {}}, patch)
