"""Project bundles (issue 17, section 4), as use cases over the in-memory store: export, and
import into a new project on another store or into an existing one, verified by parity.

The API, the command line and two real servers on SQLite and PostgreSQL are
``test_project_bundle_api.py``; here each rule is held on its own, fast: what a bundle holds and
leaves out, that a tampered or foreign bundle is refused before anything is written, that a dry
run writes nothing, that an import is authorised like the direct writes it makes, and that the
parity check sees a project that does not evaluate as its bundle.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from fader_server.errors import (
    ChangeRequestRequiredError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from fader_server.migration import fader_source
from fader_server.migration.model import Answer
from fader_server.migration.parity import check_parity
from fader_server.services import Services, project_bundle
from fader_server.services.access import Principal, Role
from fader_server.services.bundle_format import FORMAT
from fader_server.services.outbound_policy import OutboundPolicy
from fader_server.storage.memory import MemoryStore

ROOT = Principal("user:root", instance_admin=True, user_id=1)
FLAG = {
    "name": "Checkout",
    "description": "",
    "tags": ["web"],
    "kind": "release",
    "type": "boolean",
    "variants": {"on": True, "off": False},
    "owner_team": "payments",
    "expected_lifetime_days": None,
    "client_side": False,
}
COLOUR = {**FLAG, "name": "Colour", "type": "string", "variants": {"red": "red", "blue": "blue"}}
INTERNAL = {
    "name": "Internal",
    "included": ["alice"],
    "excluded": ["mallory"],
    "rules": [{"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@shop.test"]}]}],
}
BANNER_ON = {
    "enabled": True,
    "offVariant": "off",
    "rules": [],
    "default": {"variant": "on"},
    "prerequisites": [],
}
CHECKOUT = {
    "enabled": True,
    "offVariant": "off",
    "rules": [
        {"id": "staff", "clauses": [{"op": "in_segment", "values": ["internal"]}], "variant": "on"}
    ],
    "default": {
        "split": {"weights": [{"variant": "on", "weight": 30}, {"variant": "off", "weight": 70}]}
    },
    "prerequisites": [{"flag": "banner", "variants": ["on"]}],
}
COLOUR_SPLIT = {
    "enabled": True,
    "offVariant": "red",
    "rules": [],
    "default": {
        "split": {
            "by": "orgId",
            "weights": [{"variant": "red", "weight": 50}, {"variant": "blue", "weight": 50}],
        }
    },
    "prerequisites": [],
}
TEMPLATE = {
    "stages": [
        {
            "name": "staff",
            "min_duration": 60,
            "segment": "internal",
            "percent": None,
            "approval": False,
        },
        {"name": "half", "min_duration": 60, "segment": None, "percent": 50, "approval": True},
    ],
    "gates": [
        {
            "kind": "prometheus",
            "url": "https://scraper:hunter2-prom-password@prometheus.example/api",
            "query": "sum(rate(errors[5m]))",
            "max_value": 1.0,
            "min_value": None,
            "trip_after": 2,
        }
    ],
    "split_by": None,
}


def clock() -> datetime:
    return datetime(2031, 5, 1, 9, 0, tzinfo=UTC)


def fresh() -> Services:
    """A store of its own, as another instance would have (gates may reach the test host)."""
    return Services.over(MemoryStore(), clock, OutboundPolicy.parse(["prometheus.example"]))


@pytest.fixture
def source() -> Services:
    """Project `shop`: a segment, a prerequisite chain, a split by attribute, a template."""
    svc = fresh()
    svc.projects.create(ROOT, "shop", "Shop")
    svc.segments.create(ROOT, "shop", "internal", INTERNAL, None)
    svc.flags.create(ROOT, "shop", "banner", {**FLAG, "name": "Banner"}, None)
    svc.flags.create(ROOT, "shop", "checkout", FLAG, None)
    svc.flags.create(ROOT, "shop", "colour", COLOUR, None)
    for env in ("staging", "production"):
        svc.flags.put_config(ROOT, "shop", env, "banner", BANNER_ON, 0, None)
        svc.flags.put_config(ROOT, "shop", env, "checkout", CHECKOUT, 0, None)
    svc.flags.put_config(ROOT, "shop", "staging", "colour", COLOUR_SPLIT, 0, None)
    svc.rollout_templates.create(ROOT, "shop", "careful", "Careful", copy.deepcopy(TEMPLATE))
    return svc


def member(svc: Services, project: str, role: Role, user_id: int = 7) -> Principal:
    found = svc.projects.get(ROOT, project)
    return Principal(f"user:{role.label}", roles={found.id: role}, user_id=user_id)


def served(svc: Services, project: str, env: str) -> dict[str, Any]:
    """An environment's document without the project key (which a move may change)."""
    document = svc.projects.document(ROOT, project, env)
    return {**document, "metadata": {**document["metadata"], "project": None}}


