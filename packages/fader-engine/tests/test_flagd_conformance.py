"""flagd conformance: the flagd-testbed Gherkin suites run against :func:`load_flagd`.

The ``.feature`` files are read in place from ``shared/conformance/flagd-testbed`` (beside the
repository) or from ``$FADER_CONFORMANCE_DIR``; each expanded example (pickle) becomes one test.
Scenarios about transport, caching or provider lifecycle are reported as skipped with a reason.
See ``shared/conformance/README.md`` for the step vocabulary and the fractional families.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from gherkin.parser import Parser
from gherkin.pickles.compiler import Compiler

from fader_engine import BucketingAlgorithm, Engine, Resolution, ResolvedType
from fader_engine.flagd import load_flagd


def _conformance_dir() -> Path:
    env = os.environ.get("FADER_CONFORMANCE_DIR")
    if env:
        return Path(env)
    return (Path(__file__).resolve().parents[3] / ".." / "shared" / "conformance").resolve()


TESTBED = _conformance_dir() / "flagd-testbed"
CLOCK_NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z: between the timestamp scenario's bounds
ENRICHED_CONTEXT = {"injectedmetadata": "set"}  # flagd's static `context-value` (server side)

ENGINE_FEATURES = {"targeting", "evaluation", "disabled", "metadata", "contextEnrichment"}
TRANSPORT_FEATURES = {
    "config": "provider options and environment variables (transport, not evaluation)",
    "connection": "gRPC/TLS/unix-socket connections and reconnects (transport)",
    "events": "provider lifecycle events (SDK, not engine)",
    "rpc-caching": "RPC response caching (transport)",
    "selector": "flagd sync-stream selectors (transport)",
    "sync-payload": "flagd sync payloads (transport)",
}
SKIP_TAGS = {
    "@fractional-v1": "legacy v1 float bucketing is obsolete; Fader implements v2 and v3",
    "@deprecated": "deprecated upstream (superseded by @no-default-variant)",
    "@grace": "needs a lost connection and stale events (provider lifecycle)",
    "@caching": "needs the RPC provider's cache (transport)",
}
TYPES = {
    "Boolean": ResolvedType.BOOLEAN,
    "String": ResolvedType.STRING,
    "Integer": ResolvedType.INTEGER,
    "Float": ResolvedType.FLOAT,
    "Object": ResolvedType.OBJECT,
}


@dataclass
class Case:
    suite: str
    id: str
    steps: list[dict[str, Any]]
    bucketing: BucketingAlgorithm = BucketingAlgorithm.V2
    skip: str | None = None


@dataclass
class World:
    """State one scenario accumulates between steps."""

    case: Case
    source: str = "default"
    flag_type: str = "String"
    key: str = ""
    default: Any = None
    context: dict[str, Any] = field(default_factory=dict)
    result: Resolution | None = None


def _parse_typed(kind: str, text: str) -> Any:
    if kind == "Boolean":
        return text == "true"
    if kind == "Integer":
        return int(text)
    if kind == "Float":
        return float(text)
    if kind == "Object":
        return json.loads(text.replace('\\"', '"'))
    return text


def _merged_provider_flags() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted((TESTBED / "flags").glob("*.json")):
        if not path.name.startswith("selector-"):
            _deep_merge(merged, json.loads(path.read_text(encoding="utf-8")))
    return merged


def _deep_merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


@cache
def _engine(suite: str, source: str, bucketing: BucketingAlgorithm) -> Engine:
    if suite == "evaluator":
        data = json.loads((TESTBED / "evaluator/flags/testkit-flags.json").read_text("utf-8"))
    elif source in ("default", "flags/allFlags.json"):
        data = _merged_provider_flags()
    else:  # a selector names one raw flag file, e.g. rawflags/selector-flags.json
        data = json.loads((TESTBED / "flags" / Path(source).name).read_text("utf-8"))
    return load_flagd(data, clock=lambda: CLOCK_NOW, bucketing=bucketing, strict=False)


def _row_labels(document: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for child in document["feature"].get("children", []):
        scenario = child.get("scenario") or {}
        for examples in scenario.get("examples", []):
            for row in examples.get("tableBody", []):
                labels[row["id"]] = ",".join(cell["value"] for cell in row["cells"])
    return labels


def _pickles(path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    document = Parser().parse(path.read_text(encoding="utf-8"))
    document["uri"] = str(path)
    labels = _row_labels(document)
    for pickle in Compiler().compile(document):
        row = next((labels[i] for i in pickle["astNodeIds"][1:] if i in labels), "")
        yield pickle, f"{pickle['name']}[{row}]" if row else pickle["name"]


def _cases() -> Iterator[Case]:
    for path in sorted((TESTBED / "evaluator/gherkin").glob("*.feature")):
        for pickle, name in _pickles(path):
            base = f"evaluator/{path.stem}/{name}"
            tags = {tag["name"] for tag in pickle["tags"]}
            if "@fractional-v1" in tags:
                yield Case("evaluator", base, [], skip=SKIP_TAGS["@fractional-v1"])
            else:  # the evaluator kit is written for v2 (flagd Go's algorithm)
                yield Case("evaluator", base, pickle["steps"])
    for path in sorted((TESTBED / "gherkin").glob("*.feature")):
        for pickle, name in _pickles(path):
            yield from _provider_cases(path.stem, pickle, name)


def _provider_cases(stem: str, pickle: dict[str, Any], name: str) -> Iterator[Case]:
    base = f"provider/{stem}/{name}"
    tags = {tag["name"] for tag in pickle["tags"]}
    if stem in TRANSPORT_FEATURES or stem not in ENGINE_FEATURES:
        yield Case("provider", base, [], skip=TRANSPORT_FEATURES.get(stem, "not an engine suite"))
        return
    for tag, reason in SKIP_TAGS.items():
        if tag in tags:
            yield Case("provider", base, [], skip=reason)
            return
    if "@fractional-v3" in tags:
        families = [BucketingAlgorithm.V3]
    elif "@fractional-v2" in tags:
        families = [BucketingAlgorithm.V2]
    elif "@fractional" in tags:
        families = [BucketingAlgorithm.V2, BucketingAlgorithm.V3]
    else:
        families = [BucketingAlgorithm.V2]
    for family in families:
        yield Case("provider", f"{base}@{family.value}", pickle["steps"], family)


CASES = list(_cases()) if TESTBED.is_dir() else []

_FLAG = re.compile(r'^an? (\w+)-flag with key "(.*)" and a (?:fallback|default) value "(.*)"$')
_CONTEXT_KEY = re.compile(
    r'^a context containing a key "(.*)", with type "(\w+)" and with value "(.*)"$'
)
_TARGETING_KEY = re.compile(r'^a context containing a targeting key with value "(.*)"$')
_NESTED = re.compile(
    r'^a context containing a nested property with outer key "(.*)" and inner key "(.*)", '
    r'with value "(.*)"$'
)
_OPTION = re.compile(r'^an option "(.*)" of type "(.*)" with value "(.*)"$')
_VALUE = re.compile(r'^the resolved details value should be "(.*)"$')
_REASON = re.compile(r'^the reason should be "(.*)"$')
_ERROR_CODE = re.compile(r'^the error-code should be "(.*)"$')
_NO_OPS = {"an evaluator", "a stable flagd provider", "a metadata flagd provider"}


def _run_step(world: World, text: str, argument: dict[str, Any] | None) -> None:
    if text in _NO_OPS:
        return
    if m := _OPTION.match(text):
        if m[1] == "selector":
            world.source = m[3]
        return
    if m := _FLAG.match(text):
        world.flag_type, world.key = m[1], m[2]
        world.default = _parse_typed(m[1], m[3])
    elif m := _CONTEXT_KEY.match(text):
        world.context[m[1]] = _parse_typed(m[2], m[3])
    elif m := _TARGETING_KEY.match(text):
        world.context["targetingKey"] = m[1]
    elif m := _NESTED.match(text):
        world.context.setdefault(m[1], {})[m[2]] = m[3]
    elif text == "the flag was evaluated with details":
        engine = _engine(world.case.suite, world.source, world.case.bucketing)
        context = dict(world.context)
        if world.case.suite == "provider":
            context = {**ENRICHED_CONTEXT, **context}
        world.result = engine.resolve(world.key, context, world.default, TYPES[world.flag_type])
    else:
        _check_step(world, text, argument)


def _check_step(world: World, text: str, argument: dict[str, Any] | None) -> None:
    result = world.result
    assert result is not None, f"step {text!r} ran before the flag was evaluated"
    if m := _VALUE.match(text):
        assert result.value == _parse_typed(world.flag_type, m[1]), result
    elif m := _REASON.match(text):
        assert str(result.reason) == m[1], result
    elif m := _ERROR_CODE.match(text):
        assert (str(result.error_code) if result.error_code else "") == m[1], result
    elif text == "the resolved metadata is empty":
        assert not result.flag_metadata, result
    elif text == "the resolved metadata should contain":
        assert argument is not None
        rows = [[cell["value"] for cell in row["cells"]] for row in argument["dataTable"]["rows"]]
        for key, kind, value in rows[1:]:
            assert result.flag_metadata.get(key) == _parse_typed(kind, value), (key, result)
    else:
        pytest.fail(f"step not implemented by the conformance runner: {text!r}")


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_flagd_testbed_scenario(case: Case) -> None:
    if case.skip:
        pytest.skip(case.skip)
    world = World(case)
    for step in case.steps:
        _run_step(world, step["text"], step.get("argument"))


def test_conformance_material_is_present() -> None:
    if not TESTBED.is_dir():
        pytest.skip(f"flagd-testbed not found at {TESTBED}; set FADER_CONFORMANCE_DIR")
    assert CASES
