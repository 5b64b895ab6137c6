"""Usage in the console. The chart alone: one bar per step with evaluations, its scale and
its description in words. Then in a browser: on a flag's page, evaluations over time as an SVG
chart with every number in a table, the variants served, distinct contexts and when the flag
was last evaluated; on the dashboard, the stale report's "not evaluated for N days". Driven by
keyboard where a person chooses something, and scanned with axe-core (WCAG 2.2 AA) in every
state shown.

Rollups are written into the console server's SQLite database with the store's own
`add_usage` (a second store on the same file, as another replica would write them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from keyboard import tab_to
from playwright.sync_api import Page, expect
from web_console import Console, Scanner

from fader_engine.sketches import DistinctSketch
from fader_server.services.usage import PERIODS, FlagUsage, UsageStep
from fader_server.storage.ports.usage import EVALUATIONS, UsageCount
from fader_server.storage.sql.store import SqlStore
from fader_server.storage.sql.tables import resources
from fader_server.web import usage_charts

START = datetime(2031, 3, 2, tzinfo=UTC)


def flag_usage(counts: list[int], variants: dict[str, int], no_variant: int = 0) -> FlagUsage:
    """A day of hourly usage with the given evaluations per hour."""
    points = tuple(
        UsageStep(START + n * timedelta(hours=1), count, {}, 0) for n, count in enumerate(counts)
    )
    return FlagUsage(
        flag="new-checkout",
        environment="production",
        period=PERIODS["24h"],
        since=START,
        until=START + timedelta(days=1),
        points=points,
        evaluations=sum(counts),
        variants=variants,
        no_variant=no_variant,
        variants_left_out=0,
        distinct_contexts=0,
        distinct_by_variant={},
        last_evaluated=None,
    )


def test_the_chart_draws_one_bar_per_step_with_evaluations_and_writes_its_scale() -> None:
    counts = [0] * 24
    counts[3], counts[20] = 1200, 300
    usage = flag_usage(counts, {"on": 1000, "<b>off</b>": 450}, no_variant=50)
    svg = str(usage_charts.evaluations_chart(usage))

    assert svg.startswith('<svg id="usage-chart" class="chart"')
    assert 'role="img" aria-labelledby="usage-chart-title usage-chart-desc"' in svg
    assert svg.count("<rect") == 2
    assert ">1,200</text>" in svg  # the peak, at the top line
    assert ">0</text>" in svg
    for label in (">Mar 2 00:00<", ">Mar 2 12:00<", ">Mar 2 23:00<"):  # start, middle, end
        assert label in svg
    assert "<b>" not in svg
    assert usage_charts.summary(usage) == (
        "1,500 evaluations of new-checkout in production in the last 24 hours, per hour. "
        "The busiest hour began 2031-03-02 03:00 UTC with 1,200. "
        "Served: on 1,000, <b>off</b> 450, no variant 50."
    )
    assert "&lt;b&gt;off&lt;/b&gt; 450" in svg


def test_a_period_without_evaluations_is_said_in_words() -> None:
    usage = flag_usage([0] * 24, {})
    assert usage_charts.summary(usage) == (
        "No evaluations of new-checkout in production in the last 24 hours."
    )
    assert str(usage_charts.evaluations_chart(usage)).count("<rect") == 0


@pytest.fixture(scope="module")
def store(console: Console) -> Iterator[SqlStore]:
    """The console server's own database (``fader serve --data-dir`` keeps it in fader.db)."""
    opened = SqlStore.open(f"sqlite:///{console.log_path.parent / 'fader.db'}", upgrade=False)
    yield opened
    opened.close()


def evaluated(
    store: SqlStore, project: str, flag: str, at: datetime, **variants: tuple[int, range]
) -> None:
    """What SDK summaries received at `at` add: per variant (`none`: no variant), a count and
    the targeting keys user-<n> of the contexts."""
    counts = [
        UsageCount(
            flag,
            EVALUATIONS,
            "" if variant == "none" else variant,
            count,
            contexts=DistinctSketch().update(f"user-{n}" for n in keys).to_bytes(),
        )
        for variant, (count, keys) in variants.items()
    ]
    with store.transaction() as tx:
        found = tx.get_project(project)
        assert found is not None
        tx.add_usage(found.id, "production", "server", counts, at)


