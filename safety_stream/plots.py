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
from dataclasses import dataclass
from datetime import date, timedelta
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


# -- a patient's timeline ----------------------------------------------------------------------

GRADE_COLOURS = {1: "#8bc34a", 2: "#f2c200", 3: "#ef6c00", 4: "#c62828", 5: "#212121"}
MODALITY_COLOURS = {
    "radiotherapy": "#6a1b9a",
    "chemotherapy": "#1565c0",
    "immunotherapy": "#00838f",
}
LAB_COLOURS = {"ALT": "#c62828", "AST": "#ef6c00", "ALP": "#6a1b9a", "bilirubin_total": "#2e7d32"}
LAB_NAMES = {"ALT": "ALT", "AST": "AST", "ALP": "ALP", "bilirubin_total": "bilirubin"}
TL_WIDTH, TL_LABELS, TL_RIGHT, TL_ROW, TL_LAB_HEIGHT = 980, 230, 20, 20, 130


@dataclass(frozen=True, slots=True)
class TimelineAe:
    """One AE bar: onset to end (None: ongoing), coloured by its worst grade."""

    label: str  # what the bar says (term and grade); the caller decides, nothing else is shown
    grade: int
    onset: date
    end: date | None
    related: str  # e.g. "chemotherapy probable" ("" when unrelated to every modality)
    href: str | None = None


@dataclass(frozen=True, slots=True)
class TimelineInput:
    """What one patient's timeline draws (all dates on the trial's calendar, UTC)."""

    enrolled: date | None
    administrations: Sequence[tuple[str, date, bool]]  # modality, day, dose reduced
    aes: Sequence[TimelineAe]
    labs: Sequence[tuple[str, date, float]]  # test, day, value / ULN (ALT, AST, ALP, bilirubin)
    child_pugh: Sequence[tuple[date, int, str]]  # day, score, class
    exit: tuple[str, date] | None  # kind (withdrawn, died, lost_to_follow_up), day
    last_day: date  # the end of the axis (e.g. the latest data, or today)


def _span(data: TimelineInput) -> tuple[date, date]:
    days = [d for _, d, _ in data.administrations] + [a.onset for a in data.aes]
    days += [a.end for a in data.aes if a.end] + [d for _, d, _ in data.labs]
    days += [d for d, _, _ in data.child_pugh] + [data.last_day]
    days += [data.enrolled] if data.enrolled else []
    days += [data.exit[1]] if data.exit else []
    first, last = min(days), max(days)
    return first, max(last, first + timedelta(days=7))


class _Axis:
    def __init__(self, first: date, last: date) -> None:
        self.first, self.days = first, (last - first).days + 1
        self.width = TL_WIDTH - TL_LABELS - TL_RIGHT

    def x(self, day: date) -> float:
        return round(TL_LABELS + self.width * (day - self.first).days / self.days, 1)

    def ticks(self) -> list[int]:
        step = next(s for s in (7, 14, 28, 56, 91, 182, 365, 730) if self.days / s <= 12)
        return list(range(0, self.days + 1, step))


def _text(x: float, y: float, text: str, extra: str = "") -> str:
    return f'<text x="{x}" y="{y}" font-size="11"{extra}>{escape(text)}</text>'


def _axis_rows(axis: _Axis, top: int, bottom: int) -> list[str]:
    parts = []
    for day in axis.ticks():
        x = axis.x(axis.first + timedelta(days=day))
        parts.append(f'<line x1="{x}" y1="{top}" x2="{x}" y2="{bottom}" stroke="#e3e7eb"/>')
        parts.append(_text(x, top - 4, f"day {day}", ' text-anchor="middle" fill="#5b6773"'))
    return parts


def _treatment_rows(data: TimelineInput, axis: _Axis, y: int) -> tuple[list[str], int]:
    parts = [_text(8, y + 14, "study"), f'<line x1="{TL_LABELS}" y1="{y + 10}" '
             f'x2="{TL_WIDTH - TL_RIGHT}" y2="{y + 10}" stroke="#d5dbe1"/>']  # fmt: skip
    if data.enrolled:
        x = axis.x(data.enrolled)
        parts.append(
            f'<path class="enrolled" d="M{x} {y + 3}l7 7-7 7-7-7z" fill="#1d2630">'
            f"<title>enrolled {data.enrolled.isoformat()}</title></path>"
        )
    if data.exit:
        kind, day = data.exit
        x, mark = axis.x(day), "#212121" if kind == "died" else "#7a4300"
        parts.append(
            f'<path class="exit" d="M{x - 6} {y + 4}l12 12m0-12l-12 12" stroke="{mark}" '
            f'stroke-width="3"><title>{escape(kind.replace("_", " "))} {day.isoformat()}'
            f"</title></path>"
        )
    y += TL_ROW
    for modality in ("radiotherapy", "chemotherapy", "immunotherapy"):
        given = [(d, r) for m, d, r in data.administrations if m == modality]
        if not given:
            continue
        colour = MODALITY_COLOURS[modality]
        parts.append(_text(8, y + 14, f"{modality} ({len(given)})"))
        for day, reduced in given:
            x = axis.x(day)
            dash = ' stroke-dasharray="2 2"' if reduced else ""
            what = f"{modality} {day.isoformat()}{' (dose reduced)' if reduced else ''}"
            parts.append(
                f'<line class="dose" x1="{x}" y1="{y + 3}" x2="{x}" y2="{y + 17}" '
                f'stroke="{colour}" stroke-width="2"{dash}><title>{escape(what)}</title></line>'
            )
        y += TL_ROW
    return parts, y


