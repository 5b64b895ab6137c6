"""A document loaded for evaluation, whose patches are validated and compiled by what changed.

Why: an SDK holding an environment of 5,000 flags receives a stream `patch` event for one
(``docs/delivery-protocol.md``). Loading the patched document from scratch re-validates and
recompiles all 5,000, hundreds of milliseconds of CPU in every SDK process for every change.
A :class:`LoadedDocument` keeps what loading found (the validated model, reverse references,
sizes: :mod:`fader_engine.parse_patch`) and what compiling produced (flag and segment functions:
:mod:`fader_engine.compile`), so :meth:`LoadedDocument.patched` checks and compiles only the
entries the patch touched and those depending on them; every other flag keeps its compiled
function, the same object.

The outcome is the one of loading the patched document from scratch: the same evaluations, the
same flags in the same order, and the same :class:`~fader_engine.errors.ConfigurationError` for
an invalid result (``tests/test_incremental.py`` checks all three on random documents and
patches). Where reuse is not worth the risk, the document is loaded whole:

* flagd documents (the server never patches one; their ``$evaluators`` are compiled into each
  flag that names them);
* a patch that changes a top-level field (``bucketing``, ``metadata``, ``format``...): rare, and
  ``bucketing`` changes every split anyway;
* a patched document the incremental checks do not accept: loading it whole then reports every
  problem (or, were those checks ever stricter than a full parse, loads it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fader_engine.compile import Compiled, compile_flags, recompile
from fader_engine.evaluate import Engine
from fader_engine.formats import DocumentFormat, detect_format, load
from fader_engine.parse_patch import Parsed, parse_patched, parse_whole
from fader_engine.patch import apply_patch

__all__ = ["LoadedDocument"]

Clock = Callable[[], float]


class LoadedDocument:
    """One document, validated and compiled: `data` is the JSON, `engine` evaluates it.

    Immutable, like its engine: :meth:`patched` returns a new one and leaves this one to the
    threads still evaluating with it.
    """

    __slots__ = ("_clock", "_compiled", "_parsed", "data", "engine")

    def __init__(
        self,
        data: Mapping[str, Any],
        engine: Engine,
        parsed: Parsed | None = None,
        compiled: Compiled | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.data = data
        self.engine = engine
        self._parsed = parsed
        self._compiled = compiled
        self._clock = clock

    @classmethod
    def load(cls, data: Any, *, clock: Clock | None = None) -> LoadedDocument:
        """Validate and compile a document of either format, as :func:`fader_engine.load` does.

        Raises :class:`~fader_engine.errors.ConfigurationError` (or its subclass
        :class:`~fader_engine.errors.UnknownFormatError`).
        """
        if detect_format(data) is DocumentFormat.FLAGD:
            return cls(data, load(data, format=DocumentFormat.FLAGD, clock=clock), clock=clock)
        parsed = parse_whole(data)
        compiled = compile_flags(parsed.document, clock)
        return cls(parsed.data, compiled.engine, parsed, compiled, clock)

    def patched(self, patch: Mapping[str, Any]) -> LoadedDocument:
        """The document `patch` (:mod:`fader_engine.patch`) makes of this one, loaded.

        Raises :class:`~fader_engine.errors.PatchError` for a malformed patch and
        :class:`~fader_engine.errors.ConfigurationError` when the result is not a valid
        document; this one is unchanged either way.
        """
        data = apply_patch(self.data, patch)
        if self._parsed is None or self._compiled is None or patch.get("fields"):
            return LoadedDocument.load(data, clock=self._clock)
        flags = tuple(patch.get("flags") or ())
        segments = tuple(patch.get("segments") or ())
        parsed = parse_patched(self._parsed, data, flags, segments)
        if parsed is None:
            return LoadedDocument.load(data, clock=self._clock)
        compiled = recompile(
            self._compiled,
            self._parsed.document,
            parsed.document,
            (flags, segments),
            parsed.references,
        )
        return LoadedDocument(parsed.data, compiled.engine, parsed, compiled, self._clock)