def audit_size(svc: Services, project: str) -> int:
    return len(svc.projects.audit(ROOT, project, limit=1000, before_id=None))


# ------------------------------------------------------------------------------------ export
def test_the_bundle_holds_what_defines_behaviour_and_nothing_instance_local(
    source: Services,
) -> None:
    bundle = source.project_bundles.export(ROOT, "shop")
    assert bundle["format"] == FORMAT
    assert bundle["project"] == {"key": "shop", "name": "Shop"}
    assert [e["key"] for e in bundle["environments"]] == ["development", "production", "staging"]
    production = next(e for e in bundle["environments"] if e["key"] == "production")
    assert production["protected"] is True
    assert [f["key"] for f in bundle["flags"]] == ["banner", "checkout", "colour"]
    assert bundle["segments"] == [{"key": "internal", **INTERNAL}]
    # only written configurations: development has none, colour is configured in staging only
    assert set(bundle["configurations"]) == {"staging", "production"}
    assert bundle["configurations"]["staging"]["colour"] == COLOUR_SPLIT
    assert "colour" not in bundle["configurations"]["production"]
    text = json.dumps(bundle)
    for instance_local in ('"version"', "created_at", "updated_at", "user:root"):
        assert instance_local not in text
    # a gate URL's credentials are secrets: removed, the rest of the URL kept
    [template] = bundle["rollout_templates"]
    assert "hunter2" not in text
    assert "scraper" not in text
    assert template["gates"][0]["url"] == "https://prometheus.example/api"
    assert template["stages"] == TEMPLATE["stages"]


def test_exporting_takes_the_editor_role_and_is_audited(source: Services) -> None:
    with pytest.raises(PermissionDeniedError, match="editor"):
        source.project_bundles.export(member(source, "shop", Role.VIEWER), "shop")
    before = audit_size(source, "shop")
    source.project_bundles.export(member(source, "shop", Role.EDITOR), "shop")
    [entry] = source.projects.audit(ROOT, "shop", limit=1, before_id=None)
    assert (entry.action, entry.entity_type, entry.actor) == ("export", "project", "user:editor")
    assert audit_size(source, "shop") == before + 1
    with pytest.raises(NotFoundError):
        source.project_bundles.export(Principal("user:stranger", user_id=9), "shop")


