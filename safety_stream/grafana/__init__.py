"""Grafana dashboards as code (grafana-foundation-sdk, Grafana 11.6) and their delivery.

``dashboards`` builds the dashboards; ``push`` uploads them through the Grafana HTTP API or
writes them as JSON files for file provisioning (``deploy/grafana/dashboards``).
"""

from safety_stream.grafana.dashboards import all_dashboards, panel_queries
from safety_stream.grafana.overview import overview_dashboard
from safety_stream.grafana.pipeline import pipeline_dashboard
from safety_stream.grafana.sites import sites_dashboard

__all__ = [
    "all_dashboards",
    "overview_dashboard",
    "panel_queries",
    "pipeline_dashboard",
    "sites_dashboard",
]
