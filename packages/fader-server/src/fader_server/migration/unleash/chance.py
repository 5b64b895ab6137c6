"""Which Unleash answers depend on chance (or on what the SDK cannot see) for a context.

Unleash falls back to a random number when a rollout's or a variant's stickiness field is
missing, reads its own clock when a date constraint meets a context without ``currentTime``,
and its Python SDK never matches ``applicationHostname`` (it knows no host name). Those answers
cannot be compared with Fader's deterministic ones: the evaluator reports them as
nondeterministic instead (the parity check counts them apart, never as agreement). The test is
conservative: a flag that *could* reach such a path for the context is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fader_server.migration.unleash.context import TOP_LEVEL

NONDETERMINISTIC = "nondeterministic:"
"""Prefix of an Answer.detail the parity check counts apart (same as parity.NONDETERMINISTIC)."""
_SEED_FIELDS = {"userId", "sessionId", "environment", "appName", "remoteAddress"}


def _present(ctx: Mapping[str, Any], field: str) -> bool:
    if field in _SEED_FIELDS or field in TOP_LEVEL:
        return field in ctx
    return field in ctx.get("properties", {})


def _variant_seed_missing(ctx: Mapping[str, Any], variants: Any, stickiness: Any) -> bool:
    weighted = [v for v in variants if isinstance(v, Mapping) and (v.get("weight") or 0) > 0]
    if len(weighted) < 2:
        return False
    if stickiness in (None, "default"):
        return "userId" not in ctx and "sessionId" not in ctx
    if stickiness == "currentTime":
        return True  # looked up among properties, where the SDK never puts it
    return not _present(ctx, str(stickiness))


def _constraints(raw: Mapping[str, Any], segments: Mapping[Any, Any]) -> list[Any]:
    out = list(raw.get("constraints") or [])
    for ident in raw.get("segments") or []:
        segment = segments.get(ident)
        if isinstance(segment, Mapping):
            out += segment.get("constraints") or []
    return out


def reason(
    flag: Mapping[str, Any],
    ctx: Mapping[str, Any],
    flags: Mapping[str, Mapping[str, Any]],
    segments: Mapping[Any, Any],
    *,
    nested: bool = False,
) -> str | None:
    """Why Unleash's answer for `flag` and the Unleash context `ctx` may be chance, or None."""
    strategies = flag.get("strategies") or []
    variants = flag.get("variants") or []
    for strategy in strategies:
        if not isinstance(strategy, Mapping):
            continue
        params = strategy.get("parameters") or {}
        if strategy.get("name") == "flexibleRollout" and params.get("stickiness") in (
            None,
            "default",
        ):
            rollout = str(params.get("rollout", ""))
            if (
                rollout.isdigit()
                and 0 < int(rollout) < 100
                and not ("userId" in ctx or "sessionId" in ctx)
            ):
                return "a rollout with default stickiness and neither userId nor sessionId"
        if strategy.get("name") == "applicationHostname" and "hostname" in ctx.get(
            "properties", {}
        ):
            return "Unleash's Python SDK knows no host name, so applicationHostname is unverifiable"
        for constraint in _constraints(strategy, segments):
            if (
                isinstance(constraint, Mapping)
                and constraint.get("contextName") == "currentTime"
                and "currentTime" not in ctx
            ):
                return "a constraint on currentTime and no currentTime (Unleash reads its clock)"
        if _variant_seed_missing(ctx, strategy.get("variants") or [], params.get("stickiness")):
            return "strategy variants whose stickiness field is missing"
    first = variants[0] if variants and isinstance(variants[0], Mapping) else {}
    if _variant_seed_missing(ctx, variants, first.get("stickiness")):
        return "variants whose stickiness field is missing"
    if not nested:
        for dep in flag.get("dependencies") or []:
            feature = dep.get("feature") if isinstance(dep, Mapping) else None
            parent = flags.get(feature) if isinstance(feature, str) else None
            if parent is not None:
                why = reason(parent, ctx, flags, segments, nested=True)
                if why is not None:
                    return f"its parent {dep['feature']!r}: {why}"
    return None
