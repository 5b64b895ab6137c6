"""Property: whatever writes run at the same time, every stored environment document parses.

Hypothesis draws sequences of batches of operations on a small set of keys, so they collide:
create or delete a segment, create, narrow, widen or delete a flag, write a configuration that
uses segments, prerequisites and variants, flip a kill switch. The operations of a batch are
sent at once (a barrier, one client each) to a real server on PostgreSQL, the backend where
writers run concurrently (SQLite serialises them with ``BEGIN IMMEDIATE``). After each batch,
every environment's document is one the engine loads, and no request got a 500: each was
applied or refused with a problem (docs/adr/0005-project-write-lock.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from barrier_race import Racers, Request, broken_documents, call, racers
from conftest import Server
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from server_api import BOOLEAN_FLAG, unique

FLAGS = ("f0", "f1")
SEGMENTS = ("s0",)
WRITTEN = ("development", "production")
ANSWERS = {200, 201, 204, 404, 409, 412, 422}
"""Applied, or refused with a problem; a 500 (or a dropped connection) fails the property."""
ANY = {"If-Match": "*"}


@dataclass(frozen=True)
class Operation:
    """One write, as a request against a project."""

    method: str
    path: str
    body: dict[str, Any] | None = None

    def request(self, project: str) -> Request:
        url = f"/api/v1/projects/{project}{self.path}"
        headers = ANY if self.method in ("PUT", "DELETE") else {}
        return call(self.method, url, json=self.body, headers=headers)


def _flag_body(beta: bool) -> dict[str, Any]:
    variants = {"off": "a", "on": "b", **({"beta": "c"} if beta else {})}
    return {**BOOLEAN_FLAG, "type": "string", "variants": variants}


def _configuration(segment: str | None, prerequisite: str | None, variant: str) -> dict[str, Any]:
    clauses = [{"op": "in_segment", "values": [segment]}] if segment else []
    return {
        "enabled": True,
        "offVariant": "off",
        "default": {"variant": "off"},
        "rules": [{"clauses": clauses, "variant": variant}],
        "prerequisites": [{"flag": prerequisite, "variants": ["on"]}] if prerequisite else [],
    }


def _use(flag: str, environment: str, segment: str | None, needs: bool, variant: str) -> Operation:
    """A configuration of `flag` that relies on others: a segment, the other flag as a
    prerequisite, the variant beta (which the flag may lose)."""
    prerequisite = next(f for f in FLAGS if f != flag) if needs else None
    body = _configuration(segment, prerequisite, variant)
    return Operation("PUT", f"/environments/{environment}/flags/{flag}", body)


flags = st.sampled_from(FLAGS)
segments = st.sampled_from(SEGMENTS)
removals = st.one_of(
    st.builds(lambda s: Operation("DELETE", f"/segments/{s}"), segments),
    st.builds(lambda f: Operation("DELETE", f"/flags/{f}"), flags),
    st.builds(lambda f: Operation("PUT", f"/flags/{f}", _flag_body(beta=False)), flags),
)
uses = st.builds(
    _use,
    flags,
    st.sampled_from(WRITTEN),
    st.none() | segments,
    st.booleans(),
    st.sampled_from(("on", "beta")),
)
restorations = st.one_of(
    st.builds(lambda s: Operation("POST", "/segments", {"key": s, "included": ["u1"]}), segments),
    st.builds(lambda f: Operation("POST", "/flags", {"key": f, **_flag_body(beta=True)}), flags),
    st.builds(lambda f: Operation("PUT", f"/flags/{f}", _flag_body(beta=True)), flags),
    st.builds(
        lambda f, env: Operation("POST", f"/environments/{env}/flags/{f}/toggle", {}),
        flags,
        st.sampled_from(WRITTEN),
    ),
)
operations = st.one_of(removals, uses, uses, restorations)
"""Writes that remove what others rely on, writes that rely on it (twice as likely: most
collisions need one), and writes that bring things back so later batches have more to race."""
batches = st.lists(st.lists(operations, min_size=3, max_size=4), min_size=2, max_size=4)


@pytest.fixture
def racing(server: Server) -> Iterator[Racers]:
    with racers(server, count=4) as found:
        yield found


def _start(admin: httpx.Client) -> str:
    """A project where both flags (with the variant beta) and both segments exist, unused, so
    most operations are valid alone and collide only with each other."""
    project = unique("prop")
    assert admin.post("/api/v1/projects", json={"key": project, "name": "P"}).status_code == 201
    base = f"/api/v1/projects/{project}"
    for flag in FLAGS:
        body = {"key": flag, **_flag_body(beta=True)}
        assert admin.post(base + "/flags", json=body).status_code == 201
    for segment in SEGMENTS:
        body = {"key": segment, "included": ["u1"]}
        assert admin.post(base + "/segments", json=body).status_code == 201
    return project


@pytest.mark.parametrize("server", ["postgresql"], indirect=True)
@settings(
    max_examples=40,
    deadline=None,
    # A race does not replay exactly, so shrinking would rerun batches for minutes to little
    # avail, and a saved example is no better a candidate than a fresh one: report the
    # failing batch as drawn (the assertion message names it) and keep no database.
    phases=[Phase.explicit, Phase.generate],
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=batches)
def test_every_stored_environment_parses_after_any_concurrent_writes(
    server: Server, racing: Racers, plan: list[list[Operation]]
) -> None:
    with server.admin() as admin:
        project = _start(admin)
        for batch in plan:
            responses = racing.race(*(op.request(project) for op in batch))
            unexpected = [
                (op.method, op.path, r.status_code, r.text)
                for op, r in zip(batch, responses, strict=True)
                if r.status_code not in ANSWERS
            ]
            assert not unexpected, unexpected
            assert broken_documents(admin, project) == [], batch
