"""Import a flagd flag-definition document into Fader's structured format.

flagd targeting is arbitrary JsonLogic; Fader's format is rules of typed clauses, so only the
shapes people actually write translate: an ``if`` chain of conditions (``and`` of comparisons,
``or`` expanded into one rule per alternative), ``==``/``in`` membership, ``starts_with``,
``ends_with``, substring ``in``, numeric comparisons, ``sem_ver`` with ``= < <= > >=``, and
``fractional`` splits seeded by the targeting key or by ``cat($flagd.flagKey, var)``. Anything
else is refused with its location rather than approximated, because an import that changes who
gets what is worse than none: an import is verified, never trusted.

What cannot be preserved exactly, by design: flagd serves the caller's code default for a
``DISABLED`` flag and Fader its off variant (the import makes the flagd ``defaultVariant`` the
off variant); JsonLogic coerces across types (``"18" == 18``) and Fader does not; a missing
split seed is bucketed by flagd and reported as ``TARGETING_KEY_MISSING`` by Fader.

Spec: https://flagd.dev/reference/flag-definitions/
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from fader_engine.errors import ConfigurationError, Problem
from fader_engine.model import FORMAT_ID, TOTAL_WEIGHT

_COMPARISONS = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
_MIRRORED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
_SEMVER = {
    "=": "semver_eq",
    "<": "semver_lt",
    "<=": "semver_lte",
    ">": "semver_gt",
    ">=": "semver_gte",
}


class ImportRefusedError(ConfigurationError):
    """Part of the flagd document has no exact Fader equivalent; `.problems` says where."""


class _UntranslatableError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


def _var(expr: Any) -> str | None:
    """The attribute path of ``{"var": "a.b"}``, or None for anything else."""
    if isinstance(expr, Mapping) and set(expr) == {"var"}:
        name = expr["var"]
        if isinstance(name, list) and len(name) == 1:
            name = name[0]
        if isinstance(name, str) and name and not name.startswith("$flagd"):
            return name
    return None


def _scalar(value: Any) -> bool:
    return isinstance(value, str | bool | int | float)


def _membership_idiom(args: Any) -> dict[str, Any] | None:
    """Fader's own export of ``in``: scalar membership OR any list element (``some``)."""
    if not (isinstance(args, list) and len(args) == 2):
        return None
    scalar, listed = args
    if not (isinstance(scalar, Mapping) and isinstance(listed, Mapping)):
        return None
    first, some = scalar.get("in"), listed.get("some")
    if not (isinstance(first, list) and len(first) == 2 and isinstance(some, list)):
        return None
    attribute, values = _var(first[0]), first[1]
    element_in = {"in": [{"var": ""}, values]}
    # Over `merge` of the attribute (exports since flag sync), or over the attribute itself.
    if attribute and some in ([{"merge": [first[0]]}, element_in], [first[0], element_in]):
        return {"attribute": attribute, "op": "in", "values": list(values)}
    return None


def _clause(cond: Any, path: str) -> dict[str, Any]:
    if not isinstance(cond, Mapping) or len(cond) != 1:
        raise _UntranslatableError(path, "a condition must be a single JsonLogic operation")
    ((op, args),) = cond.items()
    if op == "or" and (membership := _membership_idiom(args)) is not None:
        return membership
    args = args if isinstance(args, list) else [args]
    if op in ("!=", "==") and len(args) == 2 and args[1] is None and _var(args[0]):
        # Presence: exactly Fader's `exists` (negated for `== null`).
        return {"attribute": _var(args[0]), "op": "exists", "negate": op == "=="}
    if op in ("==", "===") and len(args) == 2:
        attribute, literal = (args[0], args[1]) if _var(args[0]) else (args[1], args[0])
        if _var(attribute) and _scalar(literal):
            return {"attribute": _var(attribute), "op": "in", "values": [literal]}
    if op == "in" and len(args) == 2:
        if _var(args[0]) and isinstance(args[1], list) and all(_scalar(v) for v in args[1]):
            return {"attribute": _var(args[0]), "op": "in", "values": list(args[1])}
        if isinstance(args[0], str) and _var(args[1]):
            return {"attribute": _var(args[1]), "op": "contains", "values": [args[0]]}
    if (
        op in ("starts_with", "ends_with")
        and len(args) == 2
        and _var(args[0])
        and isinstance(args[1], str)
    ):
        return {"attribute": _var(args[0]), "op": op, "values": [args[1]]}
    if op in _COMPARISONS and len(args) == 2:
        number = (int, float)
        if _var(args[0]) and isinstance(args[1], number) and not isinstance(args[1], bool):
            return {"attribute": _var(args[0]), "op": _COMPARISONS[op], "values": [args[1]]}
        if _var(args[1]) and isinstance(args[0], number) and not isinstance(args[0], bool):
            mirrored = _COMPARISONS[_MIRRORED[op]]
            return {"attribute": _var(args[1]), "op": mirrored, "values": [args[0]]}
    semver = op == "sem_ver" and len(args) == 3 and args[1] in _SEMVER
    if semver and _var(args[0]) and isinstance(args[2], str):
        return {"attribute": _var(args[0]), "op": _SEMVER[args[1]], "values": [args[2]]}
    raise _UntranslatableError(
        path,
        f"condition {op!r} with these arguments has no exact Fader clause (supported: "
        "==, in, starts_with, ends_with, <, <=, >, >=, sem_ver with = < <= > >= on a {var})",
    )