def test_a_flags_usage_is_a_chart_with_its_numbers_in_tables(
    page: Page, project: str, store: SqlStore, scan: Scanner, screenshots: Path
) -> None:
    now = datetime.now(UTC)
    earlier = now - timedelta(hours=3)
    evaluated(store, project, "new-checkout", earlier, on=(30, range(20)), off=(10, range(20, 30)))
    evaluated(store, project, "new-checkout", now, none=(2, range(0)))

    page.goto(f"/projects/{project}/flags/new-checkout?env=production&period=24h")

    usage = page.get_by_role("region", name="Usage in Production")
    chart = usage.get_by_role(
        "img", name="Evaluations per hour of new-checkout in production, the last 24 hours"
    )
    expect(chart).to_be_visible()
    expect(page.locator("#usage-chart-desc")).to_have_text(
        re.compile(r"^42 evaluations of new-checkout in production in the last 24 hours, per hour")
    )
    expect(page.locator("#usage-chart rect")).to_have_count(2)  # one bar per hour with evaluations
    expect(usage.locator("dd").nth(0)).to_have_text("42")
    expect(usage.locator("dd").nth(1)).to_have_text(
        str(DistinctSketch().update(f"user-{n}" for n in range(30)).estimate())
    )
    expect(usage.locator("dd").nth(2)).to_have_text(f"{now:%Y-%m-%d %H:%M} UTC")
    variants = usage.get_by_role("table", name="Variants served in Production, the last 24 hours")
    expect(variants.get_by_role("row", name=re.compile("^on"))).to_contain_text("30")
    expect(variants.get_by_role("row", name=re.compile("^on"))).to_contain_text("71.4%")
    expect(variants.get_by_role("row", name=re.compile("^No variant"))).to_contain_text("4.8%")
    expect(usage).to_contain_text("HyperLogLog estimates")
    states = page.get_by_role("table", name="new-checkout in each environment")
    expect(states.get_by_role("row", name=re.compile("^Production"))).to_contain_text(
        f"{now:%Y-%m-%d %H:%M} UTC"
    )
    expect(states.get_by_role("row", name=re.compile("^Development"))).to_contain_text("never")
    scan(page, "flag page with usage")

    # every hour's numbers, one keyboard press away
    per_hour = usage.get_by_role("table", name=re.compile("^Evaluations of new-checkout"))
    expect(per_hour).to_be_hidden()
    tab_to(page, "Evaluations per hour (24 rows)")
    page.keyboard.press("Enter")
    expect(per_hour).to_be_visible()
    expect(per_hour.locator("tbody tr")).to_have_count(24)
    row = per_hour.get_by_role("row", name=re.compile(f"^{earlier:%Y-%m-%d %H}:00"))
    expect(row.locator("td")).to_have_text(["40", "30", "10", "0"])
    scan(page, "flag page with the usage numbers open")

    # another period, chosen with the keyboard
    tab_to(page, "The last 7 days")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"period=7d"))
    expect(page.get_by_role("link", name="The last 7 days")).to_have_attribute(
        "aria-current", "true"
    )
    title = "Evaluations per hour of new-checkout in production, the last 7 days"
    expect(page.get_by_role("img", name=title)).to_be_visible()
    expect(page.get_by_text("Evaluations per hour (168 rows)")).to_be_visible()
    page.screenshot(path=str(screenshots / "flag-usage.png"), full_page=True)


def test_a_flag_never_evaluated_says_so(page: Page, project: str, scan: Scanner) -> None:
    page.goto(f"/projects/{project}/flags/button-copy?env=production")
    usage = page.get_by_role("region", name="Usage in Production")
    expect(usage).to_contain_text("Never: no evaluations recorded")
    expect(usage).to_contain_text("No evaluations of button-copy in production in the last 7 days.")
    expect(usage.get_by_role("img")).to_have_count(0)
    expect(usage.get_by_role("link", name="The last 7 days")).to_have_attribute(
        "aria-current", "true"
    )
    scan(page, "flag page without usage")


def test_the_stale_report_names_flags_not_evaluated_for_n_days(
    page: Page, project: str, store: SqlStore, scan: Scanner
) -> None:
    now = datetime.now(UTC)
    with store.engine.begin() as connection:  # the seeded flags look 45 days old
        found = connection.execute(
            sa.text("SELECT id FROM projects WHERE key = :k"), {"k": project}
        )
        connection.execute(
            sa.update(resources)
            .where(resources.c.project_id == found.scalar_one())
            .values(created_at=now - timedelta(days=45))
        )
    last = now - timedelta(days=40)
    evaluated(store, project, "new-checkout", last, on=(5, range(5)))
    evaluated(store, project, "search-page-size", now, normal=(5, range(5)))

    page.goto(f"/projects/{project}?env=production")
    stale = page.get_by_role("table", name=re.compile("stale flags?$"))
    checkout = stale.get_by_role("row", name=re.compile("^New checkout"))
    expect(checkout).to_contain_text(
        f"not evaluated for 40 days in production (last evaluated {last:%Y-%m-%d %H:%M} UTC)"
    )
    copy = stale.get_by_role("row", name=re.compile("^Checkout button copy"))
    expect(copy).to_contain_text("never evaluated in production")
    expect(stale.get_by_role("row", name=re.compile("^Search page size"))).to_have_count(0)  # ops
    scan(page, "dashboard with unused flags")

    # a longer threshold, typed and submitted from the keyboard
    tab_to(page, "Unused after this many days without evaluations")
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.type("41")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"unused_days=41"))
    stale = page.get_by_role("table", name=re.compile("stale flags?$"))
    expect(stale.get_by_role("row", name=re.compile("^Checkout button copy"))).to_have_count(1)
    expect(stale.get_by_role("row", name=re.compile("^New checkout"))).to_have_count(0)
    expect(page.get_by_label("Unused after this many days without evaluations")).to_have_value("41")
    scan(page, "dashboard with a longer unused threshold")
