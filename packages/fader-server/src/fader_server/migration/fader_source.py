"""Fader as a source system: moving a project between Fader instances (``fader export`` then
``fader import fader``), verified by the same parity check as imports from other systems.

Nothing needs translating, so :func:`translate` is the identity: the Fader document of one
environment, every flag under its own key, every variant answering as itself. The "source SDK"
is Fader's own engine loaded from the *exported* document (:class:`FaderEvaluator`), while the
parity check loads the document read back from the instance that was written to. Both sides
speaking in variants and values makes the comparison exact: a segment, a prerequisite or a
variant value that did not land as exported shows up as a disagreement.

`data` is either one ``fader/v1`` document or a mapping of environment key to ``fader/v1``
document (the server builds these from a project bundle with its own document builder, so this
module stays below the services and never re-implements it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fader_engine import Engine
from fader_engine.errors import ConfigurationError
from fader_engine.formats import load
from fader_engine.model import FORMAT_ID
from fader_server.migration.model import (
    JSON,
    Answer,
    SourceDocumentError,
    SourceSystem,
    Translation,
)


def _document_for(data: Any, environment: str) -> JSON:
    """The ``fader/v1`` document `data` holds for `environment`."""
    if isinstance(data, Mapping) and data.get("format") == FORMAT_ID:
        return dict(data)
    if isinstance(data, Mapping) and all(isinstance(v, Mapping) for v in data.values()):
        found = data.get(environment)
        if found is None:
            known = ", ".join(sorted(str(k) for k in data)) or "none"
            raise SourceDocumentError(
                f"no environment '{environment}' in the Fader documents (it has: {known})"
            )
        if found.get("format") != FORMAT_ID:
            raise SourceDocumentError(
                f"the document of environment '{environment}' is not a {FORMAT_ID} document"
            )
        return dict(found)
    raise SourceDocumentError(
        f'expected a Fader document ("format": "{FORMAT_ID}") or a mapping of environment '
        "to Fader document"
    )


def identity_translation(document: JSON) -> Translation:
    """`document` as its own translation: keys unchanged, each variant answering with its own
    name and value (a variant's value comes from `document`, so values are compared too)."""
    flags: Mapping[str, Any] = document.get("flags") or {}
    answers = {
        key: {
            str(name): Answer(value, str(name))
            for name, value in (entry.get("variants") or {}).items()
        }
        for key, entry in flags.items()
    }
    return Translation(
        source="fader",
        document=document,
        keys={key: key for key in flags},
        answers=answers,
        segment_keys={key: key for key in document.get("segments") or {}},
    )


def translate(data: Any, environment: str) -> Translation:
    return identity_translation(_document_for(data, environment))


class FaderEvaluator:
    """Fader's engine over the exported document: the source side of a Fader-to-Fader check."""

    def __init__(self, document: JSON) -> None:
        try:
            self._engine: Engine = load(document, clock=lambda: 0.0)
        except ConfigurationError as exc:
            raise SourceDocumentError(
                f"the exported Fader document is invalid: {exc.problems[0].message}"
            ) from exc

    def answer(self, source_key: str, context: Mapping[str, Any]) -> Answer:
        result = self._engine.evaluate(source_key, dict(context))
        if result.variant is None:
            code = result.error_code.value if result.error_code is not None else None
            return Answer(None, None, code or result.reason.value)
        return Answer(result.value, str(result.variant), result.reason.value)

    def close(self) -> None:
        """Nothing to release: the engine holds no resources."""


def evaluator(data: Any) -> FaderEvaluator:
    """The evaluator for a single ``fader/v1`` document (one environment: pick it from a
    mapping of environments before calling)."""
    if not (isinstance(data, Mapping) and data.get("format") == FORMAT_ID):
        raise SourceDocumentError(
            f'the Fader evaluator takes one environment\'s document ("format": "{FORMAT_ID}")'
        )
    return FaderEvaluator(dict(data))


SOURCE = SourceSystem(name="fader", title="Fader", translate=translate, evaluator=evaluator)