def _alternatives(cond: Any, path: str) -> list[list[dict[str, Any]]]:
    """The condition as OR-of-AND clause lists (each inner list becomes one Fader rule)."""
    if cond is True:
        return [[]]
    if isinstance(cond, Mapping) and set(cond) == {"and"} and isinstance(cond["and"], list):
        negated = _negated_with_presence(cond["and"], f"{path}/and")
        if negated is not None:
            return [[negated]]
        clauses: list[dict[str, Any]] = []
        for i, part in enumerate(cond["and"]):
            nested = _alternatives(part, f"{path}/and/{i}")
            if len(nested) != 1:
                raise _UntranslatableError(
                    f"{path}/and/{i}",
                    "an 'or' inside an 'and' is not "
                    "supported; write one 'if' branch per alternative",
                )
            clauses += nested[0]
        # A presence guard next to a clause on the same attribute is implied in Fader.
        tested = {c["attribute"] for c in clauses if c["op"] != "exists" and not c.get("negate")}
        return [
            [
                c
                for c in clauses
                if not (c["op"] == "exists" and not c.get("negate") and c["attribute"] in tested)
            ]
        ]
    if isinstance(cond, Mapping) and set(cond) == {"or"} and isinstance(cond["or"], list):
        membership = _membership_idiom(cond["or"])
        if membership is not None:
            return [[membership]]
        out: list[list[dict[str, Any]]] = []
        for i, part in enumerate(cond["or"]):
            out += _alternatives(part, f"{path}/or/{i}")
        return out
    return [[_clause(cond, path)]]


def _negated_with_presence(parts: list[Any], path: str) -> dict[str, Any] | None:
    """``present(a) and not test(a)``: exactly a negated Fader clause on `a`."""
    if len(parts) != 2 or not (isinstance(parts[1], Mapping) and set(parts[1]) == {"!"}):
        return None
    try:
        presence, inner = _clause(parts[0], f"{path}/0"), _clause(parts[1]["!"], f"{path}/1/!")
    except _UntranslatableError:
        return None
    same = presence["attribute"] == inner.get("attribute")
    if presence["op"] == "exists" and not presence["negate"] and same and "negate" not in inner:
        return {**inner, "negate": True}
    return None


