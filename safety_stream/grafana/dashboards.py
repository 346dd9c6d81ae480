"""The three safety-stream dashboards, built with grafana-foundation-sdk (Grafana 11.6).

* ``safety-overview``: what the safety officer and the DSMB look at first: the related
  grade >= 3 rate per modality with its 95% interval, every monitoring rule's counted patients
  against its stopping boundary, rule states, exposure, expedited-report clocks, alerts and
  adverse events by modality and grade.
* ``safety-sites``: one site at a time (``$site``): exposure, related grade >= 3, AEs by grade.
* ``safety-pipeline``: for operators: ingest, rejections, store and projection latency and lag,
  alert delivery, scrape health.

Every query goes to the Prometheus data source picked by the ``$datasource`` variable and reads
only the series that safety-stream exports (job ``safety-stream``) plus ``up`` and ``ALERTS``.
``all_dashboards()`` returns exactly the JSON the SDK's encoder produces; ``panel_queries()``
lists a dashboard's PromQL with template variables filled in, for tests and ``promtool``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as models

from safety_stream.grafana.overview import overview_dashboard
from safety_stream.grafana.panels import (
    GRAFANA_BUILTINS,
)
from safety_stream.grafana.pipeline import pipeline_dashboard
from safety_stream.grafana.sites import sites_dashboard

# --- output ----------------------------------------------------------------------------------

BUILDERS: tuple[Callable[[], models.Dashboard], ...] = (
    overview_dashboard,
    sites_dashboard,
    pipeline_dashboard,
)


def to_json(dashboard: models.Dashboard) -> dict[str, Any]:
    """The dashboard as plain JSON data, exactly as the SDK's encoder writes it."""
    data: dict[str, Any] = json.loads(json.dumps(dashboard, cls=JSONEncoder))
    return data


def all_dashboards() -> list[dict[str, Any]]:
    """Every dashboard as JSON-ready data, overview first."""
    return [to_json(build()) for build in BUILDERS]


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """Fill in ``$name``, ``${name}``, ``${name:format}`` and ``[[name]]``; Grafana's own
    ``$__rate_interval``, ``$__interval`` and ``$__range`` default to GRAFANA_BUILTINS."""
    values = {**GRAFANA_BUILTINS, **variables}

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group is not None)
        if name not in values:
            raise KeyError(f"no value given for the template variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def panel_queries(
    dashboard: Mapping[str, Any], variables: Mapping[str, str] | None = None
) -> list[str]:
    """Every panel target's PromQL, in panel order. With ``variables`` (e.g.
    ``{"site": "SITE-01"}``) template variables are substituted and a missing one is a
    KeyError; without, the expressions are returned as stored."""
    exprs: list[str] = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets") or []:
            expr = target.get("expr", "")
            exprs.append(expr if variables is None else substitute(expr, variables))
    return exprs
