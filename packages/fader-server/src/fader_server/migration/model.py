"""The values every importer produces and the parity check consumes.

A :class:`Translation` is one environment's Fader document (``fader/v1``: flags with their
variants and configuration, segments) together with what the parity check needs to compare
Fader's answers with the source system's: for every Fader flag and variant, the
:class:`Answer` the source system would give when it serves that variant. Comparing answers in
the source's terms (a LaunchDarkly variation index, an Unleash enabled/variant pair, a flagd
variant) keeps the comparison exact without teaching the parity check any vendor's model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Answer:
    """What a system answers for one flag and one context, in the source system's terms.

    `value` is the JSON value served (``None`` when the system fell back to the caller's
    default); `variant` is the source's name for what it served (a LaunchDarkly variation index
    as text, an Unleash variant name, a flagd variant), ``None`` on error/default. Two answers
    agree when both fields are equal. `detail` explains (the source's reason) and is not
    compared.
    """

    value: Any
    variant: str | None
    detail: str = ""

    def agrees(self, other: Answer) -> bool:
        return self.variant == other.variant and _same_json(self.value, other.value)


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but a boolean is never a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    return bool(a == b) and type(a) is type(b)


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A construct that has no exact equivalent in Fader: reported, never approximated.

    `flag` (or `segment`) is the source key it belongs to (``None`` for the whole document);
    `construct` says which construct and where (``"rule 2, clause 1: operator 'foo'"``);
    `detail` says why and what the user can do.
    """

    construct: str
    detail: str
    flag: str | None = None
    segment: str | None = None

    def as_json(self) -> JSON:
        out: JSON = {"construct": self.construct, "detail": self.detail}
        if self.flag is not None:
            out["flag"] = self.flag
        if self.segment is not None:
            out["segment"] = self.segment
        return out


@dataclass(frozen=True, slots=True)
class Translation:
    """One environment of a source document, in Fader's format.

    `document` is a complete ``fader/v1`` document (what ``parse_document`` accepts): every
    flag with its variants and this environment's configuration, every segment. Flags that
    could not be translated are absent from it and listed in `unsupported`.

    `keys` maps each source flag key to its Fader key (they differ only when the source key is
    not a valid Fader key, e.g. upper case; `notes` then says so). `answers` maps each Fader
    flag key and variant to the :class:`Answer` the source gives when serving that variant.
    """

    source: str
    document: JSON
    keys: Mapping[str, str]
    answers: Mapping[str, Mapping[str, Answer]]
    unsupported: tuple[Unsupported, ...] = ()
    notes: tuple[str, ...] = ()
    segment_keys: Mapping[str, str] = field(default_factory=dict)


class SourceEvaluator(Protocol):
    """The source system's own SDK, loaded from the imported document."""

    def answer(self, source_key: str, context: Mapping[str, Any]) -> Answer:
        """Evaluate flag `source_key` for a Fader evaluation context (``targetingKey`` plus
        attributes), converted to the source's context the way docs/migration.md describes."""
        ...

    def close(self) -> None: ...


class SourceSDKMissingError(RuntimeError):
    """The source system's SDK is not installed (the ``fader-server[migrate]`` extra)."""

    def __init__(self, system: str, package: str) -> None:
        super().__init__(
            f"verifying a {system} import needs {system}'s own SDK ({package}); install "
            "Fader with the migrate extra: pip install 'fader-server[migrate]'"
        )
        self.system = system
        self.package = package


class SourceDocumentError(ValueError):
    """The source document as a whole cannot be read (not the expected format at all).

    Problems with one flag or segment are not errors: they are :class:`Unsupported` entries
    and the rest of the document is still translated.
    """


class SourceContextError(ValueError):
    """One evaluation context has no equivalent in the source system's SDK (a LaunchDarkly
    context without a key, say): the verification names the context instead of guessing one."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message if index is None else f"context {index + 1}: {message}")
        self.index = index


@dataclass(frozen=True, slots=True)
class SourceSystem:
    """One system Fader imports from: how to translate its document and load its own SDK.

    `translate(data, environment)` turns the parsed JSON document into a :class:`Translation`
    (raising :class:`SourceDocumentError` when the document is not that system's format);
    `evaluator(data)` loads the source's own SDK from the same document (raising
    :class:`SourceSDKMissingError` when the SDK is not installed).
    """

    name: str
    title: str
    translate: Callable[[Any, str], Translation]
    evaluator: Callable[[Any], SourceEvaluator]