def _split(flag_key: str, expr: Mapping[str, Any], path: str) -> dict[str, Any]:
    args = expr["fractional"]
    if not isinstance(args, list) or not args:
        raise _UntranslatableError(path, "fractional needs buckets")
    split: dict[str, Any] = {}
    if not isinstance(args[0], list):
        seed, args = args[0], args[1:]
        parts = seed.get("cat") if isinstance(seed, Mapping) else None
        if (
            isinstance(parts, list)
            and len(parts) == 2
            and parts[0] in ({"var": "$flagd.flagKey"}, flag_key)
            and _var(parts[1])
        ):
            split["by"] = _var(parts[1])
        else:
            raise _UntranslatableError(
                f"{path}/fractional/0",
                "only the targeting key or cat($flagd.flagKey, {var}) can seed a Fader split",
            )
    buckets: list[tuple[str, int]] = []
    for i, bucket in enumerate(args):
        where = f"{path}/fractional/{i}"
        if not (isinstance(bucket, list) and bucket and isinstance(bucket[0], str)):
            raise _UntranslatableError(where, "bucket variants must be literal names")
        weight = bucket[1] if len(bucket) > 1 else 1
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
            raise _UntranslatableError(
                where, "bucket weights must be literal non-negative integers"
            )
        buckets.append((bucket[0], weight))
    total = sum(w for _, w in buckets)
    if total == 0 or any(w * TOTAL_WEIGHT % total for _, w in buckets):
        raise _UntranslatableError(
            path,
            f"weights {[w for _, w in buckets]} are not exact in "
            "thousandths of a percent; users would change buckets",
        )
    split["weights"] = [
        {"variant": name, "weight": float(Decimal(w * TOTAL_WEIGHT // total) / 1000)}
        for name, w in buckets
    ]
    return {"split": split}


def _serve(flag_key: str, result: Any, path: str) -> dict[str, Any]:
    if isinstance(result, str):
        return {"variant": result}
    if isinstance(result, bool):
        return {"variant": "true" if result else "false"}
    if isinstance(result, Mapping) and set(result) == {"fractional"}:
        return _split(flag_key, result, path)
    raise _UntranslatableError(path, "a branch must yield a variant name or a fractional split")


def _rules(flag_key: str, targeting: Any, path: str) -> tuple[list[dict[str, Any]], Any]:
    """Rules for an if-chain, plus what is left for the default (None = defaultVariant)."""
    if targeting is None or targeting == {}:
        return [], None
    if isinstance(targeting, Mapping) and set(targeting) == {"if"}:
        branches = targeting["if"]
        rules: list[dict[str, Any]] = []
        i = 0
        while i + 1 < len(branches):
            serve = _serve(flag_key, branches[i + 1], f"{path}/if/{i + 1}")
            for clauses in _alternatives(branches[i], f"{path}/if/{i}"):
                rules.append({"clauses": clauses, **serve})
            i += 2
        if i < len(branches):  # an else branch
            more, rest = _rules(flag_key, branches[i], f"{path}/if/{i}")
            return rules + more, rest
        return rules, None
    # Anything that always yields a value (a literal or a split) matches everyone: a rule with
    # no clauses keeps flagd's TARGETING_MATCH reason.
    return [{"clauses": [], **_serve(flag_key, targeting, path)}], None


def _resolve_refs(node: Any, evaluators: Mapping[str, Any], path: str, depth: int = 0) -> Any:
    if depth > 32:
        raise _UntranslatableError(path, "$ref nesting is too deep (a cycle?)")
    if isinstance(node, Mapping):
        if set(node) == {"$ref"}:
            name = node["$ref"]
            if name not in evaluators:
                raise _UntranslatableError(path, f"$ref {name!r} names no entry of $evaluators")
            return _resolve_refs(evaluators[name], evaluators, path, depth + 1)
        return {k: _resolve_refs(v, evaluators, f"{path}/{k}", depth) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_refs(v, evaluators, f"{path}/{i}", depth) for i, v in enumerate(node)]
    return node


def _value_type(variants: Mapping[str, Any]) -> str:
    kinds = set()
    for value in variants.values():
        if isinstance(value, bool):
            kinds.add("boolean")
        elif isinstance(value, int | float):
            kinds.add("number")
        elif isinstance(value, str):
            kinds.add("string")
        else:
            kinds.add("object")
    return kinds.pop() if len(kinds) == 1 else "mixed"


def flagd_to_fader(data: Mapping[str, Any], *, bucketing: str = "v2") -> dict[str, Any]:
    """The Fader document equivalent to a (valid) flagd document; see the module docstring.

    Validate with :func:`fader_engine.flagd.validate_flagd` first. Raises
    :class:`ImportRefusedError` listing every flag that cannot be translated exactly.
    """
    evaluators = data.get("$evaluators") or {}
    problems: list[Problem] = []
    flags: dict[str, Any] = {}
    for key, raw in (data.get("flags") or {}).items():
        base = f"/flags/{key}"
        try:
            variants = dict(raw["variants"])
            value_type = _value_type(variants)
            if value_type == "mixed":
                raise _UntranslatableError(
                    f"{base}/variants", "variants of one flag must share a type"
                )
            default = raw.get("defaultVariant")
            if default is None:
                raise _UntranslatableError(
                    f"{base}/defaultVariant",
                    "Fader flags need a default "
                    "variant; flagd's 'use the code default' has no equivalent",
                )
            targeting = _resolve_refs(raw.get("targeting"), evaluators, f"{base}/targeting")
            rules, _ = _rules(key, targeting, f"{base}/targeting")
        except _UntranslatableError as exc:
            problems.append(Problem(exc.path, exc.message))
            continue
        flag: dict[str, Any] = {
            "type": value_type,
            "variants": variants,
            "offVariant": default,
            "default": {"variant": default},
        }
        if raw.get("state") == "DISABLED":
            flag["enabled"] = False
        if rules:
            flag["rules"] = rules
        if raw.get("metadata"):
            flag["metadata"] = dict(raw["metadata"])
        flags[key] = flag
    if problems:
        raise ImportRefusedError(problems)
    return {"format": FORMAT_ID, "bucketing": bucketing, "flags": flags}