# ------------------------------------------------------------------------------------ import
def test_a_new_project_on_another_store_serves_what_the_bundle_served(source: Services) -> None:
    bundle = source.project_bundles.export(ROOT, "shop")
    target = fresh()
    report = target.project_bundles.import_bundle(ROOT, "moved", bundle, generate_contexts=150)
    assert report["written"] is True
    assert report["project_created"] is True
    assert {e["key"]: e["status"] for e in report["environments"]} == {
        "development": "created",
        "production": "created",
        "staging": "created",
    }
    assert report["counts"]["flags"] == {"created": 3, "updated": 0, "unchanged": 0}
    assert report["counts"]["segments"]["created"] == 1
    assert report["counts"]["configurations"]["created"] == 5
    assert report["counts"]["rollout_templates"]["created"] == 1
    for env in ("development", "staging", "production"):
        assert served(target, "moved", env) == served(source, "shop", env)
        parity = report["parity"][env]
        assert parity["complete"] is True
        assert parity["agreement"] == 1.0
        assert parity["evaluations"] == 150 * 3
    assert target.projects.environment(ROOT, "moved", "production").data["protected"] is True
    moved = target.rollout_templates.get(ROOT, "moved", "careful")
    assert moved.data["stages"] == TEMPLATE["stages"]
    # every write went through the versioned, audited writes, under the importer's name
    entries = target.projects.audit(ROOT, "moved", limit=100, before_id=None)
    assert {e.actor for e in entries} == {"user:root"}
    assert {"flag", "segment", "config", "environment", "project"} <= {
        e.entity_type for e in entries
    }
    assert all("imported from a bundle of project 'shop'" in (e.comment or "") for e in entries)


def test_importing_into_an_existing_project_updates_and_keeps_what_the_bundle_lacks(
    source: Services,
) -> None:
    old = source.project_bundles.export(ROOT, "shop")
    target = fresh()
    target.project_bundles.import_bundle(ROOT, "shop", old)
    before = audit_size(target, "shop")
    same = target.project_bundles.import_bundle(ROOT, "shop", old)
    assert same["written"] is False  # nothing differs: not a version, not an audit entry
    assert audit_size(target, "shop") == before
    target.flags.create(ROOT, "shop", "local-only", FLAG, None)
    # the source moves on: a flag changes, a configuration is added, one goes back to default
    current = source.flags.get(ROOT, "shop", "colour")
    renamed = {**current.data, "name": "Colour scheme"}
    source.flags.update(ROOT, "shop", "colour", renamed, current.version, None)
    source.flags.put_config(ROOT, "shop", "development", "banner", BANNER_ON, 0, None)
    new = source.project_bundles.export(ROOT, "shop")
    report = target.project_bundles.import_bundle(ROOT, "shop", new)
    assert report["project_created"] is False
    assert {e["status"] for e in report["environments"]} == {"existing"}
    assert report["counts"]["flags"] == {"created": 0, "updated": 1, "unchanged": 2}
    assert report["counts"]["configurations"] == {"created": 1, "updated": 0, "unchanged": 5}
    assert report["counts"]["rollout_templates"] == {"created": 0, "updated": 0, "unchanged": 1}
    assert report["kept"]["flags"] == ["local-only"]
    assert target.flags.get(ROOT, "shop", "colour").data["name"] == "Colour scheme"
    assert target.flags.get(ROOT, "shop", "local-only").version == 1
    for env in ("development", "staging", "production"):
        without_local = served(target, "shop", env)
        without_local["flags"].pop("local-only")
        assert without_local == served(source, "shop", env)
    # a configuration the bundle does not have is reset to the default the bundle implies
    target.flags.put_config(ROOT, "shop", "development", "colour", COLOUR_SPLIT, 0, None)
    again = target.project_bundles.import_bundle(ROOT, "shop", new)
    assert again["counts"]["configurations"]["updated"] == 1
    assert served(target, "shop", "development")["flags"]["colour"]["enabled"] is False


def test_a_dry_run_reports_everything_and_writes_nothing(source: Services) -> None:
    bundle = source.project_bundles.export(ROOT, "shop")
    target = fresh()
    report = target.project_bundles.import_bundle(ROOT, "moved", bundle, dry_run=True)
    assert report["written"] is False
    assert report["dry_run"] is True
    assert report["counts"]["flags"]["created"] == 3
    assert all(p["complete"] for p in report["parity"].values())
    with pytest.raises(NotFoundError):
        target.projects.get(ROOT, "moved")
    # into an existing project: not one version, not one audit entry
    before = audit_size(source, "shop")
    changed = copy.deepcopy(bundle)
    changed["flags"][0]["name"] = "Renamed"
    report = source.project_bundles.import_bundle(ROOT, "shop", changed, dry_run=True)
    assert report["counts"]["flags"]["updated"] == 1
    assert source.flags.get(ROOT, "shop", "banner").data["name"] == "Banner"
    assert audit_size(source, "shop") == before


