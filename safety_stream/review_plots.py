"""Liver-safety plots as inline SVG, for the board and the DSMB report: the eDISH scatter, the
cumulative incidence of related grade >= 3 AEs, and Child-Pugh trajectories around SBRT.

Like ``plots.boundary_plot``: pure functions of their inputs, deterministic to the byte (fixed
rounding, input order), every text escaped. Each ``<svg>`` has ``role="img"``, an
``aria-label`` and a ``<title>``/``<desc>``; the caller renders the same data as a table for
screen readers. Patient ids appear (as point titles and links) only when ``link_base`` is
given: the board and the closed report; the open report passes None and gets no ids.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from urllib.parse import quote

from safety_stream.review.child_pugh import ChildPughSummary
from safety_stream.review.cumulative import Curve
from safety_stream.review.liver import (
    BILIRUBIN_LIMIT,
    QUADRANT_LABELS,
    TRANSAMINASE_LIMIT,
    Edish,
)

WIDTH, HEIGHT = 460, 320
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 16, 44
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
QUADRANT_COLOURS = {
    "hys_law": "#c62828",
    "temple": "#ef6c00",
    "cholestasis": "#6a1b9a",
    "normal": "#1565c0",
}
CURVE_STYLES = (  # colour, dash pattern: told apart without colour too
    ("#212121", ""),
    ("#c62828", "6 3"),
    ("#1565c0", "2 2"),
    ("#2e7d32", "8 3 2 3"),
)


def _num(value: float) -> str:
    """A coordinate with one decimal and no trailing zeros (byte-stable)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _open(kind: str, label: str, title: str, desc: str, height: int = HEIGHT) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{kind}" role="img" '
        f'aria-label="{escape(label)}" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(desc)}</desc>",
        f'<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="none" '
        f'stroke="#999"/>',
    ]


def _axis_titles(x_title: str, y_title: str) -> list[str]:
    middle = _num(TOP + PLOT_H / 2)
    return [
        f'<text x="{_num(LEFT + PLOT_W / 2)}" y="{HEIGHT - 6}" font-size="11" '
        f'text-anchor="middle">{escape(x_title)}</text>',
        f'<text x="13" y="{middle}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 13 {middle})">{escape(y_title)}</text>',
    ]


def _x_tick(x: float, label: str) -> str:
    return (
        f'<text x="{_num(x)}" y="{HEIGHT - BOTTOM + 14}" font-size="10" '
        f'text-anchor="middle">{escape(label)}</text>'
    )


def _y_tick(y: float, label: str) -> str:
    return (
        f'<text x="{LEFT - 6}" y="{_num(y + 3)}" font-size="10" '
        f'text-anchor="end">{escape(label)}</text>'
    )


# -- eDISH -------------------------------------------------------------------------------

LOG_LOW = -1  # 0.1 x ULN


def _decades(values: Sequence[float]) -> int:
    """The top of the log axes: 10 x ULN at least, else the decade above the highest value."""
    highest = max([10.0, *values])
    return max(1, math.ceil(math.log10(highest)))


