"""HTML for the safety board: Jinja2 templates (autoescaped) and the headers every page gets."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.responses import HTMLResponse

from safety_stream.alerts.render import HEADLINES
from safety_stream.board.view import excerpt
from safety_stream.projections.toxicity import Rate

DASH = "—"


def when(moment: datetime | None) -> str:
    return DASH if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def pct(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:.1f}%"


def ci(rate: Rate) -> str:
    """The exact 95% interval in percent, joined by an en dash (a dash alone with no patients)."""
    if rate.n == 0:
        return DASH
    return f"{rate.ci95_low * 100:.1f}\N{EN DASH}{rate.ci95_high * 100:.1f}%"


def ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return ""
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"({seconds // size} {unit} ago)"
    return "(just now)"


class BoardPages:
    """The board's templates, from the package (``safety_stream/templates/board*.html.j2``)."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("safety_stream", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=False,
        )
        self.env.filters.update(when=when, pct=pct, ci=ci, ago=ago, excerpt=excerpt)
        self.env.globals.update(headlines=HEADLINES)

    def render(self, name: str, **context: Any) -> str:
        return self.env.get_template(name).render(**context)

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        """A whole page, with a fresh nonce for its inline style and script."""
        nonce = secrets.token_urlsafe(16)
        return HTMLResponse(
            self.render(name, nonce=nonce, **context), status, headers=page_headers(nonce)
        )

    def fragment(self, name: str, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.render(name, **context), headers=page_headers(None))


def page_headers(nonce: str | None) -> dict[str, str]:
    """No caching (the pages carry patient data), no framing, scripts only with the nonce."""
    source = f"'nonce-{nonce}'" if nonce else "'none'"
    return {
        "Cache-Control": "no-store",
        "Content-Security-Policy": (
            f"default-src 'none'; script-src {source}; style-src {source}; img-src 'self' data:; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
    }
