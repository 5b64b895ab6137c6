"""Validate a flagd flag-definition document and compile its flags.

Spec: https://flagd.dev/reference/flag-definitions/ and the JSON Schema
https://flagd.dev/schema/v0/flags.json (checked here by hand: the engine does not depend on
jsonschema, and hand-written checks give messages that name the flag, the field and the fix).

Two kinds of problem are told apart:

* **structural** (bad ``state``, empty ``variants``, mixed variant types, unknown
  ``defaultVariant``, non-primitive metadata): the document cannot be evaluated; loading fails.
* **targeting** (unknown operator, dangling ``$ref``, schema-invalid operator arguments): strict
  loading (the default) fails too; flagd-compatible loading (``strict=False``) keeps the flag and
  answers ``PARSE_ERROR`` for it, exactly as flagd does, and ignores arguments that merely break
  the schema but have a defined run-time meaning (flagd's conformance suite relies on both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from fader_engine.bucketing import BucketingAlgorithm
from fader_engine.errors import ConfigurationError, Problem
from fader_engine.evaluate import CompiledFlag, EvaluationEnv, FlagFunction
from fader_engine.flagd.jsonlogic import STANDARD_OPERATORS, Expr, RuleCompiler, RuleError
from fader_engine.flagd.operators import FLAGD_OPERATORS
from fader_engine.result import EMPTY_METADATA, ErrorCode, Reason, Resolution

OPERATORS = {**STANDARD_OPERATORS, **FLAGD_OPERATORS}
STATES = ("ENABLED", "DISABLED")


@dataclass(frozen=True, slots=True)
class FlagDefinition:
    """One validated flagd flag. `targeting` is the raw rule, ``None`` when absent or ``{}``."""

    key: str
    state: str
    variants: Mapping[str, Any]
    default_variant: str | None
    targeting: Any
    metadata: Mapping[str, Any]


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null"


def _check_metadata(value: Any, path: str, what: str, problems: list[Problem]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(Problem(path, f"{what} metadata must be an object, got {_kind(value)}"))
        return {}
    for key, item in value.items():
        if _kind(item) not in ("boolean", "number", "string"):
            problems.append(
                Problem(
                    f"{path}/{key}",
                    f"{what} metadata values must be a string, number or boolean; "
                    f"{key!r} is {_kind(item)}",
                )
            )
    for key in ("flagSetId", "version"):
        if what == "flag set" and key in value and not isinstance(value[key], str):
            problems.append(Problem(f"{path}/{key}", f"flag set {key!r} must be a string"))
    return dict(value)


def _check_flag(key: str, raw: Any, path: str, problems: list[Problem]) -> FlagDefinition | None:
    if not isinstance(raw, dict):
        problems.append(Problem(path, f"flag {key!r} must be an object, got {_kind(raw)}"))
        return None
    before = len(problems)
    state = raw.get("state")
    if "state" not in raw:
        problems.append(
            Problem(f"{path}/state", f'flag {key!r} has no state; set "ENABLED" or "DISABLED"')
        )
    elif state not in STATES:
        problems.append(
            Problem(
                f"{path}/state",
                f'flag {key!r} has state {state!r}; it must be "ENABLED" or "DISABLED"',
            )
        )
    variants = raw.get("variants")
    if "variants" not in raw:
        problems.append(
            Problem(
                f"{path}/variants",
                f"flag {key!r} has no variants; define at "
                'least one, e.g. {"on": true, "off": false}',
            )
        )
    elif not isinstance(variants, dict) or not variants:
        problems.append(
            Problem(
                f"{path}/variants",
                f"flag {key!r} must define variants as a non-empty object of variant name to value",
            )
        )
    else:
        kinds = {name: _kind(value) for name, value in variants.items()}
        bad = {n: k for n, k in kinds.items() if k in ("null", "array")}
        for name, kind in bad.items():
            problems.append(
                Problem(
                    f"{path}/variants/{name}",
                    f"variant {name!r} of flag "
                    f"{key!r} is {kind}; use a boolean, string, number or object",
                )
            )
        if "" in variants:
            problems.append(Problem(f"{path}/variants", f"flag {key!r} has an empty variant name"))
        if len(set(kinds.values())) > 1 and not bad:
            listing = ", ".join(f"{n}: {k}" for n, k in kinds.items())
            problems.append(
                Problem(
                    f"{path}/variants",
                    f"flag {key!r} mixes variant types "
                    f"({listing}); every variant of a flagd flag has one type",
                )
            )
    default = raw.get("defaultVariant")
    if default is not None:
        if not isinstance(default, str):
            problems.append(
                Problem(
                    f"{path}/defaultVariant",
                    f"defaultVariant of flag {key!r} must be a variant name or null",
                )
            )
        elif isinstance(variants, dict) and variants and default not in variants:
            problems.append(
                Problem(
                    f"{path}/defaultVariant",
                    f"defaultVariant {default!r} of "
                    f"flag {key!r} is not one of its variants "
                    f"({', '.join(map(repr, variants))})",
                )
            )
    targeting = raw.get("targeting")
    if targeting is not None and not isinstance(targeting, dict):
        problems.append(
            Problem(f"{path}/targeting", f"targeting of flag {key!r} must be a JsonLogic object")
        )
    metadata = _check_metadata(raw.get("metadata"), f"{path}/metadata", "flag", problems)
    if len(problems) > before:
        return None
    variants = variants if isinstance(variants, dict) else {}
    return FlagDefinition(key, str(state), variants, default, targeting or None, metadata)


def validate_document(
    data: Any,
) -> tuple[list[FlagDefinition], dict[str, Any], dict[str, Any], list[Problem]]:
    """Structural checks: flags, evaluators (as raw rules) and flag-set metadata, plus problems."""
    problems: list[Problem] = []
    if not isinstance(data, Mapping):
        return [], {}, {}, [Problem("", 'a flagd document must be a JSON object with "flags"')]
    flags: list[FlagDefinition] = []
    raw_flags = data.get("flags")
    entries: list[tuple[str, Any, str]] = []
    if isinstance(raw_flags, dict):
        entries = [(k, v, f"/flags/{k}") for k, v in raw_flags.items()]
    elif isinstance(raw_flags, list) and str(data.get("$schema", "")).endswith("flagd.json"):
        # The array form belongs to the flagd daemon's schema (flagd.json), not to providers'.
        for i, item in enumerate(raw_flags):
            key = item.get("key") if isinstance(item, dict) else None
            if not isinstance(key, str) or not key:
                problems.append(Problem(f"/flags/{i}/key", "each flag in the array needs a key"))
            else:
                entries.append((key, item, f"/flags/{i}"))
    elif "flags" not in data:
        problems.append(Problem("/flags", 'the document has no "flags" object'))
    else:
        problems.append(
            Problem(
                "/flags",
                '"flags" must be an object of flag key to flag '
                "(the array form is only valid with the flagd.json schema)",
            )
        )
    seen: set[str] = set()
    for key, raw, path in entries:
        if not key:
            problems.append(Problem(path, "flag keys must not be empty"))
        elif key in seen:
            problems.append(Problem(path, f"flag {key!r} is defined twice"))
        seen.add(key)
        flag = _check_flag(key, raw, path, problems)
        if flag is not None:
            flags.append(flag)
    evaluators = data.get("$evaluators", {})
    if not isinstance(evaluators, dict):
        problems.append(Problem("/$evaluators", "$evaluators must be an object of name to rule"))
        evaluators = {}
    metadata = _check_metadata(data.get("metadata"), "/metadata", "flag set", problems)
    return flags, dict(evaluators), metadata, problems


# --- compiling flags --------------------------------------------------------------------------


def compile_flag(
    flag: FlagDefinition, rule: Expr | None, error: str | None, set_metadata: Mapping[str, Any]
) -> CompiledFlag:
    """Build the flag's closure; `error` (a targeting compile error) makes it answer PARSE_ERROR.

    Reasons follow flagd: ``STATIC`` without targeting, ``TARGETING_MATCH`` when targeting named
    a variant, ``DEFAULT`` when it returned null (or no default variant exists), ``DISABLED``.
    A boolean result names the variant ``"true"``/``"false"``; an unknown name is ``GENERAL``.
    """
    merged = {**set_metadata, **flag.metadata}
    md: Mapping[str, Any] = MappingProxyType(merged) if merged else EMPTY_METADATA
    key, variants, default = flag.key, flag.variants, flag.default_variant

    def fixed(result: Resolution) -> FlagFunction:
        return lambda _context, _env: result

    if flag.state == "DISABLED":
        return CompiledFlag(
            key, None, fixed(Resolution(None, None, Reason.DISABLED, flag_metadata=md)), md
        )
    if error is not None:
        return CompiledFlag(
            key,
            None,
            fixed(Resolution(None, None, Reason.ERROR, ErrorCode.PARSE_ERROR, error, md)),
            md,
        )
    if rule is None:
        reason = Reason.STATIC if default is not None else Reason.DEFAULT
        value = None if default is None else variants[default]
        return CompiledFlag(
            key, None, fixed(Resolution(value, default, reason, flag_metadata=md)), md
        )
    fallback = Resolution(
        None if default is None else variants[default], default, Reason.DEFAULT, flag_metadata=md
    )
    matches = {
        name: Resolution(value, name, Reason.TARGETING_MATCH, flag_metadata=md)
        for name, value in variants.items()
    }
    evaluate = _targeted(key, rule, matches, fallback, md)
    return CompiledFlag(key, None, evaluate, md)


def _targeted(
    key: str,
    rule: Expr,
    matches: Mapping[str, Resolution],
    fallback: Resolution,
    md: Mapping[str, Any],
) -> FlagFunction:
    def failed(message: str) -> Resolution:
        return Resolution(None, None, Reason.ERROR, ErrorCode.GENERAL, message, md)

    def evaluate(context: Mapping[str, Any], env: EvaluationEnv) -> Resolution:
        data = dict(context)
        data["$flagd"] = {"flagKey": key, "timestamp": env.timestamp()}
        try:
            result = rule(data)
        except Exception as exc:  # a rule must never take the caller down
            return failed(f"targeting of flag {key!r} failed: {exc!r}")
        if result is None:
            return fallback
        if result is True or result is False:
            result = "true" if result else "false"
        if not isinstance(result, str):
            return failed(f"targeting of flag {key!r} returned {result!r}, not a variant name")
        match = matches.get(result)
        if match is None:
            return failed(
                f"targeting of flag {key!r} chose variant {result!r}, which the flag "
                "does not define"
            )
        return match

    return evaluate


def build_flags(
    data: Any, *, bucketing: BucketingAlgorithm, strict: bool
) -> dict[str, CompiledFlag]:
    """Validate and compile a whole document; raise :class:`ConfigurationError` if invalid."""
    flags, evaluators, set_metadata, problems = validate_document(data)
    compiler = RuleCompiler(OPERATORS, evaluators, bucketing)
    rule_problems: list[Problem] = []  # fatal only when strict (see the module docstring)
    if strict:
        for name, rule in evaluators.items():
            try:
                compiler.compile(rule, f"/$evaluators/{name}")
            except RuleError as exc:
                rule_problems.append(Problem(exc.path, f"evaluator {name!r}: {exc.message}"))
    pending: list[tuple[FlagDefinition, Expr | None, str | None]] = []
    for flag in flags:
        rule, error = None, None
        if flag.targeting is not None:
            try:
                rule = compiler.compile(flag.targeting, f"/flags/{flag.key}/targeting")
            except RuleError as exc:
                error = f"targeting of flag {flag.key!r} is invalid at {exc.path}: {exc.message}"
                rule_problems.append(Problem(exc.path, f"flag {flag.key!r}: {exc.message}"))
        pending.append((flag, rule, error))
    if strict:
        problems += rule_problems + compiler.warnings
    if problems:
        raise ConfigurationError(problems)
    return {
        flag.key: compile_flag(flag, rule, error, set_metadata) for flag, rule, error in pending
    }
