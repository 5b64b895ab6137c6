"""flagd as a source system: its flag-definition documents translated by the engine's importer
and verified by flagd's own Python provider.

Translation is :func:`fader_engine.flagd.importer.flagd_to_fader`, run one flag at a time so that
a flag with no exact Fader equivalent becomes an :class:`Unsupported` entry while the rest of
the document is still imported (the engine's importer refuses a whole document; an import
reports per flag). Each flagd variant is answered as itself: ``Answer(value, variant name)``.

The evaluator is the OpenFeature flagd provider (``openfeature-provider-flagd``, the
``migrate`` extra) in its offline FILE mode, reading the document from a private temporary
file, used through an OpenFeature client of its own domain: the same code path a flagd user's
application runs. Its fractional bucketing is flagd's v3, so a split verifies against it only
in an environment that buckets with v3 (a note says so for a v2 import with splits).

``$flagd.timestamp`` is never translated (the importer refuses conditions on ``$flagd``), so
no translated answer depends on the clock the parity check gives the engine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Mapping
from typing import Any

from fader_engine.errors import ConfigurationError
from fader_engine.flagd import validate_flagd
from fader_engine.flagd.importer import flagd_to_fader
from fader_engine.model import FORMAT_ID
from fader_engine.parse import parse_document
from fader_engine.parse_fields import KEY_PATTERN
from fader_server.migration.model import (
    JSON,
    Answer,
    SourceDocumentError,
    SourceEvaluator,
    SourceSDKMissingError,
    SourceSystem,
    Translation,
    Unsupported,
)

BUCKETING = ("v2", "v3")
PROVIDER_BUCKETING = "v3"
"""What the Python flagd provider's ``fractional`` hashes with (openfeature-provider-flagd)."""
MAX_FLAGS = 10_000
MAX_KEY = 128
"""The longest flag key the admin API accepts."""
_DOMAIN_LOCK = threading.Lock()
_DOMAINS = iter(range(1, 2**62))
_NO_OP: list[Any] = []
"""The one no-op provider every closed evaluator's domain is rebound to (created on first use)."""


class _QuietWhileAnswering(logging.Filter):
    """Drops what flagd's evaluator logs while this thread is answering a parity check.

    The provider logs a traceback for every evaluation that hits a targeting error (a
    ``sem_ver`` on a missing attribute, say); a verification of 10,000 generated contexts would
    write thousands of them into the server's log. The error is in the answer's detail, which
    the report keeps, so nothing is lost; other threads' records pass untouched.
    """

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.local, "answering", False)


_QUIET = _QuietWhileAnswering()
_QUIET_LOGGERS = ("openfeature", "openfeature.contrib")


def _install_quiet() -> None:
    for name in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if _QUIET not in logger.filters:
            logger.addFilter(_QUIET)


def _document(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping) or not isinstance(data.get("flags"), Mapping):
        raise SourceDocumentError(
            'a flagd document is a JSON object with a "flags" object '
            "(https://flagd.dev/reference/flag-definitions/)"
        )
    if len(data["flags"]) > MAX_FLAGS:
        raise SourceDocumentError(f"the document has more than {MAX_FLAGS:,} flags")
    evaluators = data.get("$evaluators")
    if evaluators is not None and not isinstance(evaluators, Mapping):
        raise SourceDocumentError('"$evaluators" must be an object of named JsonLogic rules')
    return data


def _one_flag(data: Mapping[str, Any], key: str) -> JSON:
    """The document reduced to one flag (with the shared evaluators and flag-set metadata)."""
    single: JSON = {"flags": {key: data["flags"][key]}}
    for shared in ("$evaluators", "metadata"):
        if shared in data:
            single[shared] = data[shared]
    return single


def translate(data: Any, environment: str, *, bucketing: str = "v2") -> Translation:
    """The Fader document for `data`, flag by flag (`environment` only names the report)."""
    if bucketing not in BUCKETING:
        raise ValueError(f"bucketing must be one of {BUCKETING}, not {bucketing!r}")
    document = _document(data)
    flags: JSON = {}
    unsupported: list[Unsupported] = []
    notes: list[str] = []
    keys: dict[str, str] = {}
    for key, raw in document["flags"].items():
        fader_key = _fader_key(str(key))
        if fader_key is None or fader_key in keys.values():
            unsupported.append(
                Unsupported(
                    construct="flag key",
                    detail="the key has no Fader equivalent (lower-case letters, digits, '.', "
                    f"'_' and '-', at most {MAX_KEY} characters) distinct from another flag's",
                    flag=str(key),
                )
            )
            continue
        single = _one_flag(document, str(key))
        try:
            problems = validate_flagd(single)
            if problems:
                raise ConfigurationError(problems)
            translated = flagd_to_fader(single, bucketing=bucketing)["flags"][key]
            # flagd's schema lets through what its evaluator fails on at run time (a rule
            # serving a variant the flag lacks, a version such as '2.0.0.0'): Fader's own
            # validation names it here, per flag, instead of refusing the whole import later.
            parse_document(
                {"format": FORMAT_ID, "bucketing": bucketing, "flags": {fader_key: translated}}
            )
        except ConfigurationError as exc:
            unsupported.extend(
                Unsupported(construct=p.path, detail=p.message, flag=str(key)) for p in exc.problems
            )
            continue
        flags[fader_key] = translated
        keys[str(key)] = fader_key
        if fader_key != key:
            notes.append(f"flag '{key}' is imported as '{fader_key}' (a valid Fader key)")
        if isinstance(raw, Mapping) and raw.get("state") == "DISABLED":
            notes.append(
                f"flag '{key}' is DISABLED: flagd answers the caller's code default for it, "
                f"Fader serves its off variant ('{translated['offVariant']}'); the parity check "
                "counts that as a disagreement"
            )
    if bucketing != PROVIDER_BUCKETING and any(_has_split(f) for f in flags.values()):
        notes.append(
            f"splits bucket with flagd's fractional {bucketing}; the flagd Python provider that "
            f"verifies an import buckets with {PROVIDER_BUCKETING}, so verify splits in an "
            f"environment that uses {PROVIDER_BUCKETING}"
        )
    answers = {
        key: {name: Answer(value, name) for name, value in flag["variants"].items()}
        for key, flag in flags.items()
    }
    return Translation(
        source="flagd",
        document={"format": FORMAT_ID, "bucketing": bucketing, "flags": flags},
        keys=keys,
        answers=answers,
        unsupported=tuple(unsupported),
        notes=tuple(notes),
    )