def _refused(target: Services, bundle: Any, match: str) -> InvalidInputError:
    """The import is refused, `match` found in its detail or one of its field problems."""
    with pytest.raises(InvalidInputError) as refused:
        target.project_bundles.import_bundle(ROOT, "moved", bundle)
    said = [refused.value.detail, *(f"{p.path}: {p.message}" for p in refused.value.problems)]
    assert any(re.search(match, text) for text in said), said
    with pytest.raises(NotFoundError):
        target.projects.get(ROOT, "moved")  # nothing was written, not even the project
    return refused.value


def test_a_bundle_missing_a_segment_a_flag_uses_is_refused_before_anything_is_written(
    source: Services,
) -> None:
    bundle = source.project_bundles.export(ROOT, "shop")
    bundle["segments"] = []
    problem = _refused(fresh(), bundle, "do not form valid documents")
    assert any("internal" in p.message for p in problem.problems)
    assert all(p.path.startswith("/body/document") for p in problem.problems)


def test_an_invalid_flag_is_refused_with_the_field_named(source: Services) -> None:
    bundle = source.project_bundles.export(ROOT, "shop")
    bundle["flags"][0]["type"] = "colourful"
    bundle["flags"][1]["surprise"] = True
    problem = _refused(fresh(), bundle, "the project bundle is invalid")
    paths = {p.path for p in problem.problems}
    assert "/body/document/flags/0/type" in paths
    assert "/body/document/flags/1/surprise" in paths
    # shape fine, meaning wrong: the engine judges (a configuration serving an unknown variant)
    bundle = source.project_bundles.export(ROOT, "shop")
    bundle["configurations"]["staging"]["banner"]["default"] = {"variant": "maybe"}
    problem = _refused(fresh(), bundle, "do not form valid documents")
    assert any("maybe" in p.message for p in problem.problems)


@pytest.mark.parametrize(
    ("tamper", "match"),
    [
        (lambda b: b.update(format="fader-bundle/v2"), "not 'fader-bundle/v2'"),
        (lambda b: b.update(format="fader/v1"), "not a Fader project bundle"),
        (lambda b: b.pop("format"), "not a Fader project bundle"),
        (lambda b: b["flags"].append(dict(b["flags"][0])), "appears twice"),
        (lambda b: b["configurations"].update(qa={}), "invalid"),
        (lambda b: b["environments"][0].update(protected="yes"), "invalid"),
        (lambda b: b["rollout_templates"][0]["gates"][0].update(kind="telepathy"), "invalid"),
        (lambda b: b["project"].update(key="Not A Key"), "invalid"),
        (
            lambda b: b.update(flags=[dict(b["flags"][0], key=f"f{i}") for i in range(10_001)]),
            "at most 10000",
        ),
    ],
    ids=[
        "future-format",
        "a-document",
        "no-format",
        "duplicate-key",
        "unknown-environment",
        "wrong-type",
        "unknown-gate",
        "bad-key",
        "too-many-flags",
    ],
)
def test_foreign_or_tampered_bundles_are_refused(source: Services, tamper: Any, match: str) -> None:
    bundle = source.project_bundles.export(ROOT, "shop")
    tamper(bundle)
    _refused(fresh(), bundle, match)


def test_contexts_are_checked_and_the_work_they_cause_is_bounded(source: Services) -> None:
    bundle = source.project_bundles.export(ROOT, "shop")
    with pytest.raises(InvalidInputError, match="contexts are invalid"):
        fresh().project_bundles.import_bundle(ROOT, "moved", bundle, contexts=[{"targetingKey": 1}])
    given = [{"targetingKey": "alice"}, {"targetingKey": "bob", "email": "bob@shop.test"}]
    report = fresh().project_bundles.import_bundle(ROOT, "moved", bundle, contexts=given)
    assert report["contexts"] == {"development": 2, "production": 2, "staging": 2}
    many = [{"targetingKey": f"u{i}"} for i in range(10_000)]
    flags = [dict(bundle["flags"][0], key=f"f{i}") for i in range(100)]
    big = {**bundle, "flags": bundle["flags"] + flags}
    with pytest.raises(InvalidInputError, match="evaluations"):
        fresh().project_bundles.import_bundle(ROOT, "moved", big, contexts=many)


