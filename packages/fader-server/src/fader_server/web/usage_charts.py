"""A flag's evaluations over time as a server-rendered SVG, drawn like
:mod:`fader_server.web.charts`: no script, one series, so nothing depends on telling colours
apart.

One bar per step of the period (60 minutes, 24 or 168 hours, 30 or 90 days), zero steps drawn
as no bar; the scale is written out (0 and the peak, with a line at the peak) and the time axis
is labelled at its start, middle and end. The SVG is an image whose title names what it shows
and whose description says it in numbers; the flag page puts every step's numbers in a table
next to it (the text alternative) and the variants served in another.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from markupsafe import Markup

from fader_server.services.usage import FlagUsage
from fader_server.storage.ports.usage import Step
from fader_server.web.charts import BAR, MUTED, TEXT

WIDTH = 720
HEIGHT = 190
LEFT = 64
RIGHT = 12
TOP = 24
AXIS = 34
PLOT_HEIGHT = HEIGHT - TOP - AXIS
PLOT_WIDTH = WIDTH - LEFT - RIGHT


def step_label(start: datetime, step: Step) -> str:
    """A step as the table names it (UTC)."""
    if step == "minute":
        return f"{start:%Y-%m-%d %H:%M}"
    if step == "hour":
        return f"{start:%Y-%m-%d %H}:00"
    return f"{start:%Y-%m-%d}"


def axis_label(start: datetime, step: Step) -> str:
    """A step as the time axis names it: short, the date only where the step is a day."""
    if step == "minute":
        return f"{start:%H:%M}"
    if step == "hour":
        return f"{start:%b} {start.day} {start:%H}:00"
    return f"{start:%b} {start.day}"


def summary(usage: FlagUsage) -> str:
    """The chart in words (its description): the total, the busiest step, the variants."""
    period = usage.period
    total = usage.evaluations
    evaluations = f"{total:,} evaluation{'' if total == 1 else 's'}"
    head = f"{evaluations} of {usage.flag} in {usage.environment} in {period.label}"
    if not total:
        return f"No evaluations of {usage.flag} in {usage.environment} in {period.label}."
    busiest = max(usage.points, key=lambda p: p.evaluations)
    parts = [
        f"{head}, per {period.step}.",
        f"The busiest {period.step} began {step_label(busiest.start, period.step)} UTC "
        f"with {busiest.evaluations:,}.",
    ]
    served = [f"{variant} {count:,}" for variant, count in usage.variants.items()]
    if usage.no_variant:
        served.append(f"no variant {usage.no_variant:,}")
    parts.append("Served: " + ", ".join(served) + ".")
    return " ".join(parts)


def evaluations_chart(usage: FlagUsage, element_id: str = "usage-chart") -> Markup:
    points = usage.points
    step = usage.period.step
    column = PLOT_WIDTH / len(points)
    bar_width = max(1.0, column * 0.8)
    peak = usage.peak
    base = TOP + PLOT_HEIGHT
    title = f"Evaluations per {step} of {usage.flag} in {usage.environment}, {usage.period.label}"
    out = [
        f'<svg id="{element_id}" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{element_id}-title {element_id}-desc" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{element_id}-title">{escape(title)}</title>',
        f'<desc id="{element_id}-desc">{escape(summary(usage))}</desc>',
        # the scale, in words: 0 at the baseline, the peak at the top line
        f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" stroke="{MUTED}" '
        'stroke-width="1"/>',
        f'<text x="{LEFT - 6}" y="{base + 4}" text-anchor="end" font-size="12" '
        f'fill="{TEXT}">0</text>',
    ]
    if peak:
        out.append(
            f'<line x1="{LEFT}" y1="{TOP}" x2="{WIDTH - RIGHT}" y2="{TOP}" stroke="{MUTED}" '
            'stroke-width="1" stroke-dasharray="4 3"/>'
        )
        out.append(
            f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end" font-size="12" '
            f'fill="{TEXT}">{peak:,}</text>'
        )
    for index, point in enumerate(points):
        if not point.evaluations:
            continue
        height = max(1.0, PLOT_HEIGHT * point.evaluations / peak)
        left = LEFT + column * index + (column - bar_width) / 2
        out.append(
            f'<rect x="{left:.1f}" y="{base - height:.1f}" width="{bar_width:.1f}" '
            f'height="{height:.1f}" fill="{BAR}"/>'
        )
    for index in sorted({0, len(points) // 2, len(points) - 1}):
        centre = LEFT + column * index + column / 2
        anchor = "start" if index == 0 else "end" if index == len(points) - 1 else "middle"
        x = LEFT if anchor == "start" else WIDTH - RIGHT if anchor == "end" else centre
        out.append(
            f'<line x1="{centre:.1f}" y1="{base}" x2="{centre:.1f}" y2="{base + 5}" '
            f'stroke="{MUTED}" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{base + 20}" text-anchor="{anchor}" font-size="12" '
            f'fill="{TEXT}">{escape(axis_label(points[index].start, step))}</text>'
        )
    out.append(
        f'<text x="{WIDTH - RIGHT}" y="{TOP - 8}" text-anchor="end" font-size="12" '
        f'fill="{TEXT}">UTC</text>'
    )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every interpolated text is escaped above