def edish_plot(edish: Edish, *, link_base: str | None = None) -> str:
    """Peak ALT/AST x ULN (x) against peak total bilirubin x ULN (y), both on log axes, with
    the 3 x ULN and 2 x ULN reference lines and the quadrants named."""
    points = edish.points
    top = _decades(
        [p.transaminase_times_uln for p in points] + [p.bilirubin_times_uln for p in points]
    )
    span = top - LOG_LOW

    def px(value: float) -> float:
        return LEFT + PLOT_W * (math.log10(max(value, 10.0**LOG_LOW)) - LOG_LOW) / span

    def py(value: float) -> float:
        return TOP + PLOT_H * (1 - (math.log10(max(value, 10.0**LOG_LOW)) - LOG_LOW) / span)

    hys = edish.by_quadrant.get("hys_law", 0)
    parts = _open(
        "edish-plot",
        f"eDISH plot: {len(points)} patients; {hys} in the potential Hy's law quadrant",
        "eDISH: peak ALT or AST against peak total bilirubin, multiples of ULN",
        "Each point is one patient's peak post-baseline ALT or AST (x, log scale) against "
        "peak post-baseline total bilirubin (y, log scale), both as multiples of the upper "
        f"limit of normal; reference lines at {TRANSAMINASE_LIMIT:g} x ULN (x) and "
        f"{BILIRUBIN_LIMIT:g} x ULN (y). The two peaks need not be on the same day.",
    )
    for exponent in range(LOG_LOW, top + 1):
        value = 10.0**exponent
        label = f"{value:g}"
        parts.append(_x_tick(px(value), label))
        parts.append(_y_tick(py(value), label))
    x_ref, y_ref = _num(px(TRANSAMINASE_LIMIT)), _num(py(BILIRUBIN_LIMIT))
    parts += [
        f'<line class="reference" x1="{x_ref}" y1="{TOP}" x2="{x_ref}" y2="{TOP + PLOT_H}" '
        f'stroke="#777" stroke-dasharray="4 3"/>',
        f'<line class="reference" x1="{LEFT}" y1="{y_ref}" x2="{LEFT + PLOT_W}" y2="{y_ref}" '
        f'stroke="#777" stroke-dasharray="4 3"/>',
        f'<text x="{LEFT + PLOT_W - 4}" y="{TOP + 12}" font-size="10" text-anchor="end" '
        f'fill="{QUADRANT_COLOURS["hys_law"]}">Potential Hy\'s law</text>',
        f'<text x="{LEFT + 4}" y="{TOP + 12}" font-size="10">Cholestasis</text>',
        f'<text x="{LEFT + PLOT_W - 4}" y="{TOP + PLOT_H - 6}" font-size="10" '
        f'text-anchor="end">Temple\'s corollary</text>',
        f'<text x="{LEFT + 4}" y="{TOP + PLOT_H - 6}" font-size="10">Normal range</text>',
    ]
    parts += _axis_titles("peak ALT or AST (x ULN)", "peak total bilirubin (x ULN)")
    for point in points:
        colour = QUADRANT_COLOURS[point.quadrant]
        dot = (
            f'<circle class="patient {point.quadrant}" '
            f'cx="{_num(px(point.transaminase_times_uln))}" '
            f'cy="{_num(py(point.bilirubin_times_uln))}" r="4" fill="{colour}" '
            f'fill-opacity="0.8">'
        )
        tip = (
            f"{point.transaminase_test} {point.transaminase_times_uln:.2f} x ULN, bilirubin "
            f"{point.bilirubin_times_uln:.2f} x ULN: {QUADRANT_LABELS[point.quadrant]}"
        )
        if link_base is None:
            parts.append(f"{dot}<title>{escape(tip)}</title></circle>")
        else:
            href = escape(link_base + quote(point.patient_id, safe=""))
            parts.append(
                f'<a href="{href}">{dot}<title>{escape(point.patient_id)}: {escape(tip)}'
                f"</title></circle></a>"
            )
    parts.append("</svg>")
    return "".join(parts)


# -- cumulative incidence ----------------------------------------------------------------


def _nice_top(value: float) -> float:
    """The y axis' top: the next tenth above the highest estimate (at least 0.1, at most 1)."""
    return min(1.0, max(0.1, math.ceil(value * 10 + 1e-9) / 10))