# ------------------------------------------------------------------------------ authorisation
def test_an_import_is_authorised_like_the_direct_writes_it_makes(source: Services) -> None:
    bundle = source.project_bundles.export(ROOT, "shop")
    target = fresh()
    target.projects.create(ROOT, "shop", "Shop")
    viewer = member(target, "shop", Role.VIEWER)
    editor = member(target, "shop", Role.EDITOR)
    with pytest.raises(PermissionDeniedError, match="editor"):
        target.project_bundles.import_bundle(viewer, "shop", bundle)
    # an editor writes flags and unprotected configurations, not production's
    with pytest.raises(PermissionDeniedError, match="production"):
        target.project_bundles.import_bundle(editor, "shop", bundle)
    without_production = copy.deepcopy(bundle)
    del without_production["configurations"]["production"]
    report = target.project_bundles.import_bundle(editor, "shop", without_production)
    assert report["counts"]["flags"]["created"] == 3
    # creating a project takes an instance administrator, and a stranger learns nothing
    with pytest.raises(NotFoundError):
        target.project_bundles.import_bundle(editor, "elsewhere", bundle)
    # an environment the project lacks takes the admin role
    with_qa = copy.deepcopy(without_production)
    with_qa["environments"].append({"key": "qa", "name": "QA"})
    with pytest.raises(PermissionDeniedError, match="admin"):
        target.project_bundles.import_bundle(editor, "shop", with_qa)


def test_an_environment_that_requires_change_requests_is_not_written_directly(
    source: Services,
) -> None:
    bundle = source.project_bundles.export(ROOT, "shop")
    target = fresh()
    target.project_bundles.import_bundle(ROOT, "shop", bundle)
    env = target.projects.environment(ROOT, "shop", "production")
    policy = {"required": True, "approvals": 1, "approver_roles": ["admin"]}
    target.projects.update_environment(
        ROOT, "shop", "production", {**env.data, "change_requests": policy}, env.version, None
    )
    changed = copy.deepcopy(bundle)
    changed["configurations"]["production"]["checkout"]["enabled"] = False
    before = audit_size(target, "shop")
    with pytest.raises(ChangeRequestRequiredError, match="production"):
        target.project_bundles.import_bundle(ROOT, "shop", changed)
    assert audit_size(target, "shop") == before
    # what does not touch what production serves still imports
    staging_only = copy.deepcopy(bundle)
    staging_only["configurations"]["staging"]["checkout"]["enabled"] = False
    staging_only["environments"] = [
        e if e["key"] != "production" else {**e, "change_requests": policy}
        for e in staging_only["environments"]
    ]
    report = target.project_bundles.import_bundle(ROOT, "shop", staging_only)
    assert report["counts"]["configurations"]["updated"] == 1


# ------------------------------------------------------------------------------------ parity
def test_parity_shows_a_project_that_does_not_evaluate_as_its_bundle(source: Services) -> None:
    """The check the import runs, on a read-back document that lost a segment member: the
    contexts that member decides are the disagreements."""
    exported = source.projects.document(ROOT, "shop", "production")
    exported["flags"]["checkout"]["default"] = {"variant": "off"}  # only the segment says on
    landed = copy.deepcopy(exported)
    landed["segments"]["internal"]["included"] = []
    contexts = [{"targetingKey": "alice"}, {"targetingKey": "bob"}]
    report = check_parity(
        fader_source.identity_translation(landed),
        fader_source.FaderEvaluator(exported),
        contexts,
    )
    assert not report.complete
    assert report.disagreed == 1
    checkout = next(f for f in report.flags if f.fader_key == "checkout")
    [example] = checkout.examples
    assert example.context == {"targetingKey": "alice"}
    assert (example.source.variant, example.source.value) == ("on", True)
    assert (example.fader.variant, example.fader.value) == ("off", False)
    same = check_parity(
        fader_source.identity_translation(exported),
        fader_source.FaderEvaluator(exported),
        contexts,
    )
    assert same.complete
    assert same.agreed == same.evaluations == 2 * 3


