"""The liver page's tables as CSV rows: one (columns, rows) pair per table of
:class:`LiverSafety`, holding the same figures as the page (unrounded: a ratio or an incidence
is a float, an incidence a proportion from 0 to 1 rather than the page's percentage).

Tables, by name (:data:`LIVER_TABLE_NAMES`): ``shift-alt``, ``shift-ast``, ``shift-alp``,
``shift-bilirubin-total`` (patients by baseline grade and worst post-baseline grade, with the
page's Total row), ``edish-quadrants`` (patients per quadrant and the Hy's-law pairs),
``edish`` (one point per patient), ``child-pugh`` (one trajectory per irradiated patient) and
``cumulative-incidence`` (each curve's totals row, then its days with an event or a death).

Pure functions: no I/O. The caller writes them with ``csv_export.write_csv``.
"""

from __future__ import annotations

from collections.abc import Callable

from safety_stream.review.child_pugh import ChildPughSummary, Trajectory
from safety_stream.review.cumulative import Curve
from safety_stream.review.liver import GRADE_LABELS, LIVER_TESTS, Edish, ShiftTable
from safety_stream.review.liver_view import LiverSafety

Rows = list[list[object]]
Table = tuple[list[str], Rows]

QUADRANT_NAMES = {
    "hys_law": "Potential Hy's law",
    "temple": "Temple's corollary",
    "cholestasis": "Cholestasis",
    "normal": "Normal range",
}
"""The quadrant names the page shows (liver_macros.html.j2)."""


def shift_name(test: str) -> str:
    """One test's shift table name (``bilirubin_total`` -> ``shift-bilirubin-total``)."""
    return "shift-" + test.lower().replace("_", "-")


class UnknownLiverTable(ValueError):
    """A table name the liver page does not have; the message lists the ones it has."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no liver table {name!r}: one of {', '.join(LIVER_TABLE_NAMES)}")
        self.name = name


def shift_rows(table: ShiftTable) -> Table:
    """Baseline grade rows (0-4, missing) by worst post-baseline grade, then the totals."""
    columns = [
        "test",
        "baseline grade",
        *(f"worst {g}" for g in GRADE_LABELS),
        "total",
    ]
    rows: Rows = [
        [table.label, grade, *table.counts[i], table.row_total(i)]
        for i, grade in enumerate(GRADE_LABELS)
    ]
    totals = [table.column_total(c) for c in range(len(GRADE_LABELS))]
    rows.append([table.label, "Total", *totals, table.patients])
    return columns, rows


def edish_quadrant_rows(edish: Edish) -> Table:
    """Patients per quadrant, the Hy's-law pairs within 30 days and the patients not plotted."""
    rows: Rows = [[QUADRANT_NAMES[q], n] for q, n in edish.by_quadrant.items()]
    rows.append(["A Hy's-law pair within 30 days", edish.hys_pairs_within_30_days])
    rows.append(["Not plotted", edish.not_plotted])
    return ["quadrant", "patients"], rows


def edish_rows(edish: Edish) -> Table:
    """One row per plotted patient: peak transaminase and bilirubin (x ULN) and their dates."""
    columns = [
        "patient",
        "site",
        "peak transaminase test",
        "peak ALT/AST (x ULN)",
        "ALT/AST on",
        "peak bilirubin (x ULN)",
        "bilirubin on",
        "quadrant",
        "pair within 30 days",
    ]
    rows: Rows = [
        [
            p.patient_id,
            p.site_id,
            p.transaminase_test,
            p.transaminase_times_uln,
            p.transaminase_on,
            p.bilirubin_times_uln,
            p.bilirubin_on,
            QUADRANT_NAMES[p.quadrant],
            p.hys_pair_within_30_days,
        ]
        for p in edish.points
    ]
    return columns, rows


def scores_text(trajectory: Trajectory) -> str:
    """The scores as the page writes them: ``-3: 5 A; 10: 7 B`` (day: score class)."""
    return "; ".join(f"{p.day}: {p.score} {p.child_pugh_class}" for p in trajectory.points)


def child_pugh_rows(summary: ChildPughSummary) -> Table:
    """One row per irradiated patient, as the page's Child-Pugh table."""
    columns = [
        "patient",
        "site",
        "fractions",
        "first fraction",
        "last fraction",
        "scores (day: score class)",
        "baseline",
        "worst rise",
        "class change",
        f"rise >= {summary.definition.points} in window",
    ]
    rows: Rows = [
        [
            t.patient_id,
            t.site_id,
            t.fractions,
            t.first_fraction,
            t.last_fraction,
            scores_text(t),
            t.baseline,
            t.worst_rise,
            t.class_change,
            t.rose_in_window,
        ]
        for t in summary.trajectories
    ]
    return columns, rows


def cumulative_rows(curves: tuple[Curve, ...]) -> Table:
    """Per curve a ``total`` row (patients, events, deaths, censored), then a ``day`` row for
    each day with an event or a competing death (the rows the page shows)."""
    columns = [
        "related to",
        "row",
        "day",
        "patients",
        "at risk",
        "events",
        "deaths (competing)",
        "censored",
        "cumulative incidence",
        "95% CI low",
        "95% CI high",
    ]
    rows: Rows = []
    for c in curves:
        total: list[object] = [c.label, "total", None, c.patients, None, c.events]
        rows.append([*total, c.competing, c.censored, None, None, None])
        for s in c.steps:
            if s.events or s.competing:
                step: list[object] = [c.label, "day", s.day, None, s.at_risk, s.events]
                rows.append([*step, s.competing, s.censored, s.cif, s.ci_low, s.ci_high])
    return columns, rows


def _shift_builder(test: str) -> Callable[[LiverSafety], Table]:
    def build(liver: LiverSafety) -> Table:
        return shift_rows(next(t for t in liver.shifts if t.test == test))

    return build


BUILDERS: dict[str, Callable[[LiverSafety], Table]] = {
    **{shift_name(test): _shift_builder(test) for test in LIVER_TESTS},
    "edish-quadrants": lambda liver: edish_quadrant_rows(liver.edish),
    "edish": lambda liver: edish_rows(liver.edish),
    "child-pugh": lambda liver: child_pugh_rows(liver.child_pugh),
    "cumulative-incidence": lambda liver: cumulative_rows(liver.curves),
}
LIVER_TABLE_NAMES: tuple[str, ...] = tuple(BUILDERS)


def check_table(name: str) -> None:
    """Raise :class:`UnknownLiverTable` unless ``name`` is one of the liver tables."""
    if name not in BUILDERS:
        raise UnknownLiverTable(name)


def liver_table(name: str, liver: LiverSafety) -> Table:
    """The table ``name`` of ``liver`` as (columns, rows)."""
    check_table(name)
    return BUILDERS[name](liver)
