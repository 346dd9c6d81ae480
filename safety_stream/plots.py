"""Boundary plots as inline SVG, for the safety board and the DSMB report.

One plot per counting rule: x = evaluable patients (n), y = counted patients (x). The stopping
boundary is drawn as a step line (the least x that stops at each n, the last look's boundary in
force between looks); the observed path as a line through every (n, x) the rule has passed; the
current point as a dot. Pure function of its inputs and deterministic to the byte, so a report
built twice from the same log is identical. Text is escaped; nothing here names a patient.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from safety_stream.boundaries import BoundaryTable

WIDTH, HEIGHT = 420, 260
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 14, 36


def _ticks(limit: int, count: int = 5) -> list[int]:
    step = max(1, -(-limit // count))
    return list(range(0, limit + 1, step))


def boundary_plot(
    table: BoundaryTable,
    path: Sequence[tuple[float, int]],
    max_n: int,
    *,
    title: str,
    status: str = "ok",
) -> str:
    """An ``<svg>`` element: the boundary, the observed path and where the rule stands now."""
    x_limit = max(max_n, math.ceil(max((n for n, _ in path), default=0)), 1)
    bounds = [(n, table.at(n)) for n in range(0, x_limit + 1)]
    y_top = max(
        [b for _, b in bounds if b is not None] + [x for _, x in path] + [1],
    )
    y_limit = y_top + max(1, y_top // 10)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(n: float) -> float:
        return round(LEFT + plot_w * n / x_limit, 1)

    def py(x: float) -> float:
        return round(TOP + plot_h * (1 - x / y_limit), 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="boundary-plot" role="img" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">',
        f"<title>{escape(title)}</title>",
        f"<desc>Counted patients against evaluable patients; stopping boundary as a step line; "
        f"now {path[-1][1] if path else 0} of {path[-1][0] if path else 0}.</desc>",
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        f'stroke="#999"/>',
    ]
    for tick in _ticks(x_limit):
        parts.append(
            f'<text x="{px(tick)}" y="{HEIGHT - BOTTOM + 14}" font-size="10" '
            f'text-anchor="middle">{tick}</text>'
        )
    for x in _ticks(y_limit):
        parts.append(
            f'<text x="{LEFT - 6}" y="{py(x) + 3}" font-size="10" text-anchor="end">{x}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 4}" font-size="11" '
        f'text-anchor="middle">evaluable patients (n)</text>'
    )
    parts.append(
        f'<text x="12" y="{TOP + plot_h / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {TOP + plot_h / 2})">counted patients</text>'
    )
    # the boundary: one horizontal run per stretch of n with the same bound
    steps: list[str] = []
    for n, bound in bounds:
        if bound is None:  # before the first look nothing can stop
            continue
        steps.append(f"{px(n)},{py(bound)} {px(min(n + 1, x_limit))},{py(bound)}")
    if steps:
        parts.append(
            f'<polyline class="boundary" points="{" ".join(steps)}" fill="none" '
            f'stroke="#c62828" stroke-width="2"/>'
        )
    if max_n < x_limit:
        parts.append(
            f'<line x1="{px(max_n)}" y1="{TOP}" x2="{px(max_n)}" y2="{TOP + plot_h}" '
            f'stroke="#777" stroke-dasharray="4 3"/>'
        )
    if path:
        points = " ".join(f"{px(n)},{py(x)}" for n, x in path)
        parts.append(
            f'<polyline class="observed" points="{points}" fill="none" stroke="#1565c0" '
            f'stroke-width="1.5"/>'
        )
        last_n, last_x = path[-1]
        colour = {"crossed": "#c62828", "approached": "#ef6c00"}.get(status, "#1565c0")
        parts.append(
            f'<circle class="now" cx="{px(last_n)}" cy="{py(last_x)}" r="4" fill="{colour}">'
            f"<title>now: {last_x} counted of {last_n:g} evaluable</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)
