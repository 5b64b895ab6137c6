"""The rules editor: clauses, segment conditions and splits, checked by the engine as you type
(and with the Check button without JavaScript), saved with the version it was opened at."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from web_console import Console, Scanner, config


def test_rules_are_checked_as_you_type_and_saved(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    page.goto(f"/projects/{project}/flags/new-checkout?env=staging")
    page.get_by_role("link", name="Edit rules of new-checkout in Staging").click()
    scan(page, "rules editor, empty")
    page.get_by_role("button", name="Add rule").click()
    expect(page.get_by_label("Rule id (optional)")).to_be_focused()
    page.get_by_label("Rule id (optional)").fill("pro-plans")
    page.get_by_label("Attribute", exact=True).fill("plan")
    page.get_by_label("Values", exact=True).fill('pro\n"42"')
    page.get_by_label("Rule 1 serves").select_option("split")
    weights = page.locator("#rules-0-weights")
    expect(weights).to_be_visible()
    page.get_by_label("“on” %").first.fill("30")
    page.get_by_label("“off” %").first.fill("60")
    status = page.locator("#check-status")
    expect(status).to_contain_text("the engine found 1 problem")
    expect(page.locator("#rules-0-weights-error")).to_contain_text(
        "sum to 90%; they must sum to exactly 100%"
    )
    scan(page, "rules editor, checked with a problem")
    page.get_by_label("“off” %").first.fill("70")
    expect(status).to_contain_text("the engine found no problems")
    expect(page.locator("#rules-0-weights-error")).to_be_hidden()
    page.get_by_label("Why are you changing this?").fill("pro plans first")
    page.get_by_role("button", name="Save rules").click()
    expect(page.locator("#notice")).to_contain_text("Saved the rules of new-checkout in Staging")
    expect(page.locator("ol.rules")).to_contain_text(
        'if plan is one of "pro", "42", serve a percentage split: “on” 30%, “off” 70%'
    )
    saved = config(console, project, "staging", "new-checkout")
    assert saved["rules"] == [
        {
            "id": "pro-plans",
            "clauses": [{"attribute": "plan", "op": "in", "values": ["pro", "42"]}],
            "split": {
                "weights": [{"variant": "on", "weight": 30}, {"variant": "off", "weight": 70}]
            },
        }
    ]
    assert saved["enabled"] is False  # the editor never flips the kill switch


def test_without_javascript_the_check_button_shows_the_engines_messages(
    plain_page: Page, console: Console, project: str, scan: Scanner
) -> None:
    page = plain_page
    page.goto(f"/projects/{project}/flags/new-checkout/rules?env=production")
    expect(page.get_by_label("Values", exact=True)).to_have_value("internal-users")
    page.get_by_role("button", name="Add segment condition to rule 1").click()
    second = page.locator("#rules-0-clauses-1-values")
    expect(second).to_be_focused()
    second.fill("beta-testers")
    page.get_by_role("button", name="Add rule").click()
    page.locator("#rules-1-clauses-0-attribute").fill("version")
    page.locator("#rules-1-clauses-0-op").select_option("semver_gte")
    page.locator("#rules-1-clauses-0-values").fill("not-a-version")
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#rules-0-clauses-1-values-error")).to_contain_text(
        "uses segment 'beta-testers', which is not defined"
    )
    expect(second).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#rules-1-clauses-0-values-error")).to_contain_text(
        "valid semantic versions"
    )
    scan(page, "rules editor without JavaScript, two problems")
    page.get_by_role("button", name="Move up rule 2").click()
    expect(page.locator("#rules-0-clauses-0-attribute")).to_have_value("version")
    page.get_by_role("button", name="Remove rule 1").click()
    page.get_by_role("button", name="Remove condition 2 of rule 1").click()
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.locator("#check-status")).to_contain_text("The engine found no problems.")
    assert config(console, project, "production", "new-checkout")["version"] == 1


def test_a_stale_editor_does_not_overwrite_a_newer_change(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    page.goto(f"/projects/{project}/flags/new-checkout/rules?env=production")
    with console.api() as api:
        api.post(
            f"/api/v1/projects/{project}/environments/production/flags/new-checkout/toggle",
            json={"enabled": False, "comment": "meanwhile"},
        )
    page.locator("#default-weight-0").fill("10")
    page.locator("#default-weight-1").fill("90")
    page.get_by_role("button", name="Save rules").click()
    expect(page.locator("#error-summary")).to_contain_text(
        "Someone changed the rules of new-checkout in Production since you opened this page"
    )
    scan(page, "rules editor with a conflict")
    current = config(console, project, "production", "new-checkout")
    assert current["version"] == 2
    assert current["default"]["split"]["weights"][0]["weight"] == 5


IMPORTED = {
    "enabled": True,
    "offVariant": "off",
    "rules": [
        {
            "id": "office",
            "description": "imported from Unleash",
            "clauses": [
                {"attribute": "ip", "op": "ip_in", "values": ["10.0.0.0/8", "2001:db8::/32"]},
                {"attribute": "targetingKey", "op": "unleash_rollout", "values": ["25", 40]},
            ],
            "variant": "on",
        }
    ],
    "default": {
        "split": {
            "weights": [{"variant": "on", "weight": 30}, {"variant": "off", "weight": 70}],
            "bucketing": {"algorithm": "launchdarkly", "prefix": "new-checkout.8f1c2e"},
        }
    },
    "prerequisites": [],
}


def test_an_imported_flag_keeps_its_bucketing_and_clauses_when_edited(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    path = f"/api/v1/projects/{project}/environments/staging/flags/new-checkout"
    with console.api() as api:
        response = api.put(path, json=IMPORTED, headers={"If-Match": '"0"'})
        assert response.status_code == 200, response.text
    page.goto(f"/projects/{project}/flags/new-checkout?env=staging")
    targeting = page.locator("section[aria-labelledby=rules-title]")
    expect(targeting).to_contain_text(
        'if ip is an IP address in "10.0.0.0/8", "2001:db8::/32" and targetingKey falls in the '
        "first 40% of the Unleash rollout of group “25”, serve “on”"
    )
    expect(targeting).to_contain_text(
        "(bucketed by targetingKey with LaunchDarkly's hash, as imported)"
    )
    page.goto(f"/projects/{project}/flags/new-checkout/rules?env=staging")
    expect(page.locator("#default-bucketing-note")).to_contain_text(
        "Bucketed by LaunchDarkly's hash, as imported"
    )
    expect(page.locator("#rules-0-clauses-0-op")).to_have_value("ip_in")
    expect(page.locator("#rules-0-clauses-1-values")).to_have_value('"25"\n40')
    scan(page, "rules editor, imported flag")
    page.get_by_label("Description (optional)").fill("office network, 40% rollout")
    page.locator("#default-weight-0").fill("35")
    page.locator("#default-weight-1").fill("65")
    page.get_by_role("button", name="Save rules").click()
    expect(page.locator("#notice")).to_contain_text("Saved the rules of new-checkout in Staging")
    saved = config(console, project, "staging", "new-checkout")
    described = {**IMPORTED["rules"][0], "description": "office network, 40% rollout"}
    assert saved["rules"] == [described]
    assert saved["default"]["split"] == {
        "weights": [{"variant": "on", "weight": 35}, {"variant": "off", "weight": 65}],
        "bucketing": {"algorithm": "launchdarkly", "prefix": "new-checkout.8f1c2e"},
    }
