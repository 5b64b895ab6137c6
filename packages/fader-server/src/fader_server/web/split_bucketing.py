"""A split's vendor ``bucketing`` in the console: carried through the rules editor, and said
in words.

A rollout imported from LaunchDarkly or Unleash keeps that vendor's hash (docs/bucketing.md),
so every user stays in the bucket the vendor gave them. The rules editor has no control for it
(nobody should type a LaunchDarkly prefix), yet saving the form must not drop it: that would
silently re-bucket the split with Fader's hash and serve a *different* 30%. So the editor
carries each split's bucketing in a hidden field, as JSON, and reads it back here.

What comes back is a browser's word, not the server's: it is decoded strictly and bounded
(:func:`read`), and whatever it holds is then judged by the engine with the rest of the
configuration, exactly as if it had been sent to the API. A split the editor creates has no
hidden field, so it uses Fader's own bucketing.
"""

from __future__ import annotations

import json
from typing import Any

from fader_server import strict_json
from fader_server.storage.ports import JSON

MAX_TEXT = 4096
"""Characters of a bucketing as JSON: a LaunchDarkly prefix is at most 1,024 characters and an
Unleash bucketing a group, two numbers and at most eight attributes."""

_VENDORS = {"launchdarkly": "LaunchDarkly", "unleash": "Unleash"}


def as_text(bucketing: Any) -> str:
    """The hidden field's value: the bucketing as compact JSON ('' for Fader's own)."""
    if bucketing is None:
        return ""
    return json.dumps(bucketing, ensure_ascii=False, separators=(",", ":"))


def read(text: str) -> Any:
    """The bucketing posted in a hidden field: ``None`` when empty (Fader's own), else the
    decoded JSON. Text that is too long, not JSON or not strict JSON comes back as the text
    itself, which the engine then refuses at ``.../split/bucketing`` ("must be an object"),
    so a tampered form fails loudly instead of saving a split bucketed some other way."""
    if not text:
        return None
    if len(text) > MAX_TEXT:
        return text[:MAX_TEXT]
    try:
        return strict_json.decode(text)
    except (ValueError, strict_json.JsonInputError):
        return text


def describe(bucketing: Any) -> str:
    """Whose hash places users, e.g. "LaunchDarkly's hash, as imported" ('' for Fader's)."""
    if not isinstance(bucketing, dict):
        return "" if bucketing is None else "a bucketing Fader does not recognise"
    algorithm = bucketing.get("algorithm")
    vendor = _VENDORS.get(str(algorithm))
    if vendor is None:
        return f"the unknown bucketing “{algorithm}”"
    words = f"{vendor}'s hash"
    kind = bucketing.get("contextKind")
    if vendor == "LaunchDarkly" and isinstance(kind, str) and kind != "user":
        words += f" of “{kind}” contexts"
    return words + ", as imported"


def seed_words(split: JSON) -> str:
    """What a split hashes: its ``by`` attribute (the targeting key by default) and, for
    Unleash's stickiness, the attributes tried when that one is missing."""
    by = str(split.get("by") or "targetingKey")
    bucketing = split.get("bucketing")
    fallback = bucketing.get("fallback") if isinstance(bucketing, dict) else None
    if isinstance(fallback, list) and fallback:
        return f"{by}, else {' or '.join(str(f) for f in fallback)},"
    return by