def _fader_key(key: str) -> str | None:
    """`key` if Fader accepts it, else its lower-case form with other characters as '-'."""
    if KEY_PATTERN.fullmatch(key) and len(key) <= MAX_KEY:
        return key
    candidate = re.sub(r"[^a-z0-9._-]", "-", key.lower()).lstrip("._-")
    if candidate and len(candidate) <= MAX_KEY and KEY_PATTERN.fullmatch(candidate):
        return candidate
    return None


def _has_split(flag: Mapping[str, Any]) -> bool:
    serves = [flag.get("default") or {}, *(flag.get("rules") or [])]
    return any("split" in s for s in serves)


def _getter_kind(variants: Mapping[str, Any]) -> str:
    values = list(variants.values())
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "float"
    return "object"


class FlagdEvaluator:
    """The flagd provider in FILE mode over a copy of the document, behind its own client."""

    def __init__(self, data: Any) -> None:
        try:
            from openfeature import api  # noqa: PLC0415 - the optional `migrate` extra
            from openfeature.contrib.provider.flagd import FlagdProvider  # noqa: PLC0415
            from openfeature.contrib.provider.flagd.config import ResolverType  # noqa: PLC0415
            from openfeature.evaluation_context import EvaluationContext  # noqa: PLC0415
            from openfeature.provider.no_op_provider import NoOpProvider  # noqa: PLC0415
        except ImportError as exc:
            raise SourceSDKMissingError("flagd", "openfeature-provider-flagd") from exc
        document = _document(data)
        self._kinds = {
            str(k): _getter_kind(v.get("variants") or {})
            for k, v in document["flags"].items()
            if isinstance(v, Mapping) and isinstance(v.get("variants"), Mapping)
        }
        self._api = api
        self._context_type = EvaluationContext
        _install_quiet()
        with _DOMAIN_LOCK:
            if not _NO_OP:
                _NO_OP.append(NoOpProvider())
        self._noop = _NO_OP[0]
        handle, path = tempfile.mkstemp(prefix="fader-import-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(document, file)
        self._path = path
        with _DOMAIN_LOCK:
            self._domain = f"fader-import-{os.getpid()}-{next(_DOMAINS)}"
        self._provider = FlagdProvider(
            resolver_type=ResolverType.FILE,
            offline_flag_source_path=path,
            deadline_ms=3_600_000,  # the file watcher's period: the copy never changes
        )
        try:
            api.set_provider_and_wait(self._provider, domain=self._domain)
        except Exception as exc:
            self.close()
            raise SourceDocumentError(
                f"the flagd provider cannot load the document: {exc}"
            ) from exc
        self._client = api.get_client(domain=self._domain)

    def answer(self, source_key: str, context: Mapping[str, Any]) -> Answer:
        attributes = {k: v for k, v in context.items() if k != "targetingKey"}
        key = context.get("targetingKey")
        evaluation = self._context_type(key if isinstance(key, str) else None, attributes)
        kind = self._kinds.get(source_key, "object")
        getter, default = {
            "boolean": (self._client.get_boolean_details, False),
            "string": (self._client.get_string_details, ""),
            "integer": (self._client.get_integer_details, 0),
            "float": (self._client.get_float_details, 0.0),
            "object": (self._client.get_object_details, {}),
        }[kind]
        _QUIET.local.answering = True
        try:
            details: Any = getter(source_key, default, evaluation)  # type: ignore[operator]
        finally:
            _QUIET.local.answering = False
        reason = str(getattr(details.reason, "value", details.reason))
        if details.error_code is not None or details.variant is None:
            code = getattr(details.error_code, "value", details.error_code)
            detail = f"{reason} {code or ''} {details.error_message or ''}".strip()
            return Answer(None, None, detail)
        return Answer(details.value, str(details.variant), reason)

    def close(self) -> None:
        # Rebinding the domain to a no-op provider shuts the flagd provider down (the
        # registry does so for a provider no domain uses any more) and stops its file watcher.
        self._api.set_provider(self._noop, domain=self._domain)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)


def evaluator(data: Any) -> SourceEvaluator:
    return FlagdEvaluator(data)


def source(bucketing: str = "v2") -> SourceSystem:
    """flagd as a source whose splits bucket with `bucketing` (``v2``, flagd's daemon and Go
    and JavaScript evaluators, or ``v3``, the newer providers)."""

    def translate_with(data: Any, environment: str) -> Translation:
        return translate(data, environment, bucketing=bucketing)

    return SourceSystem(name="flagd", title="flagd", translate=translate_with, evaluator=evaluator)


SOURCE = source()
