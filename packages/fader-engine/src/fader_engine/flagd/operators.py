"""flagd's custom JsonLogic operators: ``fractional``, ``sem_ver``, ``starts_with``, ``ends_with``.

Spec: https://flagd.dev/reference/custom-operations/fractional-operation/ ,
https://flagd.dev/reference/custom-operations/semver-operation/ ,
https://flagd.dev/reference/custom-operations/string-comparison-operation/

flagd's rule for these operators is that a bad input at evaluation time (a missing bucketing
key, a non-string for ``starts_with``, an unparsable version) yields ``null``, never ``false``,
so the flag falls back to its default variant with reason ``DEFAULT`` (flagd issue #1874).
Inputs the flagd schema forbids but that still have such a run-time meaning are reported as
compiler *warnings* (see :class:`~fader_engine.flagd.jsonlogic.RuleCompiler`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from fader_engine.bucketing import MAX_TOTAL_WEIGHT, BucketingAlgorithm, hash_v2, hash_v3, pick
from fader_engine.flagd.coercion import is_number, to_string
from fader_engine.flagd.jsonlogic import Builder, Expr, RuleCompiler, RuleError, constant

# --- fractional -------------------------------------------------------------------------------


def _fractional(c: RuleCompiler, args: list[Any], path: str) -> Expr:
    """Deterministic weighted split: ``[seed?, [variant, weight?], ...]``.

    The seed is an expression unless the first argument is itself a bucket (an array), in which
    case the seed is the flag key with the targeting key (v2: concatenated; v3: a CBOR pair).
    A bucket's name and weight may be expressions; a weight defaults to 1; negative weights
    count as 0; a zero total yields ``null``. The chosen bucket's name is returned as evaluated
    (a boolean is allowed: ``fractional`` may serve as a condition).
    """
    if not args:
        raise RuleError(path, 'fractional needs at least one bucket such as ["on", 50]')
    seed: Expr | None = None
    bucket_args = args
    if not isinstance(args[0], list):
        if not isinstance(args[0], dict):
            c.warn(
                f"{path}/0",
                "the fractional seed must be an expression such as "
                '{"var": "email"}; a constant seed puts every user in the same bucket',
            )
        seed = c.compile(args[0], f"{path}/0")
        bucket_args = args[1:]
        if not bucket_args:
            raise RuleError(path, 'fractional has a seed but no buckets; add ["variant", weight]')
    names: list[Expr] = []
    weights: list[Expr] = []
    for index, raw in enumerate(bucket_args, start=len(args) - len(bucket_args)):
        where = f"{path}/{index}"
        if not isinstance(raw, list) or not 1 <= len(raw) <= 2:
            raise RuleError(where, "each fractional bucket must be [variant] or [variant, weight]")
        names.append(c.compile(raw[0], f"{where}/0"))
        if len(raw) == 1:
            weights.append(constant(1))
            continue
        weight = raw[1]
        if not isinstance(weight, dict) and not (
            isinstance(weight, int) and not isinstance(weight, bool) and weight >= 0
        ):
            c.warn(
                f"{where}/1", f"a fractional weight must be a non-negative integer, got {weight!r}"
            )
        weights.append(c.compile(weight, f"{where}/1"))
    return _fractional_closure(c.bucketing, seed, names, weights)


def _fractional_closure(
    algorithm: BucketingAlgorithm, seed: Expr | None, names: list[Expr], weights: list[Expr]
) -> Expr:
    v3 = algorithm is BucketingAlgorithm.V3

    def hash_of(data: Any) -> int | None:
        if seed is None:
            flagd = data.get("$flagd") or {}
            flag_key = flagd.get("flagKey", "")
            targeting_key = data.get("targetingKey")
            if v3:
                return (
                    None
                    if not isinstance(targeting_key, str)
                    else hash_v3([flag_key, targeting_key])
                )
            return hash_v2(flag_key + (targeting_key if isinstance(targeting_key, str) else ""))
        value = seed(data)
        if v3:
            return None if value is None else hash_v3(value)
        return hash_v2(value) if isinstance(value, str) else None

    def fractional(data: Any) -> Any:
        hashed = hash_of(data)
        if hashed is None:
            return None
        cumulative: list[int] = []
        total = 0
        for weight_expr in weights:
            weight = weight_expr(data)
            if not is_number(weight):
                return None
            total += max(int(weight), 0)
            cumulative.append(total)
        if total == 0 or total > MAX_TOTAL_WEIGHT:
            return None
        return names[pick(hashed, cumulative)](data)

    return fractional


# --- sem_ver ----------------------------------------------------------------------------------

_SEMVER = re.compile(
    r"^[vV]?(0|[1-9]\d*)(?:\.(0|[1-9]\d*)(?:\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)?)?$"
)

Version = tuple[int, int, int, tuple[tuple[int, int | str], ...] | None]
"""major, minor, patch, pre-release identifiers (``None`` = a release, which sorts last)."""


def parse_version(value: Any) -> Version | None:
    """Parse like flagd (Go ``x/mod/semver``): optional ``v``/``V``, ``1`` and ``1.2`` allowed as
    shorthand for ``1.0.0`` / ``1.2.0``; build metadata is ignored; numbers are read as text."""
    if is_number(value):
        value = to_string(value)
    if not isinstance(value, str):
        return None
    match = _SEMVER.match(value)
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    identifiers = None
    if pre is not None:
        identifiers = tuple(
            (0, int(part)) if part.isdigit() else (1, part) for part in pre.split(".")
        )
    return int(major), int(minor or 0), int(patch or 0), identifiers


def _order(version: Version) -> tuple[Any, ...]:
    major, minor, patch, pre = version
    # A release sorts after all of its pre-releases (semver.org §11).
    return (major, minor, patch, (1,) if pre is None else (0, pre))


_SEMVER_OPS: Mapping[str, Callable[[Version, Version], bool]] = {
    "=": lambda a, b: _order(a) == _order(b),
    "!=": lambda a, b: _order(a) != _order(b),
    "<": lambda a, b: _order(a) < _order(b),
    "<=": lambda a, b: _order(a) <= _order(b),
    ">": lambda a, b: _order(a) > _order(b),
    ">=": lambda a, b: _order(a) >= _order(b),
    "^": lambda a, b: a[0] == b[0],
    "~": lambda a, b: a[:2] == b[:2],
}


def _sem_ver(c: RuleCompiler, args: list[Any], path: str) -> Expr:
    """``sem_ver``: ``[version, operator, version]``; anything invalid at run time yields null."""
    if len(args) != 3:
        c.warn(path, f"sem_ver takes [version, operator, version], got {len(args)} argument(s)")
        return constant(None)
    operator = args[1]
    if not isinstance(operator, dict) and operator not in _SEMVER_OPS:
        c.warn(
            f"{path}/1",
            f"unknown sem_ver operator {operator!r}; use one of {', '.join(_SEMVER_OPS)}",
        )
    # Literal versions are not checked: flagd's own examples/full.json compares with "2.0.0.0",
    # which the schema forbids but which simply never matches (null) at run time.
    left, op, right = c.compile_args(args, path)

    def sem_ver(data: Any) -> bool | None:
        compare = _SEMVER_OPS.get(op(data))
        a, b = parse_version(left(data)), parse_version(right(data))
        if compare is None or a is None or b is None:
            return None
        return compare(a, b)

    return sem_ver


# --- starts_with / ends_with ------------------------------------------------------------------


def _affix(prefix: bool) -> Builder:
    name = "starts_with" if prefix else "ends_with"

    def build(c: RuleCompiler, args: list[Any], path: str) -> Expr:
        if len(args) != 2:
            c.warn(
                path,
                f"{name} takes [text, {'prefix' if prefix else 'suffix'}], "
                f"got {len(args)} argument(s)",
            )
            return constant(None)
        # A non-string literal is not rejected: flagd's examples/full.json uses one, and at run
        # time it just yields null (no match).
        text, affix = c.compile_args(args, path)

        def affix_test(data: Any) -> bool | None:
            value, part = text(data), affix(data)
            if not isinstance(value, str) or not isinstance(part, str):
                return None
            return value.startswith(part) if prefix else value.endswith(part)

        return affix_test

    return build


FLAGD_OPERATORS: Mapping[str, Builder] = {
    "fractional": _fractional,
    "sem_ver": _sem_ver,
    "starts_with": _affix(prefix=True),
    "ends_with": _affix(prefix=False),
}
"""flagd's custom operators, merged over JsonLogic's by :mod:`fader_engine.flagd.document`."""
