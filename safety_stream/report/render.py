"""Rendering a report model as one self-contained HTML file (CSS inlined, plots inline SVG).

Jinja2 with autoescape on: every value from the log is escaped. Output depends only on the
model: no clock, no randomness, stable ordering, so the same model gives the same bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from safety_stream.projections.toxicity import Rate
from safety_stream.report.model import Report

MODALITY_ABBREVIATIONS = {"radiotherapy": "RT", "chemotherapy": "CT", "immunotherapy": "IT"}


def utc(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def minutes(moment: datetime | None) -> str:
    """Compact UTC time for table cells (the column header says UTC)."""
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def ci(rate: Rate) -> str:
    if not rate.n:
        return "-"
    return f"{rate.ci95_low * 100:.1f}-{rate.ci95_high * 100:.1f}%"


def css_string(text: str) -> Markup:
    """A quoted CSS string literal (for ``content:``), safe inside a <style> element."""
    escaped = "".join(
        ch if ch.isalnum() or ch in " -_.,:;()/+=" else f"\\{ord(ch):x} " for ch in text
    )
    return Markup(f'"{escaped}"')


def words(text: str) -> str:
    return text.replace("_", " ")


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("safety_stream", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        utc=utc,
        minutes=minutes,
        pct=pct,
        ci=ci,
        css_string=css_string,
        words=words,
        abbreviation=lambda modality: MODALITY_ABBREVIATIONS.get(modality, modality),
    )
    return env


def render_html(report: Report) -> str:
    return environment().get_template("report.html.j2").render(report=report)
