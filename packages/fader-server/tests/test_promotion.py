"""Environment comparison and promotion (section 3 of issue 16): the pure comparison, the use
case over the in-memory store, and the API and `fader environments compare|promote` against a
real server on SQLite and PostgreSQL.

A promotion is one change request of ``flag_config`` operations copying the chosen flags'
configurations from the source, based on the target's versions at proposal time; the tests
hold it to that, to "the target moved: nothing is written", and to who may do what.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from conftest import Server
from server_api import create_flag, unique
from test_cli_admin import ok, run, table_rows

from fader_server.errors import (
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    PermissionDeniedError,
)
from fader_server.services import Services
from fader_server.services.access import Principal, Role
from fader_server.services.environment_compare import (
    Configured,
    Status,
    compare_flag,
    compare_flags,
    field_changes,
)
from fader_server.storage.memory import MemoryStore

FLAG = {"name": "Checkout", "type": "boolean", "variants": {"on": True, "off": False}}
OFF = {
    "enabled": False,
    "offVariant": "off",
    "rules": [],
    "default": {"variant": "off"},
    "prerequisites": [],
}
ON = {**OFF, "enabled": True, "default": {"variant": "on"}}
SPLIT = {
    **ON,
    "default": {
        "split": {"weights": [{"variant": "on", "weight": 10}, {"variant": "off", "weight": 90}]}
    },
}
BETA_RULE = {"id": "beta", "clauses": [{"attribute": "plan", "op": "in", "values": ["beta"]}]}
WITH_RULE = {**ON, "rules": [{**BETA_RULE, "variant": "on"}]}
PROPOSAL = {"problem": "staging has run it for a week"}


# ------------------------------------------------------------------------- pure comparison
def test_each_flag_is_same_only_in_one_or_differs_by_effective_configuration() -> None:
    flags = dict.fromkeys(("alpha", "beta", "gamma", "delta", "omega"), FLAG)
    a = {
        "alpha": Configured(ON, 3),  # configured in A only
        "beta": Configured(ON, 1),  # configured in both, differently
        "gamma": Configured(OFF, 2),  # configured in A, but as the default: the same
    }
    b = {"beta": Configured(SPLIT, 7), "delta": Configured(ON, 1)}  # delta: B only
    found = {f.flag: f for f in compare_flags(flags, a, b)}
    assert [f.flag for f in compare_flags(flags, a, b)] == sorted(flags)
    assert found["alpha"].status is Status.ONLY_IN_A
    assert found["beta"].status is Status.DIFFERS
    assert found["gamma"].status is Status.SAME
    assert found["delta"].status is Status.ONLY_IN_B
    assert found["omega"].status is Status.SAME  # configured nowhere: both serve the default
    assert not found["gamma"].promotable
    assert found["beta"].promotable
    assert (found["beta"].a.version, found["beta"].b.version) == (1, 7)
    assert (found["alpha"].b.version, found["alpha"].b.data) == (0, OFF)


def test_field_changes_say_what_differs_in_words_for_each_side() -> None:
    changes = {c.field: c for c in field_changes(ON, SPLIT)}
    assert list(changes) == ["default"]
    assert changes["default"].a == "“on”"
    assert changes["default"].b == "split “on” 10%, “off” 90% by targetingKey"
    state = field_changes(OFF, ON)
    assert [(c.label, c.a, c.b) for c in state] == [
        ("State", "off", "on"),
        ("Default", "“off”", "“on”"),
    ]
    rules = field_changes(ON, WITH_RULE)
    assert [(c.a, c.b) for c in rules] == [("no rules", "1 rule: “beta”")]


def test_rules_of_equal_count_name_the_positions_that_differ() -> None:
    other = {**WITH_RULE, "rules": [{**BETA_RULE, "variant": "off"}]}
    [change] = field_changes(WITH_RULE, other)
    assert change.a == "1 rule: “beta” (differ at rule 1)"
    assert change.b == change.a


def test_absent_enabled_means_on_and_the_detail_goes_from_b_to_a() -> None:
    no_enabled = {k: v for k, v in ON.items() if k != "enabled"}
    assert field_changes(ON, no_enabled) == ()
    found = compare_flag("f", FLAG, Configured(ON, 2), Configured(OFF, 5))
    paths = {p["path"]: p for p in found.paths}
    assert paths["/enabled"] == {"path": "/enabled", "before": False, "after": True}


# ------------------------------------------------------------------------------ use cases
ROOT = Principal("user:root", instance_admin=True, user_id=1)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def svc() -> Services:
    services = Services.over(MemoryStore(), Clock())
    services.projects.create(ROOT, "shop", "Shop")
    for key in ("checkout", "search", "banner"):
        services.flags.create(ROOT, "shop", key, FLAG, None)
    services.flags.put_config(ROOT, "shop", "staging", "checkout", ON, 0, None)
    services.flags.put_config(ROOT, "shop", "staging", "search", SPLIT, 0, None)
    services.flags.put_config(ROOT, "shop", "production", "search", ON, 0, None)
    return services


def member(svc: Services, role: Role, user_id: int) -> Principal:
    project = svc.projects.get(ROOT, "shop")
    return Principal(f"user:{role.label}-{user_id}", roles={project.id: role}, user_id=user_id)


def require_requests(svc: Services, environment: str = "production") -> None:
    env = svc.projects.environment(ROOT, "shop", environment)
    policy = {"required": True, "approvals": 1, "approver_roles": ["admin"]}
    data = {**env.data, "protected": True, "change_requests": policy}
    svc.projects.update_environment(ROOT, "shop", environment, data, env.version, None)


def test_a_promotion_is_one_request_copying_the_source_on_the_target_versions(
    svc: Services,
) -> None:
    editor = member(svc, Role.EDITOR, 20)
    made = svc.promotion.promote(
        editor, "shop", "staging", "production", ["checkout", "search"], "Promote", PROPOSAL
    )
    ops = {op["flag"]: op for op in made.request.operations}
    assert set(ops) == {"checkout", "search"}
    assert all(
        op["kind"] == "flag_config" and op["environment"] == "production" for op in ops.values()
    )
    assert (ops["checkout"]["base_version"], ops["search"]["base_version"]) == (0, 1)
    assert ops["checkout"]["after"] == ON
    assert ops["search"]["after"] == SPLIT
    assert made.request.proposal["problem"] == PROPOSAL["problem"]
    assert "Promote 2 flag(s) from 'staging' to 'production'" in made.request.proposal["change"]
    assert "search (differs): Default: “on” → split" in made.request.proposal["change"]
    assert svc.flags.get_config(ROOT, "shop", "production", "search").data == ON  # not yet


def test_into_an_environment_without_a_policy_it_is_approved_at_once_and_applies(
    svc: Services,
) -> None:
    made = svc.promotion.promote(ROOT, "shop", "staging", "development", ["search"], "T", PROPOSAL)
    assert made.request.status == "approved"
    svc.change_requests.apply(ROOT, "shop", made.request.id)
    assert svc.flags.get_config(ROOT, "shop", "development", "search").data == SPLIT


def test_into_an_environment_that_requires_requests_it_waits_for_another_approver(
    svc: Services,
) -> None:
    require_requests(svc)
    editor, admin = member(svc, Role.EDITOR, 20), member(svc, Role.ADMIN, 30)
    made = svc.promotion.promote(
        editor, "shop", "staging", "production", ["checkout"], "T", PROPOSAL
    )
    assert made.request.status == "open"
    with pytest.raises(InvalidStateError):
        svc.change_requests.apply(editor, "shop", made.request.id)
    svc.change_requests.review(admin, "shop", made.request.id, "approve")
    svc.change_requests.apply(editor, "shop", made.request.id)
    assert svc.flags.get_config(ROOT, "shop", "production", "checkout").data == ON


def test_a_target_changed_after_the_promotion_is_reported_and_nothing_is_written(
    svc: Services,
) -> None:
    made = svc.promotion.promote(
        ROOT, "shop", "staging", "production", ["checkout", "search"], "T", PROPOSAL
    )
    svc.flags.put_config(ROOT, "shop", "production", "search", OFF, 1, "hotfix")
    with pytest.raises(InvalidStateError, match="'search' in 'production' is at version 2"):
        svc.change_requests.apply(ROOT, "shop", made.request.id)
    assert svc.flags.get_config(ROOT, "shop", "production", "checkout").version == 0
    assert svc.flags.get_config(ROOT, "shop", "production", "search").data == OFF
    assert svc.change_requests.get(ROOT, "shop", made.request.id).request.status == "needs_update"


def test_a_later_change_in_the_source_does_not_leak_into_the_request(svc: Services) -> None:
    made = svc.promotion.promote(
        ROOT, "shop", "staging", "development", ["checkout"], "T", PROPOSAL
    )
    svc.flags.put_config(ROOT, "shop", "staging", "checkout", OFF, 1, None)
    svc.change_requests.apply(ROOT, "shop", made.request.id)
    assert svc.flags.get_config(ROOT, "shop", "development", "checkout").data == ON


def test_refusals_name_what_is_wrong(svc: Services) -> None:
    promote = svc.promotion.promote
    with pytest.raises(InvalidInputError, match="banner already has the same configuration"):
        promote(ROOT, "shop", "staging", "production", ["checkout", "banner"], "T", PROPOSAL)
    with pytest.raises(NotFoundError, match="flag 'nope'"):
        promote(ROOT, "shop", "staging", "production", ["nope"], "T", PROPOSAL)
    with pytest.raises(NotFoundError, match="environment 'qa'"):
        promote(ROOT, "shop", "qa", "production", ["checkout"], "T", PROPOSAL)
    with pytest.raises(InvalidInputError, match="two different environments"):
        promote(ROOT, "shop", "staging", "staging", ["checkout"], "T", PROPOSAL)
    with pytest.raises(InvalidInputError, match="at least one flag"):
        promote(ROOT, "shop", "staging", "production", [], "T", PROPOSAL)
    with pytest.raises(InvalidInputError, match="needs a title and a proposal"):
        promote(ROOT, "shop", "staging", "production", ["checkout"], "T", {"problem": ""})
    with pytest.raises(PermissionDeniedError, match="needs the editor role"):
        promote(
            member(svc, Role.VIEWER, 40),
            "shop",
            "staging",
            "production",
            ["checkout"],
            "T",
            PROPOSAL,
        )
    stranger = Principal("user:stranger", roles={}, user_id=50)
    with pytest.raises(NotFoundError):
        svc.environment_compare.compare(stranger, "shop", "staging", "production")
    assert svc.change_requests.list_requests(ROOT, "shop", limit=10) == []


# ---------------------------------------------------------------------- API and command line
def _setup(admin: httpx.Client, project: str) -> None:
    create_flag(admin, project, "checkout")
    create_flag(admin, project, "search")
    for env, flag, config in (
        ("staging", "checkout", ON),
        ("staging", "search", SPLIT),
        ("production", "search", ON),
    ):
        path = f"/api/v1/projects/{project}/environments/{env}/flags/{flag}"
        response = admin.put(path, json=config, headers={"If-Match": '"0"'})
        assert response.status_code == 200, response.text


def test_api_compares_and_promotes_as_one_change_request(admin: httpx.Client, project: str) -> None:
    _setup(admin, project)
    base = f"/api/v1/projects/{project}"
    compared = admin.get(base + "/environments/staging/compare/production")
    assert compared.status_code == 200, compared.text
    body = compared.json()
    assert body["counts"] == {"same": 0, "only_in_a": 1, "only_in_b": 0, "differs": 1}
    flags = {f["flag"]: f for f in body["flags"]}
    assert flags["checkout"]["status"] == "only_in_a"
    assert flags["search"]["changes"][0]["label"] == "Default"
    assert (flags["search"]["a"]["version"], flags["search"]["b"]["version"]) == (1, 1)

    promotion = {
        "from": "staging",
        "to": "production",
        "flags": ["checkout", "search"],
        "title": "Promote checkout and search",
        "proposal": {**PROPOSAL, "rollback": "restore the previous versions"},
    }
    created = admin.post(base + "/promotions", json=promotion)
    assert created.status_code == 201, created.text
    request = created.json()
    assert created.headers["Location"] == f"{base}/change-requests/{request['id']}"
    assert [op["base_version"] for op in request["operations"]] == [0, 1]
    assert request["proposal"]["rollback"] == "restore the previous versions"
    read = admin.get(f"{base}/change-requests/{request['id']}")
    assert read.status_code == 200
    assert read.json()["title"] == "Promote checkout and search"

    same = admin.post(base + "/promotions", json={**promotion, "to": "staging"})
    assert same.status_code == 422
    assert same.headers["content-type"] == "application/problem+json"
    missing = admin.get(base + "/environments/staging/compare/qa")
    assert missing.status_code == 404


def test_api_refuses_malformed_promotions(admin: httpx.Client, project: str) -> None:
    base = f"/api/v1/projects/{project}/promotions"
    good: dict[str, Any] = {
        "from": "staging",
        "to": "production",
        "flags": ["x"],
        "title": "t",
        "proposal": PROPOSAL,
    }
    for bad in (
        {**good, "flags": []},
        {**good, "flags": ["x"] * 51},
        {**good, "title": ""},
        {**good, "proposal": {"problem": "p", "extra": "no"}},
        {**good, "from": "Not A Key"},
        {k: v for k, v in good.items() if k != "proposal"},
    ):
        response = admin.post(base, json=bad)
        assert response.status_code == 422, (bad, response.text)


def test_cli_compare_and_promote(server: Server, admin: httpx.Client, project: str) -> None:
    _setup(admin, project)
    table = table_rows(
        run(server, "environments", "compare", "staging", "production", "-p", project)
    )
    assert table[0][:3] == ["checkout", "only", "in"]
    assert any(row[0] == "search" and row[1] == "differs" for row in table)
    everything = json.loads(
        ok(
            run(server, "environments", "compare", "staging", "production", "-p", project, "--json")
        ).stdout
    )
    assert everything["counts"]["differs"] == 1
    promote = ("environments", "promote", "staging", "production", "-p", project)
    promoted = run(server, *promote, "--flag", "search", "--title", "Promote search",
                   "--problem", "tested in staging", "--json")  # fmt: skip
    request = json.loads(ok(promoted).stdout)
    assert request["status"] == "approved"  # production has no policy: approved at once
    assert [op["flag"] for op in request["operations"]] == ["search"]
    refused = run(server, *promote, "--flag", "nope", "--title", "T", "--problem", "p")
    assert refused.exit_code != 0
    assert "flag 'nope' does not exist" in refused.stderr


def test_members_of_another_project_cannot_compare_or_promote(
    server: Server, admin: httpx.Client, project: str
) -> None:
    _setup(admin, project)
    other = unique("other")
    assert admin.post("/api/v1/projects", json={"key": other, "name": other}).status_code == 201
    name, password = unique("outsider"), "pw-" + unique("secret")
    assert (
        admin.post("/api/v1/users", json={"username": name, "password": password}).status_code
        == 201
    )
    assert (
        admin.put(f"/api/v1/projects/{other}/members/{name}", json={"role": "admin"}).status_code
        == 200
    )
    with server.client() as anonymous:
        token = anonymous.post(
            "/api/v1/auth/login", json={"username": name, "password": password}
        ).json()["token"]
    with server.client(token) as outsider:
        base = f"/api/v1/projects/{project}"
        assert outsider.get(base + "/environments/staging/compare/production").status_code == 404
        body = {
            "from": "staging",
            "to": "production",
            "flags": ["search"],
            "title": "t",
            "proposal": PROPOSAL,
        }
        assert outsider.post(base + "/promotions", json=body).status_code == 404
    assert admin.get(f"/api/v1/projects/{project}/change-requests").json()["items"] == []
