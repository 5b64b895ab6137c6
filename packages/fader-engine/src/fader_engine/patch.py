"""Document patches: what changed between two versions of one environment's Fader document.

Why: a flag change touches one flag of a document that may hold hundreds. The server streams
the changed entries instead of the whole document (``docs/delivery-protocol.md``, the `patch`
event), so 10,000 connected SDKs receive a few hundred bytes each rather than tens of
kilobytes. The server computes patches and SDKs apply them with the same two functions, which
live here because the engine is the one package both depend on.

A patch replaces whole entries, never parts of one: ``{"flags": {"k": entry-or-null},
"segments": {...}, "fields": {top-level-key: value-or-null}}``, null meaning "removed". Entries
are always JSON objects and top-level fields are never null, so null is unambiguous (unlike a
JSON Merge Patch, RFC 7396, which cannot carry a null inside a flag's variant values).
"""

from __future__ import annotations

import marshal
from collections.abc import Mapping
from typing import Any

from fader_engine.errors import PatchError

__all__ = ["ENTRY_MAPS", "DocumentPatch", "PatchError", "apply_patch", "diff_documents", "is_empty"]

ENTRY_MAPS = ("flags", "segments")
"""Top-level document keys whose values are maps of named entries, patched entry by entry."""

DocumentPatch = dict[str, dict[str, Any]]


def diff_documents(old: Mapping[str, Any], new: Mapping[str, Any]) -> DocumentPatch:
    """The patch that turns `old` into `new` (``apply_patch(old, diff) == new``)."""
    patch: DocumentPatch = {"flags": {}, "segments": {}, "fields": {}}
    for name in ENTRY_MAPS:
        before: Mapping[str, Any] = old.get(name) or {}
        after: Mapping[str, Any] = new.get(name) or {}
        changed = patch[name]
        for key, entry in after.items():
            if not _same(before.get(key), entry):
                changed[key] = entry
        for key in before:
            if key not in after:
                changed[key] = None
    fields = patch["fields"]
    for key, value in new.items():
        if key not in ENTRY_MAPS and not _same(old.get(key), value):
            fields[key] = value
    for key in old:
        if key not in ENTRY_MAPS and key not in new:
            fields[key] = None
    return patch


def _same(a: Any, b: Any) -> bool:
    """Whether two JSON values are the same JSON, which ``==`` does not tell: it holds
    ``true == 1 == 1.0``, so a variant value or a clause value changed from ``1`` to ``true``
    would be missing from the patch, and SDKs would go on serving the old one.

    ``marshal`` (format 0: no references, no interning marks) writes the type of every value,
    in C; equal bytes mean equal values of equal types. Different bytes for the same JSON (keys
    in another order) only add an entry to the patch, which is harmless. It runs only where
    ``==`` found no difference, so a changed entry costs one comparison.
    """
    if a is b:
        return True
    if a != b:
        return False
    try:
        return marshal.dumps(a, 0) == marshal.dumps(b, 0)
    except ValueError:  # not plain JSON data (a mapping proxy...): count it as changed
        return False


def is_empty(patch: DocumentPatch) -> bool:
    return not any(patch.values())


def apply_patch(document: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A new document: `document` with `patch` applied. `document` is left untouched (it may be
    the one being evaluated on other threads); unchanged entries are shared, not copied.

    Raises :class:`PatchError` when the patch is not shaped as described in the module doc.
    """
    result = dict(document)
    fields = patch.get("fields") or {}
    if not isinstance(fields, Mapping):
        raise PatchError("patch 'fields' must be an object")
    for key, value in fields.items():
        if key in ENTRY_MAPS:
            raise PatchError(f"patch 'fields' cannot replace '{key}'; patch its entries")
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    for name in ENTRY_MAPS:
        changes = patch.get(name) or {}
        if not isinstance(changes, Mapping):
            raise PatchError(f"patch '{name}' must be an object")
        if not changes:
            continue
        current = result.get(name) or {}
        if not isinstance(current, Mapping):
            raise PatchError(f"the document's '{name}' is not an object")
        entries = dict(current)
        for key, entry in changes.items():
            if entry is None:
                entries.pop(key, None)
            elif isinstance(entry, Mapping):
                entries[key] = entry
            else:
                raise PatchError(f"patch entry '{name}/{key}' must be an object or null")
        result[name] = entries
    return result
