"""The OFREP schemas, read in place from ``shared/conformance/ofrep`` (never copied), for
validating every OFREP body the tests receive.

``service/openapi.yaml`` 0.3.0 has a defect that makes every success carrying a value invalid:
the value ``oneOf`` lists ``codeDefaultFlag``, an object schema without constraints that matches
every response, and ``integerFlag`` beside ``floatFlag``, which every integer also matches, so
no response with a value matches exactly one branch. :func:`repaired` validates what the spec
says in prose: the value is absent (code default) or one of the five types.
``test_ofrep.py::test_the_upstream_value_schema_still_needs_its_repair`` fails once upstream
fixes it, so the repair cannot outlive the defect.
"""

from __future__ import annotations

import copy
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml


def conformance_dir() -> Path:
    env = os.environ.get("FADER_CONFORMANCE_DIR")
    if env:
        return Path(env)
    return (Path(__file__).resolve().parents[3] / ".." / "shared" / "conformance").resolve()


OPENAPI = conformance_dir() / "ofrep" / "service" / "openapi.yaml"


@cache
def components() -> dict[str, Any]:
    """The spec's ``components``; skips the calling test when the spec is not there."""
    if not OPENAPI.is_file():
        pytest.skip(f"the OFREP spec is not at {OPENAPI}; set FADER_CONFORMANCE_DIR")
    found: dict[str, Any] = yaml.safe_load(OPENAPI.read_text())["components"]
    return found


def repaired(original: dict[str, Any]) -> dict[str, Any]:
    fixed = copy.deepcopy(original)
    schemas = fixed["schemas"]
    branches = schemas["evaluationSuccess"]["allOf"][1]
    assert list(branches) == ["oneOf"], "the upstream value schema changed: revisit the repair"
    branches["anyOf"] = branches.pop("oneOf")
    assert schemas["codeDefaultFlag"]["properties"] == {}
    schemas["codeDefaultFlag"]["not"] = {"required": ["value"]}
    return fixed


def errors(name: str, instance: Any, *, repair: bool = True) -> list[str]:
    """Why `instance` does not match the spec's schema `name` (empty when it does)."""
    parts = repaired(components()) if repair else components()
    schema = {"$ref": f"#/components/schemas/{name}", "components": parts}
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def check(name: str, instance: Any) -> Any:
    """Assert `instance` matches the spec's schema `name`; return it."""
    problems = errors(name, instance)
    assert not problems, f"{name}: {problems} in {json.dumps(instance)}"
    return instance