def _related_text(ae: TimelineAe, start: float, end: float, y: int) -> str:
    """The attribution beside the bar: after its end, or before its start if no room."""
    if not ae.related:
        return ""
    if end + 7 * len(ae.related) < TL_WIDTH - TL_RIGHT:
        return _text(round(end + 4, 1), y + 14, ae.related, ' fill="#5b6773"')
    return _text(round(start - 4, 1), y + 14, ae.related, ' text-anchor="end" fill="#5b6773"')


def _ae_rows(data: TimelineInput, axis: _Axis, y: int) -> tuple[list[str], int]:
    parts = []
    for ae in data.aes:
        start = axis.x(ae.onset)
        end = axis.x(ae.end) if ae.end else axis.x(data.last_day)
        end = max(end, start + 4)
        colour = GRADE_COLOURS.get(ae.grade, "#777")
        ink = "#fff" if ae.grade >= 4 else "#1d2630"
        related = f"related: {ae.related}" if ae.related else "not related"
        title = f"{ae.label}, {related}; onset {ae.onset.isoformat()}, " + (
            f"ended {ae.end.isoformat()}" if ae.end else "ongoing"
        )
        bar = (
            f'<rect class="ae grade-{ae.grade}" x="{start}" y="{y + 3}" '
            f'width="{round(end - start, 1)}" height="14" rx="2" fill="{colour}">'
            f"<title>{escape(title)}</title></rect>"
            f'<text x="{start + 3}" y="{y + 14}" font-size="10" fill="{ink}">G{ae.grade}</text>'
        )
        if ae.href:
            bar = f'<a href="{escape(ae.href)}">{bar}</a>'
        label = ae.label if len(ae.label) <= 34 else ae.label[:33] + "…"
        parts.append(_text(8, y + 14, label) + bar + _related_text(ae, start, end, y))
        y += TL_ROW
    return parts, y


def _lab_panel(data: TimelineInput, axis: _Axis, y: int) -> tuple[list[str], int]:
    labs = [lab for lab in data.labs if lab[0] in LAB_COLOURS]
    cps = data.child_pugh
    if not labs and not cps:
        return [], y
    parts = []
    if labs:
        top = max(5.0, max(v for _, _, v in labs) * 1.1)
        height = TL_LAB_HEIGHT

        def py(value: float) -> float:
            return round(y + height - height * min(value, top) / top, 1)

        parts.append(_text(8, y + 12, "labs (x ULN)"))
        for level, dash in ((1.0, ""), (3.0, ' stroke-dasharray="4 3"')):
            parts.append(
                f'<line x1="{TL_LABELS}" y1="{py(level)}" x2="{TL_WIDTH - TL_RIGHT}" '
                f'y2="{py(level)}" stroke="#9aa5b1"{dash}/>'
            )
            parts.append(_text(TL_LABELS - 4, py(level) + 4, f"{level:g}x", ' text-anchor="end"'))
        for row, test in enumerate(t for t in LAB_COLOURS if any(lab[0] == t for lab in labs)):
            points = sorted((d, v) for t, d, v in labs if t == test)
            colour = LAB_COLOURS[test]
            parts.append(_text(8, y + 28 + 14 * row, f"— {LAB_NAMES[test]}", f' fill="{colour}"'))
            line = " ".join(f"{axis.x(d)},{py(v)}" for d, v in points)
            parts.append(
                f'<polyline class="lab" points="{line}" fill="none" stroke="{colour}" '
                f'stroke-width="1.5"/>'
            )
            for day, value in points:
                parts.append(
                    f'<circle cx="{axis.x(day)}" cy="{py(value)}" r="2.5" fill="{colour}">'
                    f"<title>{LAB_NAMES[test]} {value:.2f} x ULN on {day.isoformat()}"
                    "</title></circle>"
                )
        y += height + 10
    if cps:
        parts.append(_text(8, y + 14, "Child-Pugh"))
        for day, score, letter in cps:
            parts.append(
                _text(axis.x(day), y + 14, f"{letter}{score}", ' text-anchor="middle" '
                      'font-weight="600" class="child-pugh"')
            )  # fmt: skip
        y += TL_ROW
    return parts, y


def patient_timeline(data: TimelineInput, *, title: str) -> str:
    """An ``<svg>`` of one patient's course: enrolment and exit, every administration as a tick
    per modality, AEs as bars from onset to end coloured by worst grade (labelled with their
    attribution), liver labs as multiples of ULN, Child-Pugh scores. Pure and deterministic;
    every text is escaped. The page shows the same data as tables for screen readers."""
    axis = _Axis(*_span(data))
    y = 24
    treatment, y = _treatment_rows(data, axis, y)
    aes, y = _ae_rows(data, axis, y + 6)
    labs, y = _lab_panel(data, axis, y + 10)
    height = y + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="patient-timeline" role="img" '
        f'viewBox="0 0 {TL_WIDTH} {height}" width="{TL_WIDTH}" height="{height}" '
        f'font-family="system-ui, sans-serif">',
        f"<title>{escape(title)}</title>",
        f"<desc>Days on study from {axis.first.isoformat()}: {len(data.administrations)} "
        f"administrations, {len(data.aes)} adverse events, {len(data.labs)} lab values, "
        f"{len(data.child_pugh)} Child-Pugh scores. The tables below give the same data.</desc>",
        *_axis_rows(axis, 20, height - 4),
        *treatment,
        *aes,
        *labs,
        "</svg>",
    ]
    return "".join(parts)
