"""Unleash activation strategies as Fader clause alternatives.

Strategies are OR-ed: the first whose constraints, segments and own test all hold decides (and
supplies its variants). A strategy whose constraints hold but whose rollout excludes the user
falls through to the next one, which is why the rollout is a *clause* (``unleash_rollout``,
Unleash's ``normalizedHash(group:id) % 100 + 1 <= percentage``), not a split.

Stickiness: ``default`` is the user id, else the session id, else a random number (the last
case is chance: a rollout of 0% or 100% is still exact, anything between is left to the parity
check's "nondeterministic" count and never matches in Fader). A named field must be present.
``random`` stickiness and ``gradualRolloutRandom`` are chance for everyone: refused unless the
percentage makes them constant.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fader_server.migration.unleash.casefold import lowercase_pattern
from fader_server.migration.unleash.conditions import (
    ALWAYS,
    NEVER,
    Alternatives,
    UntranslatableError,
)
from fader_server.migration.unleash.constraints import attribute, check_operand, membership
from fader_server.migration.unleash.context import USER_ID, typed_values

_UNSIGNED = re.compile(r"\+?[0-9]+", re.ASCII)
_USIZE = 2**64


@dataclass(frozen=True, slots=True)
class StrategyTest:
    """A strategy's own test, plus what the dependency check needs to know about it."""

    alternatives: Alternatives
    flag_named_group: bool = False
    """A rollout between 0 and 100% hashes the *evaluated* flag's name (no groupId); Unleash
    uses the child's name when it evaluates this flag as a parent."""


