"""Which AE listing query lists the AEs behind a DMC table's patient count (pure).

A count cell of the TEAE overview, the incidence tables (all-causality and related) or the
AESI table counts the distinct patients of some treatment-emergent AEs; :func:`cell_queries`
gives, per such cell, the AE listing's query parameters (``application.listing_query`` names)
that select exactly those AEs, so that their distinct patients are the cell's count.

Only cells whose population the listing's filters express exactly get a query. Left out:
percentages (not counts); the overview's dose modification and discontinuation rows (the
action taken is no listing filter; discontinuation also counts exits citing no AE); AESI
groups of more than one term or SOC (the listing ANDs its filters, a group ORs its terms);
every other table (exposure, rates, deaths, ...: not counts of AEs).
"""

from __future__ import annotations

from safety_stream.plan import AesiGroup, MonitoringPlan
from safety_stream.review.table import DmcTable
from safety_stream.review.tables import ALL_TERMS, MODALITIES

Query = dict[str, str]

_TE: Query = {"treatment_emergent": "true"}
_OVERVIEW: dict[str, Query] = {
    "Any AE": {},
    "Grade >= 3": {"worst_grade": "3"},
    "Serious AE": {"serious": "true"},
    "Fatal (grade 5)": {"worst_grade": "5"},
}


def _scope(scope: str, plan: MonitoringPlan) -> Query:
    """``all``, ``related`` (to any modality) or a modality, as listing filters."""
    if scope == "all":
        return {}
    if scope == "related":
        return {"attribution": plan.related_means_at_least.value}
    return {"modality": scope}  # the listing reads a modality alone as the plan's "related"


def _overview(table: DmcTable, plan: MonitoringPlan) -> dict[tuple[int, int], Query]:
    scopes = {"all_n": "all", "related_n": "related"}
    scopes |= {f"related_{m}_n": m for m in MODALITIES}
    found = {}
    for r, row in enumerate(table.rows):
        category = _OVERVIEW.get(str(row[0]))
        if category is None:
            continue
        for c, column in enumerate(table.columns):
            if column in scopes:
                found[(r, c)] = _TE | category | _scope(scopes[column], plan)
    return found


_GRADES = {f"g{n}": {"patient_worst_grade": str(n)} for n in range(1, 6)}
_GRADES |= {"any_n": {}, "g3plus_n": {"worst_grade": "3"}}


def _incidence(table: DmcTable, plan: MonitoringPlan) -> dict[tuple[int, int], Query]:
    at = {column: c for c, column in enumerate(table.columns)}
    found = {}
    for r, row in enumerate(table.rows):
        kind = _TE | _scope(str(row[at["scope"]]), plan) | {"soc": str(row[at["soc"]])}
        if row[at["term"]] != ALL_TERMS:
            kind["term"] = str(row[at["term"]])
        for column, grade in _GRADES.items():
            found[(r, at[column])] = kind | grade
    return found


def _group(group: AesiGroup) -> Query | None:
    """The group as listing filters, if it is a single term or a single SOC."""
    if len(group.terms) + len(group.socs) != 1:
        return None  # several terms or SOCs: an OR the listing cannot express
    found = {"term": group.terms[0]} if group.terms else {"soc": group.socs[0]}
    if group.immune_related is not None:
        found["irae"] = str(group.immune_related).lower()
    return found


def _aesi(table: DmcTable, plan: MonitoringPlan) -> dict[tuple[int, int], Query]:
    at = {column: c for c, column in enumerate(table.columns)}
    found = {}
    for r, row in enumerate(table.rows):
        group = plan.aesi.get(str(row[at["group"]]))
        kind = None if group is None else _group(group)
        if kind is not None:
            found[(r, at["any_n"])] = _TE | kind
            found[(r, at["g3plus_n"])] = _TE | kind | {"worst_grade": "3"}
    return found


def cell_queries(table: DmcTable, plan: MonitoringPlan) -> dict[tuple[int, int], Query]:
    """Per (row, column) of ``table``: the listing query of the AEs behind that count."""
    if table.name == "teae-overview":
        return _overview(table, plan)
    if table.name in ("incidence-all-causality", "incidence-related"):
        return _incidence(table, plan)
    if table.name == "aesi":
        return _aesi(table, plan)
    return {}
