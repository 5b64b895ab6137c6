"""The flagd bridge: flagd flag-definition documents evaluated by Fader's engine.

Spec: https://flagd.dev/reference/flag-definitions/ . A document is validated and its JsonLogic
targeting compiled once into closures (:mod:`.jsonlogic`, :mod:`.operators`); the result is an
ordinary :class:`~fader_engine.evaluate.Engine`, so flagd flags resolve exactly like Fader's own::

    engine = load_flagd(json.loads(text), clock=time.time)
    engine.resolve_string("color", {"targetingKey": "u1"}, "grey")

``$flagd.timestamp`` is read from the injected `clock`; without one it is ``null``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fader_engine.bucketing import BucketingAlgorithm
from fader_engine.errors import ConfigurationError, Problem
from fader_engine.evaluate import Engine
from fader_engine.flagd.document import FlagDefinition, build_flags, validate_document


def load_flagd(
    data: Mapping[str, Any],
    *,
    clock: Callable[[], float] | None = None,
    bucketing: BucketingAlgorithm | str = BucketingAlgorithm.V2,
    strict: bool = True,
) -> Engine:
    """Validate and compile a flagd document into an :class:`Engine`.

    Raises :class:`ConfigurationError` listing every problem. With ``strict=False`` the engine
    behaves as flagd itself does: a flag whose targeting cannot be compiled (unknown operator,
    dangling ``$ref``) is kept and resolves to ``ERROR``/``PARSE_ERROR``, and operator arguments
    that break the schema but have a run-time meaning are accepted; structural problems still
    raise.
    """
    algorithm = BucketingAlgorithm(bucketing)  # "v3" works too; anything else raises ValueError
    return Engine(build_flags(data, bucketing=algorithm, strict=strict), clock)


def validate_flagd(
    data: Any, *, bucketing: BucketingAlgorithm = BucketingAlgorithm.V2
) -> list[Problem]:
    """Every problem strict loading would report; empty when the document is valid."""
    try:
        build_flags(data, bucketing=bucketing, strict=True)
    except ConfigurationError as exc:
        return list(exc.problems)
    return []


__all__ = ["FlagDefinition", "load_flagd", "validate_document", "validate_flagd"]