def _day_ticks(low: int, high: int) -> list[int]:
    """Multiples of a round step (a week, a month, ...) from ``low`` to ``high``."""
    step = next(
        (s for s in (7, 14, 30, 60, 90, 180, 365, 730) if (high - low) / s <= 8),
        -(-(high - low) // 8),
    )
    return list(range(-(-low // step) * step, high + 1, step))


LEGEND = 30  # two rows of two curves under the CIF plot


def cumulative_incidence_plot(curves: Sequence[Curve]) -> str:
    """Step lines of the cumulative incidence of each curve against days on study."""
    last_day = max([30, *(math.ceil(s.day) for c in curves for s in c.steps)])
    y_top = _nice_top(max([0.0, *(s.cif for c in curves for s in c.steps)]))

    def px(day: float) -> float:
        return LEFT + PLOT_W * day / last_day

    def py(value: float) -> float:
        return TOP + PLOT_H * (1 - value / y_top)

    parts = _open(
        "cif-plot",
        "Cumulative incidence of the first related grade 3 or higher AE, death competing: "
        + "; ".join(f"{c.label} {c.at(last_day) * 100:.1f}%" for c in curves),
        "Cumulative incidence (Aalen-Johansen) of the first related grade >= 3 AE",
        "Step lines: the estimated probability of a first related grade 3 or higher AE by each "
        "day on study (from the first dose), with death as a competing risk.",
        HEIGHT + LEGEND,
    )
    for day in _day_ticks(0, last_day):
        parts.append(_x_tick(px(day), str(day)))
    for tenth in range(0, round(y_top * 10) + 1):
        parts.append(_y_tick(py(tenth / 10), f"{tenth * 10}%"))
    parts += _axis_titles("days on study", "cumulative incidence")
    for index, curve in enumerate(curves):
        colour, dash = CURVE_STYLES[index % len(CURVE_STYLES)]
        points, level = [f"{_num(px(0))},{_num(py(0))}"], 0.0
        for step in curve.steps:
            if step.cif != level:
                points.append(f"{_num(px(step.day))},{_num(py(level))}")
                level = step.cif
                points.append(f"{_num(px(step.day))},{_num(py(level))}")
        points.append(f"{_num(px(last_day))},{_num(py(level))}")
        dashing = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<polyline class="cif" points="{" ".join(points)}" fill="none" stroke="{colour}" '
            f'stroke-width="1.8"{dashing}><title>{escape(curve.label)}</title></polyline>'
        )
        x, y = 8 + (WIDTH // 2) * (index % 2), HEIGHT + 6 + 14 * (index // 2)
        parts.append(
            f'<line x1="{x}" y1="{y - 4}" x2="{x + 24}" y2="{y - 4}" stroke="{colour}" '
            f'stroke-width="1.8"{dashing}/><text x="{x + 28}" y="{y}" font-size="10">'
            f"related to {escape(curve.label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


# -- Child-Pugh ---------------------------------------------------------------------------


def child_pugh_plot(summary: ChildPughSummary, *, link_base: str | None = None) -> str:
    """One line per irradiated patient: Child-Pugh score against days from the first SBRT
    fraction (day 0 marked), class bands A 5-6, B 7-9, C 10-15."""
    days = [p.day for t in summary.trajectories for p in t.points]
    low, high = min([-30, *days]), max([120, *days])

    def px(day: float) -> float:
        return LEFT + PLOT_W * (day - low) / (high - low)

    def py(score: float) -> float:
        return TOP + PLOT_H * (15 - score) / 10

    parts = _open(
        "child-pugh-plot",
        f"Child-Pugh scores around SBRT: {summary.irradiated} irradiated patients, "
        f"{summary.rose} with a rise of {summary.definition.points} or more points",
        "Child-Pugh score by days from the first SBRT fraction",
        "One line per irradiated patient; day 0 is the first SBRT fraction; class A is 5-6 "
        "points, B 7-9, C 10-15.",
    )
    for band_low, band_high, letter in ((5, 6, "A"), (7, 9, "B"), (10, 15, "C")):
        parts.append(
            f'<text x="{LEFT + PLOT_W - 4}" y="{_num(py((band_low + band_high) / 2) + 3)}" '
            f'font-size="10" text-anchor="end" fill="#777">class {letter}</text>'
        )
    for boundary in (6.5, 9.5):
        parts.append(
            f'<line x1="{LEFT}" y1="{_num(py(boundary))}" x2="{LEFT + PLOT_W}" '
            f'y2="{_num(py(boundary))}" stroke="#ddd"/>'
        )
    for score in range(5, 16):
        parts.append(_y_tick(py(score), str(score)))
    for day in _day_ticks(low, high):
        parts.append(_x_tick(px(day), str(day)))
    zero = _num(px(0))
    parts.append(
        f'<line class="first-fraction" x1="{zero}" y1="{TOP}" x2="{zero}" y2="{TOP + PLOT_H}" '
        f'stroke="#777" stroke-dasharray="4 3"/>'
    )
    parts += _axis_titles("days from the first SBRT fraction", "Child-Pugh score")
    for trajectory in summary.trajectories:
        colour = "#c62828" if trajectory.rose_in_window else "#1565c0"
        coords = " ".join(f"{_num(px(p.day))},{_num(py(p.score))}" for p in trajectory.points)
        who = "" if link_base is None else f"{escape(trajectory.patient_id)}: "
        tip = f"{who}baseline {trajectory.baseline}, worst rise {trajectory.worst_rise}"
        parts.append(
            f'<polyline class="trajectory" points="{coords}" fill="none" stroke="{colour}" '
            f'stroke-width="1.5"><title>{tip}</title></polyline>'
        )
        for p in trajectory.points:
            parts.append(
                f'<circle cx="{_num(px(p.day))}" cy="{_num(py(p.score))}" r="2.5" fill="{colour}"/>'
            )
    parts.append("</svg>")
    return "".join(parts)
