"""Which document format a JSON value is in, and loading either into an :class:`Engine`.

Fader reads two formats: its own (``"format": "fader/v1"``, see ``docs/flag-format.md``) and
flagd's flag-definition format (https://flagd.dev/reference/flag-definitions/). Detection is
explicit and conservative: a document that claims neither is rejected with a message saying
how to mark it, rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from fader_engine.bucketing import BucketingAlgorithm
from fader_engine.errors import Problem, UnknownFormatError
from fader_engine.evaluate import Engine
from fader_engine.model import FORMAT_ID


class DocumentFormat(StrEnum):
    FADER = "fader"
    FLAGD = "flagd"


def detect_format(data: Any) -> DocumentFormat:
    """Tell Fader's format from flagd's, or raise :class:`UnknownFormatError`."""
    if not isinstance(data, Mapping):
        raise UnknownFormatError(
            [Problem("", f"a flag document must be a JSON object, not {type(data).__name__}")]
        )
    declared = data.get("format")
    if declared == FORMAT_ID:
        return DocumentFormat.FADER
    if declared is not None:
        raise UnknownFormatError(
            [
                Problem(
                    "/format",
                    f'unknown format {declared!r}; Fader documents declare "format": "{FORMAT_ID}"',
                )
            ]
        )
    schema = data.get("$schema")
    if isinstance(schema, str) and "flagd" in schema:
        return DocumentFormat.FLAGD
    flags = data.get("flags")
    if isinstance(flags, Mapping) and all(
        isinstance(f, Mapping) and "state" in f for f in flags.values()
    ):
        return DocumentFormat.FLAGD
    raise UnknownFormatError(
        [
            Problem(
                "",
                'cannot tell the document\'s format: add "format": '
                f'"{FORMAT_ID}" for a Fader document, or a flagd "$schema" '
                "(https://flagd.dev/schema/v0/flags.json) for a flagd document",
            )
        ]
    )


def load(
    data: Any,
    *,
    format: DocumentFormat | str | None = None,
    clock: Callable[[], float] | None = None,
    bucketing: BucketingAlgorithm | str | None = None,
) -> Engine:
    """Validate and compile a document of either format.

    `bucketing` overrides the document's fractional algorithm (flagd documents do not carry
    one; Fader documents do). Raises :class:`~fader_engine.errors.ConfigurationError`.
    """
    kind = DocumentFormat(format) if format is not None else detect_format(data)
    if kind is DocumentFormat.FLAGD:
        from fader_engine.flagd import load_flagd  # noqa: PLC0415 - keep flagd off the Fader path

        algorithm = BucketingAlgorithm(bucketing) if bucketing else BucketingAlgorithm.V2
        return load_flagd(data, clock=clock, bucketing=algorithm)

    from dataclasses import replace  # noqa: PLC0415

    from fader_engine.compile import compile_document  # noqa: PLC0415
    from fader_engine.parse import parse_document  # noqa: PLC0415

    document = parse_document(data)
    if bucketing:
        document = replace(document, bucketing=BucketingAlgorithm(bucketing))
    return compile_document(document, clock=clock)
