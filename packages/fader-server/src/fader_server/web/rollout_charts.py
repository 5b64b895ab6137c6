"""Rollout charts as server-rendered SVG, drawn like :mod:`fader_server.web.charts`: no
script, every bar named and labelled with its number in text, so nothing depends on colour.

- a metric gate: one horizontal bar per arm (control, treatment), same scale;
- the error-budget burn: one bar for treatment / control with a mark at 1 (no extra burn).

Each SVG is an image whose title and description say the figures; the pages also give them in
text (a table for the gates, the sentence next to the burn bar).
"""

from __future__ import annotations

from html import escape

from markupsafe import Markup

from fader_server.web.charts import BAR, MUTED, TEXT
from fader_server.web.rollout_view import Burn, GateView

WIDTH = 560
LABEL_WIDTH = 170
ROW = 30
BURN_WIDTH = 160
BURN_HEIGHT = 18
BURN_SCALE = 3.0
"""The burn bar is full at 3 times the control's error rate (and says so when beyond)."""
CONTROL = "#6b7280"


def gate_summary(gate: GateView, control: str, treatment: str) -> str:
    what = "error rate" if gate.is_rate else f"mean {gate.event}"
    return (
        f"{what.capitalize()}: control ({control}) {gate.shown(gate.control)} over "
        f"{gate.control_samples} samples, treatment ({treatment}) {gate.shown(gate.treatment)} "
        f"over {gate.treatment_samples} samples. Gate status: {gate.status}."
    )


def gate_chart(gate: GateView, control: str, treatment: str, element_id: str) -> Markup:
    """Control against treatment for one metric gate."""
    arms = (
        (f"control ({control})", gate.control, CONTROL),
        (f"treatment ({treatment})", gate.treatment, BAR),
    )
    peak = max((v for _, v, _ in arms if v), default=0.0) or 1.0
    span = WIDTH - LABEL_WIDTH - 90
    height = ROW * len(arms) + 6
    what = "Error rate" if gate.is_rate else f"Mean {gate.event}"
    title = f"{what} by arm, gate {gate.index + 1}"
    out = [
        f'<svg id="{element_id}" class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{element_id}-title {element_id}-desc" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{element_id}-title">{escape(title)}</title>',
        f'<desc id="{element_id}-desc">{escape(gate_summary(gate, control, treatment))}</desc>',
    ]
    for row, (label, value, colour) in enumerate(arms):
        top = row * ROW + 4
        width = span * (value or 0.0) / peak
        out.append(
            f'<text x="0" y="{top + 17}" fill="{TEXT}" font-size="13">{escape(label)}</text>'
        )
        out.append(
            f'<rect x="{LABEL_WIDTH}" y="{top + 4}" width="{width:.1f}" height="{ROW - 10}" '
            f'fill="{colour}"/>'
        )
        out.append(
            f'<text x="{LABEL_WIDTH + width + 6:.1f}" y="{top + 17}" fill="{TEXT}" '
            f'font-size="13">{escape(gate.shown(value))}</text>'
        )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every interpolated text is escaped above


def burn_bar(burn: Burn, element_id: str) -> Markup:
    """A small bar of treatment / control, the mark at 1 (the control's rate) drawn as a line."""
    ratio = burn.ratio or 0.0
    filled = BURN_WIDTH * min(ratio, BURN_SCALE) / BURN_SCALE
    mark = BURN_WIDTH / BURN_SCALE
    return Markup(  # noqa: S704 - the only interpolated text is escaped
        f'<svg id="{element_id}" class="burn" viewBox="0 0 {BURN_WIDTH} {BURN_HEIGHT}" '
        f'width="{BURN_WIDTH}" height="{BURN_HEIGHT}" role="img" '
        f'aria-labelledby="{element_id}-title" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{element_id}-title">Error-budget burn: {escape(burn.text)}</title>'
        f'<rect x="0" y="2" width="{BURN_WIDTH}" height="{BURN_HEIGHT - 4}" fill="none" '
        f'stroke="{MUTED}"/>'
        f'<rect x="0" y="2" width="{filled:.1f}" height="{BURN_HEIGHT - 4}" fill="{BAR}"/>'
        f'<line x1="{mark:.1f}" y1="0" x2="{mark:.1f}" y2="{BURN_HEIGHT}" stroke="{TEXT}" '
        'stroke-width="2"/></svg>'
    )
