"""Charts as server-rendered SVG: no script, no library, readable without colour.

"Releases per team per week" is drawn as small multiples: one row of bars per team, the team
named at the start of its row and every bar labelled with its number, so nothing depends on
telling colours apart. The SVG is an image with a title and a description that says the
totals; the page puts the full numbers in a table next to it (the text alternative).
"""

from __future__ import annotations

from html import escape

from markupsafe import Markup

from fader_server.services.reports import ReleaseReport

WIDTH = 720
LABEL_WIDTH = 150
ROW_HEIGHT = 60
BAR_SPACE = 34
AXIS_HEIGHT = 26
TEXT = "#1f2937"
MUTED = "#4b5563"
BAR = "#1d4ed8"


def week_label(report: ReleaseReport, index: int) -> str:
    week = report.weeks[index]
    return f"{week:%b} {week.day}"


def summary(report: ReleaseReport) -> str:
    """The chart in one sentence (its description, and what a screen reader announces)."""
    first, last = report.weeks[0], report.weeks[-1]
    span = (
        f"in the {len(report.weeks)} weeks from {first:%B} {first.day} "
        f"to the week of {last:%B} {last.day}"
    )
    if not report.teams:
        return f"No releases {span}."
    parts = [
        f"{t.team}: {t.total} release{'s' if t.total != 1 else ''}"
        for t in sorted(report.teams, key=lambda t: (-t.total, t.team))
    ]
    return f"Releases {span}. " + "; ".join(parts) + "."


def releases(report: ReleaseReport, element_id: str = "releases-chart") -> Markup:
    weeks = len(report.weeks)
    column = (WIDTH - LABEL_WIDTH - 10) / weeks
    bar_width = min(32.0, column * 0.6)
    peak = max((max(t.counts) for t in report.teams), default=0) or 1
    height = ROW_HEIGHT * len(report.teams) + AXIS_HEIGHT
    out = [
        f'<svg id="{element_id}" class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{element_id}-title {element_id}-desc" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{element_id}-title">Releases per team per week</title>',
        f'<desc id="{element_id}-desc">{escape(summary(report))}</desc>',
    ]
    for row, team in enumerate(report.teams):
        top = row * ROW_HEIGHT
        base = top + ROW_HEIGHT - 8
        out.append(
            f'<text x="0" y="{base - 8}" fill="{TEXT}" font-size="14" font-weight="600">'
            f"{escape(_clip(team.team))}</text>"
        )
        out.append(
            f'<line x1="{LABEL_WIDTH}" y1="{base}" x2="{WIDTH - 10}" y2="{base}" '
            f'stroke="{MUTED}" stroke-width="1"/>'
        )
        for index, count in enumerate(team.counts):
            centre = LABEL_WIDTH + column * index + column / 2
            bar = BAR_SPACE * count / peak
            if count:
                out.append(
                    f'<rect x="{centre - bar_width / 2:.1f}" y="{base - bar:.1f}" '
                    f'width="{bar_width:.1f}" height="{bar:.1f}" fill="{BAR}"/>'
                )
            out.append(
                f'<text x="{centre:.1f}" y="{base - bar - 4:.1f}" text-anchor="middle" '
                f'font-size="12" fill="{TEXT if count else MUTED}">{count}</text>'
            )
    axis = ROW_HEIGHT * len(report.teams) + 18
    for index in range(weeks):
        centre = LABEL_WIDTH + column * index + column / 2
        out.append(
            f'<text x="{centre:.1f}" y="{axis}" text-anchor="middle" font-size="12" '
            f'fill="{MUTED}">{escape(week_label(report, index))}</text>'
        )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every interpolated text is escaped above


def _clip(text: str, limit: int = 18) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
