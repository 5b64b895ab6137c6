"""Property-based fuzzing of the admin API against its own OpenAPI document (schemathesis).

schemathesis reads ``/openapi.json`` from a running server and, for every admin operation, sends
its coverage cases (boundary values, wrong types, missing and unknown fields...) and requests
Hypothesis generates from the schemas, as an instance admin. A response fails the test when it
is a 5xx, when its status, content type, headers or body are not what the document declares for
that operation, or when the server accepted a request that the schema forbids.

Each backend gets a server and a database of its own, never the session's ``server``: a fuzzer
with an admin token deletes environments, revokes tokens and creates users. The server is seeded
with a project, an environment, a flag (configured, with a rule on a segment), a segment, a member
and a spare token; path parameters are pointed at them (every coverage case, about half the
fuzzed ones) so that requests get past the 404 into the handlers. DELETEs aim at disposable
twins so the seeded entities survive, and no case may revoke the token the fuzzer itself uses.

Generation is deterministic (derandomized Hypothesis), so a failure in CI reproduces locally.
The cases are counted per backend and operation, recorded as the ``schemathesis_cases`` property
(the conftest prints it at the end of the run), and every admin operation must have been
exercised, so the test cannot pass by generating nothing. The delivery endpoints
(``/api/v1/sdk``, ``/ofrep/v1``) are left out: they take SDK keys, not admin tokens, and stream.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from conftest import ADMIN_PASSWORD, LogSink, Server, dedicated_postgres_database, running_server
from hypothesis import strategies as st
from schemathesis import BaseSchema, Case, HookContext
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import TestPhase
from server_api import create_flag

from fader_server.settings import Settings

# The admin API and the probes; not the SDK delivery endpoints (see the module docstring).
ADMIN_PATHS = r"^/api/v1/(?!sdk/)|^/(healthz|readyz)$"
# Hypothesis examples per operation in the fuzzing phase; the coverage phase adds its own cases.
# Tuned for about 30 s of CPU per backend (3,168 cases over 58 operations when written).
# FADER_FUZZ_EXAMPLES=200 (say) fuzzes deeper locally; the default is what `make test` runs.
MAX_EXAMPLES = int(os.environ.get("FADER_FUZZ_EXAMPLES", "10"))
PROJECT = "fuzz"


@dataclass
class FuzzTarget:
    """A seeded server, the keys that exist on it, and what the fuzzer has sent it."""

    server: Server
    session: requests.Session
    existing: dict[str, Any]  # path parameter → a key that exists
    disposable: dict[str, Any]  # the same, for DELETE: twins nothing else needs
    own_token_id: int
    cases: Counter[str] = field(default_factory=Counter)  # operation label → cases sent
    phases: Counter[str] = field(default_factory=Counter)  # schemathesis phase → cases sent

    def aim(self, case: Case) -> Case:
        """Point the case's path parameters at seeded entities."""
        keys = self.disposable if case.method == "DELETE" else self.existing
        case.path_parameters = {
            name: keys.get(name, value) for name, value in case.path_parameters.items()
        }
        return case

    def spares_own_token(self, case: Case) -> bool:
        return str(case.path_parameters.get("token_id")) != str(self.own_token_id)