def _params(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    params = raw.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise UntranslatableError("parameters", "strategy parameters must be an object")
    return params


def _percentage(text: Any) -> int | None:
    """Unleash's ``parse::<usize>()``: ``None`` (the strategy is off) when it fails."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str) or not _UNSIGNED.fullmatch(text):
        return None
    value = int(text)
    if value >= _USIZE:
        return None
    if value > 100:
        raise UntranslatableError(
            f"percentage {text!r}",
            "above 100 Unleash cannot compile the strategy and the whole flag is always off",
        )
    return value


def _group(params: Mapping[str, Any], what: str) -> str:
    group = params.get("groupId")
    if not isinstance(group, str):
        raise UntranslatableError(what, "groupId must be a string")
    if '"' in group or "\\" in group:
        raise UntranslatableError(
            f"groupId {group!r}", "quotes and backslashes break Unleash's rule compiler"
        )
    return group


def _rollout_on(attr: str, group: str, percentage: int) -> Alternatives:
    if percentage == 0:
        return NEVER  # normalizedHash is 1..100
    if percentage == 100:
        return [[{"attribute": attr, "op": "exists"}]]
    return [[{"attribute": attr, "op": "unleash_rollout", "values": [group, percentage]}]]


def stickiness_attribute(name: str) -> str:
    """The Fader attribute behind an explicit Unleash stickiness field."""
    if name == "currentTime":
        raise UntranslatableError(
            "stickiness 'currentTime'",
            "Unleash reads its own clock when the context has no time; no exact equivalent",
        )
    return attribute(name)


def rollout(stickiness: Any, group: str, percentage: int, *, flag_named: bool) -> StrategyTest:
    """``percentage`` of contexts by ``stickiness`` in ``group``."""
    varying = 0 < percentage < 100
    if stickiness in (None, "default"):
        if percentage == 100:
            return StrategyTest(ALWAYS)  # the random fallback is always <= 100 too
        if percentage == 0:
            return StrategyTest(NEVER)
        user = {"attribute": USER_ID, "op": "unleash_rollout", "values": [group, percentage]}
        session = {"attribute": "sessionId", "op": "unleash_rollout", "values": [group, percentage]}
        no_user = {"attribute": USER_ID, "op": "exists", "negate": True}
        return StrategyTest([[user], [no_user, session]], flag_named)
    if not isinstance(stickiness, str):
        raise UntranslatableError("stickiness", "stickiness must be a string")
    if stickiness == "random":
        if percentage in (0, 100):
            return StrategyTest(ALWAYS if percentage == 100 else NEVER)
        raise UntranslatableError(
            f"random stickiness at {percentage}%",
            "a random rollout is chance for every evaluation; Fader rollouts are deterministic",
        )
    if '"' in stickiness or "\\" in stickiness:
        raise UntranslatableError(f"stickiness {stickiness!r}", "breaks Unleash's rule compiler")
    attr = stickiness_attribute(stickiness)
    return StrategyTest(_rollout_on(attr, group, percentage), flag_named and varying)


def _flexible(flag: str, params: Mapping[str, Any]) -> StrategyTest:
    percentage = _percentage(params.get("rollout"))
    if percentage is None:
        return StrategyTest(NEVER)
    group = _group(params, "flexibleRollout") if "groupId" in params else flag
    return rollout(params.get("stickiness"), group, percentage, flag_named="groupId" not in params)


def _gradual(params: Mapping[str, Any], attr: str, name: str) -> StrategyTest:
    percentage = _percentage(params.get("percentage"))
    if percentage is None or "groupId" not in params:
        return StrategyTest(NEVER)  # Unleash compiles it to `false`
    return StrategyTest(_rollout_on(attr, _group(params, name), percentage))


def _random(params: Mapping[str, Any]) -> StrategyTest:
    raw = params.get("percentage")
    text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
    if not isinstance(text, str) or not _UNSIGNED.fullmatch(text) or int(text) >= _USIZE:
        return StrategyTest(NEVER)
    percentage = int(text)
    # Unleash compiles this to `random < p` with random drawn from 1..99.
    if percentage <= 1:
        return StrategyTest(NEVER)
    if percentage >= 100:
        return StrategyTest(ALWAYS)
    raise UntranslatableError(
        f"gradualRolloutRandom at {percentage}%",
        "a random rollout is chance for every evaluation; use flexibleRollout with a "
        "stickiness before importing",
    )


def _split_list(text: Any, what: str) -> list[str]:
    if not isinstance(text, str):
        raise UntranslatableError(what, "must be a comma-separated string")
    return [part.strip() for part in text.split(",")]


def _user_ids(params: Mapping[str, Any]) -> StrategyTest:
    if "userIds" not in params:
        return StrategyTest(NEVER)
    ids = [check_operand(i, "userIds") for i in _split_list(params["userIds"], "userIds")]
    return StrategyTest(membership(USER_ID, ids))


def _remote_address(params: Mapping[str, Any]) -> StrategyTest:
    if "IPs" not in params:
        return StrategyTest(NEVER)
    networks: list[str] = []
    for entry in _split_list(params["IPs"], "IPs"):
        if not entry:
            continue  # Unleash drops entries it cannot parse; an empty one never parses
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise UntranslatableError(
                f"IPs entry {entry!r}",
                "not an IP address or CIDR range as Fader reads them; Unleash may read it "
                "differently, so fix or remove it before importing",
            ) from None
        networks.append(str(network))
    if not networks:
        return StrategyTest(NEVER)
    return StrategyTest([[{"attribute": "remoteAddress", "op": "ip_in", "values": networks}]])


def _hostnames(params: Mapping[str, Any]) -> StrategyTest:
    names = _split_list(params.get("hostNames", ""), "hostNames")
    targets = sorted({n.lower() for n in names if n})  # a host name is never empty
    for target in targets:
        if '"' in target or "\\" in target:
            raise UntranslatableError(
                f"hostNames entry {target!r}", "breaks Unleash's rule compiler"
            )
    if not targets:
        return StrategyTest(NEVER)
    patterns = [lowercase_pattern(t, "equals") for t in targets]
    alternatives: Alternatives = [[{"attribute": "hostname", "op": "matches", "values": patterns}]]
    typed = [v for t in targets for v in typed_values(t)[1:]]
    if typed:
        alternatives.append([{"attribute": "hostname", "op": "in", "values": typed}])
    return StrategyTest(alternatives)


def strategy_test(flag: str, raw: Mapping[str, Any]) -> StrategyTest:
    """The strategy's own test (without its constraints and segments)."""
    name = raw.get("name")
    params = _params(raw)
    if name == "default":
        return StrategyTest(ALWAYS)
    if name == "flexibleRollout":
        return _flexible(flag, params)
    if name == "gradualRolloutUserId":
        return _gradual(params, USER_ID, name)
    if name == "gradualRolloutSessionId":
        return _gradual(params, "sessionId", name)
    if name == "gradualRolloutRandom":
        return _random(params)
    if name == "userWithId":
        return _user_ids(params)
    if name == "remoteAddress":
        return _remote_address(params)
    if name == "applicationHostname":
        return _hostnames(params)
    raise UntranslatableError(
        f"strategy {name!r}",
        "a custom strategy runs application code Fader cannot see; re-express it with "
        "constraints or segments before importing",
    )
