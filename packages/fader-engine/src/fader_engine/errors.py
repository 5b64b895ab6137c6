"""Exceptions raised by the engine.

Evaluation itself never raises on a validated configuration: it returns a
:class:`~fader_engine.result.Resolution` with reason ``ERROR``. Exceptions are for *loading* a
document and for the few helpers that the server and the SDK call on raw JSON::

    FaderEngineError              catch to handle any engine failure at once
    ├── ConfigurationError        a document was rejected (invalid, or over one of the limits
    │   │                         of docs/flag-format.md); `.problems` lists why
    │   ├── UnknownFormatError    the document is neither Fader's format nor flagd's
    │   ├── ExportError           it uses what flagd cannot express (flagd.export)
    │   └── ImportRefusedError    a flagd document Fader's format cannot hold (flagd.importer)
    ├── PatchError                a document patch is malformed (patch.apply_patch)
    ├── WeightError               a split weight is no usable percentage (percent)
    ├── RegexError                a pattern is not valid RE2 (regex.compile_pattern)
    ├── SketchError               an encoded distinct-context sketch is not one (sketches)
    └── RuleError                 a flagd targeting rule cannot be compiled (flagd.jsonlogic;
                                  loading reports it as a ConfigurationError problem)

Catch :class:`ConfigurationError` where a user supplies a document (API, CLI, file watcher) and
show every :class:`Problem`: each names the flag, the rule and the field, and says what to change.
Validation catches :class:`WeightError` and :class:`RegexError` itself and reports them as
problems; they reach a caller only from the helpers that raise them. :class:`PatchError`,
:class:`WeightError` and :class:`RegexError` also derive from :class:`ValueError`, so code that
catches bad input as ``ValueError`` (the SDK, for a patch event) keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a document.

    `path` is a JSON-pointer-like location (``/flags/new-checkout/rules/0/clauses/1/op``), so an
    editor or API client can highlight the field; `message` says why and how to fix it.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '/'}: {self.message}"


class FaderEngineError(Exception):
    """Root of every exception the engine raises."""


class ConfigurationError(FaderEngineError):
    """A flag document failed validation; nothing of it was loaded."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        head = f"invalid flag configuration ({count} problem{'s' if count != 1 else ''})"
        super().__init__(head + "".join(f"\n  {p}" for p in self.problems))


class UnknownFormatError(ConfigurationError):
    """The document's format could not be recognised (neither Fader nor flagd)."""


class PatchError(FaderEngineError, ValueError):
    """A patch that cannot be applied (malformed); the caller should fetch the whole document."""


class WeightError(FaderEngineError, ValueError):
    """A weight is not a usable percentage; the message explains it to the document's author."""


class SketchError(FaderEngineError, ValueError):
    """An encoded distinct-context sketch that is not one (wrong size, not base64, not zlib,
    a rank too high); it comes from an SDK, so the server answers 422 naming the item."""


class RegexError(FaderEngineError, ValueError):
    """`pattern` is not a valid RE2 regular expression; `reason` says why in plain words."""

    def __init__(self, pattern: str, reason: str) -> None:
        self.pattern = pattern
        self.reason = reason
        super().__init__(f"invalid regular expression {pattern!r}: {reason}")
