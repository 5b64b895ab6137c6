"""The dashboard: releases per team per week as an SVG chart with its numbers in a table."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from web_console import Console, Scanner


def test_the_dashboard_charts_releases_per_team_with_a_text_alternative(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    with console.api() as api:
        api.post(
            f"/api/v1/projects/{project}/environments/production/flags/search-page-size/toggle",
            json={"enabled": True},
        )
    page.goto(f"/projects/{project}?env=production")
    chart = page.get_by_role("img", name="Releases per team per week")
    expect(chart).to_be_visible()
    description = page.locator("#releases-chart-desc")
    expect(description).to_contain_text("payments: 1 release")
    expect(description).to_contain_text("search: 1 release")
    table = page.get_by_role("table", name="Releases per team and week (week starting Monday)")
    expect(table.get_by_role("row", name="payments")).to_contain_text("1")
    expect(page.locator("#stale-title")).to_be_visible()
    expect(page.locator(".timeline li").first).to_contain_text(
        "enable configuration of search-page-size in Production"
    )
    scan(page, "dashboard")
