"""LaunchDarkly's own Python server SDK as the evaluator that verifies an import.

The SDK (``launchdarkly-server-sdk``, the ``migrate`` extra) runs with its *file data source*
over a private temporary copy of the document (:func:`document.sdk_document`), with events and
diagnostics off, so it never contacts LaunchDarkly: the same evaluator code a LaunchDarkly
application runs, fed the same data. Each Fader context becomes one LaunchDarkly context by
the convention of docs/migration-launchdarkly.md (:func:`ld_context`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from typing import Any

from fader_server.migration.launchdarkly.document import read_document, sdk_document
from fader_server.migration.model import (
    Answer,
    SourceContextError,
    SourceDocumentError,
    SourceEvaluator,
    SourceSDKMissingError,
)

START_WAIT_SECONDS = 10.0
"""The file data source is ready as soon as it has read the file; this only bounds a hang."""
_SDK_KEY = "fader-import-offline"
"""Any text: with the file data source and events off the key is never sent anywhere."""


class UnsupportedContextError(SourceContextError):
    """A Fader context with no single-kind LaunchDarkly equivalent (multi-kind, no key...)."""


def ld_context(ctx: Mapping[str, Any], context_type: Any) -> Any:
    """The LaunchDarkly context a Fader evaluation context stands for.

    Kind ``ctx["kind"]`` (default ``user``), key ``targetingKey``, every other entry an
    attribute (``name`` and ``anonymous`` are LaunchDarkly's built-ins; a ``key`` entry is
    ignored, the key being the targeting key). Multi-kind contexts are out of scope.
    """
    key = ctx.get("targetingKey")
    kind = ctx.get("kind", "user")
    if not isinstance(key, str) or not key:
        raise UnsupportedContextError(
            "a LaunchDarkly context needs a key: give the context a non-empty 'targetingKey'"
        )
    if kind == "multi":
        raise UnsupportedContextError(
            "multi-kind LaunchDarkly contexts are not supported by the import; evaluate one "
            "kind at a time ('kind' names it)"
        )
    if not isinstance(kind, str):
        raise UnsupportedContextError("'kind' must be a context kind such as 'user' or 'org'")
    builder = context_type.builder(key).kind(kind)
    for name, value in ctx.items():
        if name not in ("targetingKey", "kind", "key"):
            builder.set(name, value)
    context = builder.build()
    if not context.valid:
        raise UnsupportedContextError(f"not a valid LaunchDarkly context: {context.error}")
    return context


class LaunchDarklyEvaluator:
    """An offline LaunchDarkly client over a temporary copy of the flag data."""

    def __init__(self, data: Any) -> None:
        try:
            from ldclient.client import LDClient  # noqa: PLC0415 - the optional `migrate` extra
            from ldclient.config import Config  # noqa: PLC0415
            from ldclient.context import Context  # noqa: PLC0415
            from ldclient.integrations import Files  # noqa: PLC0415
        except ImportError as exc:
            raise SourceSDKMissingError("LaunchDarkly", "launchdarkly-server-sdk") from exc
        document = sdk_document(read_document(data))
        handle, path = tempfile.mkstemp(prefix="fader-import-ld-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(document, file)
        self._path: str | None = path
        self._context_type = Context
        config = Config(
            sdk_key=_SDK_KEY,
            send_events=False,
            diagnostic_opt_out=True,
            update_processor_class=Files.new_data_source(paths=[path]),
        )
        self._client: Any = LDClient(config=config, start_wait=START_WAIT_SECONDS)
        if not self._client.is_initialized():
            self.close()
            raise SourceDocumentError(
                "the LaunchDarkly SDK cannot load the document (a property of the wrong type?)"
            )

    def answer(self, source_key: str, context: Mapping[str, Any]) -> Answer:
        detail = self._client.variation_detail(
            source_key, ld_context(context, self._context_type), None
        )
        reason = json.dumps(detail.reason, sort_keys=True)
        if detail.variation_index is None:
            return Answer(None, None, reason)
        return Answer(detail.value, str(detail.variation_index), reason)

    def close(self) -> None:
        self._client.close()
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
            self._path = None


def evaluator(data: Any) -> SourceEvaluator:
    return LaunchDarklyEvaluator(data)
