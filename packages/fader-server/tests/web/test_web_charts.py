"""The release chart: an SVG image whose numbers are all written out, with a text alternative."""

from __future__ import annotations

from datetime import date, timedelta

from fader_server.services.reports import ReleaseReport, TeamReleases
from fader_server.web import charts

WEEKS = tuple(date(2025, 3, 3) + timedelta(weeks=n) for n in range(4))


def test_every_bar_carries_its_number_and_every_team_its_name() -> None:
    report = ReleaseReport(
        WEEKS, (TeamReleases("payments", (0, 2, 1, 0)), TeamReleases("search", (1, 0, 0, 3))), ()
    )
    svg = str(charts.releases(report))
    assert svg.startswith('<svg id="releases-chart"')
    assert 'role="img"' in svg
    assert 'aria-labelledby="releases-chart-title releases-chart-desc"' in svg
    assert svg.count("<rect") == 4  # one per non-zero week
    assert [svg.count(f">{n}</text>") for n in (0, 1, 2, 3)] == [4, 2, 1, 1]
    assert ">payments</text>" in svg
    assert ">search</text>" in svg
    assert ">Mar 3</text>" in svg


def test_the_summary_says_the_totals_in_words() -> None:
    report = ReleaseReport(
        WEEKS, (TeamReleases("payments", (0, 2, 1, 0)), TeamReleases("search", (1, 0, 0, 0))), ()
    )
    assert charts.summary(report) == (
        "Releases in the 4 weeks from March 3 to the week of March 24. "
        "payments: 3 releases; search: 1 release."
    )
    assert charts.summary(ReleaseReport(WEEKS, (), ())) == (
        "No releases in the 4 weeks from March 3 to the week of March 24."
    )


def test_team_names_are_escaped() -> None:
    report = ReleaseReport(WEEKS, (TeamReleases("<script>x</script>", (1, 0, 0, 0)),), ())
    svg = str(charts.releases(report))
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