def _created(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


def _seed(server: Server) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Create what the path parameters will name; return (existing, disposable, own token id)."""
    base = f"/api/v1/projects/{PROJECT}"
    with server.admin() as admin:
        _created(admin.post("/api/v1/projects", json={"key": PROJECT, "name": "Fuzzing"}))
        _created(admin.post(f"{base}/environments", json={"key": "doomed", "name": "Doomed"}))
        for key in ("fuzz-segment", "doomed"):
            segment = {"key": key, "name": "Beta", "included": ["user-1"]}
            _created(admin.post(f"{base}/segments", json=segment))
        for key in ("fuzz-flag", "doomed"):
            create_flag(admin, PROJECT, key)
        config = {
            "enabled": True,
            "offVariant": "off",
            "default": {"variant": "off"},
            "rules": [
                {"clauses": [{"op": "in_segment", "values": ["fuzz-segment"]}], "variant": "on"}
            ],
        }
        _created(
            admin.put(
                f"{base}/environments/development/flags/fuzz-flag",
                json=config,
                headers={"If-Match": '"0"'},
            )
        )
        user = {"username": "fuzz-user", "password": secrets.token_urlsafe(16)}
        _created(admin.post("/api/v1/users", json=user))
        _created(admin.put(f"{base}/members/fuzz-user", json={"role": "editor"}))
        spare = _created(admin.post("/api/v1/tokens", json={"kind": "admin", "name": "spare"}))
        off: dict[str, object] = {"kind": "flag_config", "environment": "development"}
        off |= {"flag": "fuzz-flag", "enabled": False}
        proposal = {"problem": "p", "change": "c"}
        request = {"title": "Fuzz", "proposal": proposal, "operations": [off]}
        change_request = _created(admin.post(f"{base}/change-requests", json=request))
        incident = _created(admin.post(f"{base}/incidents", json={"title": "Fuzz"}))
        due = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
        item = {"title": "Fix", "owner": "fuzz-user", "due_on": due}
        items = f"{base}/incidents/{incident['id']}/action-items"
        action_item = _created(admin.post(items, json=item))
        tokens = _created(admin.get("/api/v1/tokens"))
    own = next(t["id"] for t in tokens if t["name"] == "FADER_ADMIN_TOKEN")
    existing = {
        "project": PROJECT,
        "environment": "development",
        "flag": "fuzz-flag",
        "segment": "fuzz-segment",
        "username": "fuzz-user",
        "token_id": spare["id"],
        "request_id": change_request["id"],
        "incident": incident["id"],
        "item": action_item["id"],
    }
    disposable = {**existing, "environment": "doomed", "flag": "doomed", "segment": "doomed"}
    return existing, disposable, own


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, log_sink: LogSink
) -> Iterator[FuzzTarget]:
    backend: str = request.param
    with ExitStack() as stack:
        database_url = None
        if backend == "postgresql":
            database_url = stack.enter_context(dedicated_postgres_database())
        settings = Settings(
            data_dir=tmp_path_factory.mktemp(f"fuzz-{backend}"),
            database_url=database_url,
            admin_password=ADMIN_PASSWORD,
            admin_token="fdr_admin_" + secrets.token_urlsafe(32),
        )
        server = stack.enter_context(running_server(backend, settings, log_sink))
        session = stack.enter_context(requests.Session())
        # Not the environment's proxies and .netrc: looking them up costs milliseconds of CPU
        # per request (thousands of requests here), and none applies to a server on 127.0.0.1.
        session.trust_env = False
        existing, disposable, own = _seed(server)
        yield FuzzTarget(server, session, existing, disposable, own)


def _config(target: FuzzTarget) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "headers": {"Authorization": f"Bearer {target.server.admin_token}"},
            "request-timeout": 30,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "phases": {
                # Methods no route has are the router's concern (405), judged by no check here.
                "coverage": {"unexpected-methods": []},
                # The coverage phase already breaks every constraint of every schema once;
                # random invalid requests on top of it mostly buy more 422s.
                "fuzzing": {"generation": {"mode": "positive"}},
            },
            "checks": {
                "enabled": False,
                "not_a_server_error": {"enabled": True},
                "status_code_conformance": {"enabled": True},
                "content_type_conformance": {"enabled": True},
                "response_headers_conformance": {"enabled": True},
                "response_schema_conformance": {"enabled": True},
                "negative_data_rejection": {"enabled": True},
            },
        }
    )


def _register_hooks(schema: BaseSchema, target: FuzzTarget) -> None:
    def aims_at_path(case: Case) -> bool:
        """Whether the case may be re-aimed: not when its path is what it gets wrong on purpose."""
        return case.meta is None or not case.meta.is_negative_at(ParameterLocation.PATH)

    @schema.hook
    def filter_case(context: HookContext, case: Case) -> bool:
        return target.spares_own_token(case)

    @schema.hook
    def map_case(context: HookContext, case: Case) -> Case:
        # Coverage cases are a fixed list (no draw to choose with): aim every one of them.
        if (
            case.meta is not None
            and case.meta.phase.name is TestPhase.COVERAGE
            and aims_at_path(case)
        ):
            return target.aim(case)
        return case

    @schema.hook
    def flatmap_case(context: HookContext, case: Case) -> st.SearchStrategy[Case]:
        # Fuzzed cases (only these pass through flatmap): half keep their generated keys (404s).
        if not aims_at_path(case):
            return st.just(case)
        return st.booleans().map(lambda aim: target.aim(case) if aim else case)


@pytest.fixture
def admin_api(request: pytest.FixtureRequest, fuzz_target: FuzzTarget) -> Iterator[BaseSchema]:
    # schemathesis 4.32's lazy loader reads and rewrites `Node._nodeid`, which pytest 9.2
    # replaced by `Node._id`; give it the attribute it expects (it only renames subtests).
    request.node._nodeid = request.node.nodeid
    document_url = f"{fuzz_target.server.url}/openapi.json"
    # The document is large (90 operations) and the machine may be loaded: a generous deadline.
    schema = schemathesis.openapi.from_url(document_url, config=_config(fuzz_target), timeout=120)
    _register_hooks(schema, fuzz_target)
    started = time.monotonic()
    yield schema
    total = sum(fuzz_target.cases.values())
    phases = ", ".join(f"{name} {count}" for name, count in sorted(fuzz_target.phases.items()))
    # (not `record_property`, which warns under --junitxml's default xunit2 family)
    request.node.user_properties.append(
        (
            "schemathesis_cases",
            f"{fuzz_target.server.backend}: {total} cases ({phases}) over "
            f"{len(fuzz_target.cases)} operations in {time.monotonic() - started:.0f} s",
        )
    )
    operations = {
        f"{method.upper()} {path}"
        for path, methods in schema.raw_schema["paths"].items()
        if re.search(ADMIN_PATHS, path)
        for method in methods
    }
    untested = sorted(operations - set(fuzz_target.cases))
    assert not untested, f"schemathesis sent nothing to {untested}"


admin_api_schema = schemathesis.pytest.from_fixture("admin_api").include(path_regex=ADMIN_PATHS)


@admin_api_schema.parametrize()
def test_admin_api_keeps_the_promises_of_its_openapi_document(
    case: Case, fuzz_target: FuzzTarget
) -> None:
    fuzz_target.cases[case.operation.label] += 1
    fuzz_target.phases[case.meta.phase.name if case.meta else "explicit"] += 1
    case.call_and_validate(session=fuzz_target.session)