def test_the_fader_source_translates_one_environment_as_itself(source: Services) -> None:
    documents = {env: source.projects.document(ROOT, "shop", env) for env in ("staging",)}
    translation = fader_source.SOURCE.translate(documents, "staging")
    assert translation.document == documents["staging"]
    assert translation.keys == {"banner": "banner", "checkout": "checkout", "colour": "colour"}
    assert translation.answers["colour"]["blue"].value == "blue"
    with pytest.raises(fader_source.SourceDocumentError, match="no environment 'qa'"):
        fader_source.SOURCE.translate(documents, "qa")
    evaluator = fader_source.SOURCE.evaluator(documents["staging"])
    assert evaluator.answer("banner", {"targetingKey": "x"}).variant == "on"
    assert evaluator.answer("missing", {"targetingKey": "x"}).variant is None


def test_a_backup_restores_the_project_it_was_taken_from(source: Services) -> None:
    """Imported into its own project, a bundle changes back only what changed since."""
    backup = source.project_bundles.export(ROOT, "shop")
    served_then = {env: served(source, "shop", env) for env in ("staging", "production")}
    source.segments.create(ROOT, "shop", "unnamed", {"included": ["zed"]}, None)
    current = source.flags.get(ROOT, "shop", "checkout")
    source.flags.update(
        ROOT, "shop", "checkout", {**current.data, "tags": []}, current.version, None
    )
    config = source.flags.get_config(ROOT, "shop", "staging", "banner")
    source.flags.put_config(
        ROOT, "shop", "staging", "banner", {**config.data, "enabled": False}, config.version, None
    )
    report = source.project_bundles.import_bundle(ROOT, "shop", backup)
    assert report["counts"]["flags"] == {"created": 0, "updated": 1, "unchanged": 2}
    assert report["counts"]["segments"] == {"created": 0, "updated": 0, "unchanged": 1}
    assert report["counts"]["configurations"] == {"created": 0, "updated": 1, "unchanged": 4}
    assert report["kept"]["segments"] == ["unnamed"]
    for env, document in served_then.items():
        now = served(source, "shop", env)
        now["segments"].pop("unnamed")
        assert now == document


class _Skewed(fader_source.FaderEvaluator):
    """The exported side answering 'off' for banner: what a project that lost something on
    the way would look like to the parity check."""

    def answer(self, source_key: str, context: Any) -> Answer:
        found = super().answer(source_key, context)
        return Answer(False, "off") if source_key == "banner" else found


def test_below_full_parity_the_import_is_refused_unless_differences_are_accepted(
    source: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(project_bundle, "FaderEvaluator", _Skewed)
    bundle = source.project_bundles.export(ROOT, "shop")
    target = fresh()
    with pytest.raises(project_bundle.ParityRefusedError, match="'banner'") as refused:
        target.project_bundles.import_bundle(ROOT, "moved", bundle, generate_contexts=20)
    report = refused.value.report
    assert report["written"] is False
    assert report["parity"]["production"]["disagreed"] == 20  # banner is on there
    assert report["parity"]["development"]["complete"] is True  # banner is off there
    with pytest.raises(NotFoundError):
        target.projects.get(ROOT, "moved")
    accepted = target.project_bundles.import_bundle(
        ROOT, "moved", bundle, generate_contexts=20, accept_differences=True
    )
    assert accepted["written"] is True
    assert accepted["parity"]["production"]["agreement"] < 1.0
    assert target.flags.get(ROOT, "moved", "banner").version == 1
