"""The board's drill-down pages: the AE listing, one AE's history, a patient's profile, a dead
letter. Server-rendered HTML (no script needed), behind the board's own login.

GET /board/aes                 the AE listing: the API's filters as a GET form, paginated
GET /board/aes.csv             the filtered listing as Excel-safe CSV (all pages, up to
                               EXPORT_LIMIT rows; beyond, the first ones, and it says so)
GET /board/aes/{ae_id}         one AE: its current version and every amendment (who, when, why)
GET /board/patients/{id}       a patient's profile: a timeline (SVG) and the same data as tables
GET /board/rejections/{id}     one dead letter as received, with what was wrong

What a viewer sees is decided by the application's reads: a site sees its own patients and
AEs, and gets 404 for another site's ids (the same page as for an id that does not exist).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Protocol
from urllib.parse import quote, urlencode
from uuid import UUID

from fastapi import FastAPI, Path, Request
from markupsafe import Markup
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from safety_stream.application.drilldown import (
    AeListingRow,
    PatientProfileRead,
    ae_history,
    ae_listing,
    patient_profile,
)
from safety_stream.application.listing_query import (
    FilterError,
    ListingQuery,
    query_from_strings,
)
from safety_stream.application.read_models import DeadLetterRead
from safety_stream.application.review_marks import status_of
from safety_stream.board.render import BoardPages
from safety_stream.board.session import Visitor
from safety_stream.events import Attribution, Modality
from safety_stream.plots import TimelineAe, TimelineInput, patient_timeline
from safety_stream.review.csv_export import stamp, write_csv
from safety_stream.review.listing import STATUSES
from safety_stream.runtime import Runtime

PAGE_SIZE = 50
# At most this many rows in one CSV: they are computed while the review's lock is held (every
# other review read waits), so a download is bounded; beyond it the CSV says it is cut.
EXPORT_LIMIT = 100_000
CSV_COLUMNS = (
    "ae_id", "patient_id", "site_id", "ctcae_term", "soc", "meddra_code", "verbatim_term",
    "grade", "worst_grade", "onset_date", "end_date", "status", "outcome",
    "attribution_radiotherapy", "attribution_chemotherapy", "attribution_immunotherapy",
    "seriousness", "expectedness", "immune_related", "action_taken", "reported_at",
    "first_stored_at", "last_changed_at", "last_changed_position", "amendments",
)  # fmt: skip


class _BoardParts(Protocol):
    runtime: Runtime
    pages: BoardPages

    def visitor(self, request: Request, touch: bool = True) -> Visitor | None: ...


def _login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/board/login?next={quote(target)}", 303)


def csv_row(row: AeListingRow) -> list[object]:
    """One listing row as the CSV's cells, in CSV_COLUMNS order."""
    fields = row.fields()
    attribution = fields.pop("attribution")
    fields.update({f"attribution_{m.value}": attribution.get(m.value) for m in Modality})
    fields["seriousness"] = ";".join(fields["seriousness"])
    return [fields[c] for c in CSV_COLUMNS]


def timeline_input(profile: PatientProfileRead, today: date, related: Attribution) -> TimelineInput:
    """What the patient's timeline draws, from the profile (``related``: the plan's meaning)."""
    aes = [
        TimelineAe(
            label=f"{r.ae.ctcae_term} G{r.ae.worst_grade}",
            grade=r.ae.worst_grade,
            onset=r.ae.onset_date,
            end=r.ae.end_date,
            related=", ".join(f"{m} {r.ae.attribution[m]}" for m in r.ae.related_to(related)),
            href=f"/board/aes/{r.ae.ae_id}",
        )
        for r in profile.aes
        if r.ae.status != "retracted"
    ]
    shown_exit = profile.death or profile.exit  # a later withdrawal record does not hide a death
    last = max(
        [profile.last_data_on or today] + [a.given_at.date() for a in profile.administrations]
    )
    return TimelineInput(
        enrolled=profile.consent_date
        or (profile.enrolled_at.date() if profile.enrolled_at else None),
        administrations=[
            (a.modality, a.given_at.date(), a.dose_reduced) for a in profile.administrations
        ],
        aes=aes,
        labs=[
            (lab.test, lab.collected_at.date(), lab.times_uln)
            for lab in profile.labs
            if lab.times_uln is not None
        ],
        child_pugh=[
            (c.assessed_at.date(), c.score, c.child_pugh_class) for c in profile.child_pugh
        ],
        exit=None if shown_exit is None else (shown_exit.kind, shown_exit.on),
        last_day=last,
    )


def _common(who: Visitor, runtime: Runtime) -> dict[str, Any]:
    return {
        "trial_id": runtime.plan.trial.id,
        "viewer": who.principal.name,
        "site_id": who.principal.sees_site,
        "reader": who.principal.sees_site is None,
        "csrf": who.csrf,
        "session": who.session is not None,
        "as_of": datetime.now(UTC),
        "related_at_least": runtime.plan.related_means_at_least.value,
        "related": runtime.plan.related_means_at_least,
        "here": "AEs",  # the page navigation's current entry
    }


def _not_found(board: _BoardParts, who: Visitor, what: str) -> Response:
    return board.pages.page("board_missing.html.j2", 404, what=what, **_common(who, board.runtime))


def _rule_context(board: _BoardParts, who: Visitor, rule_id: str | None) -> dict[str, Any]:
    """The rule a listing is filtered by: its title, and a lab sentinel's patients."""
    if not rule_id or who.principal.sees_site is not None:
        return {"rule": None, "raised_patients": ()}
    monitor = board.runtime.reads.monitoring(who.principal)
    title = next((s.title for s in monitor.rules if s.rule_id == rule_id), rule_id)
    return {"rule": title, "raised_patients": monitor.raised_patients.get(rule_id, ())}


def _review_marks(
    runtime: Runtime,
    who: Visitor,
    rows: tuple[AeListingRow, ...],
    position: int | None,
    request: Request,
) -> dict[str, Any]:
    """The reader's "new / changed since my last review" marks on the listed AEs, and what
    "Mark all shown as reviewed" posts (readers only: a site has no marks)."""
    if who.principal.sees_site is not None or position is None:
        return {"review": {}, "review_position": None, "review_ids": "", "review_next": ""}
    marks = runtime.marks.review_marks(who.principal, "ae")
    found = {
        r.ae.ae_id: status_of(marks, "ae", r.ae.ae_id, 0, r.last_changed_position or 0)
        for r in rows
    }
    query = f"?{request.url.query}" if request.url.query else ""
    return {
        "review": {ae_id: status for ae_id, status in found.items() if status},
        "review_position": position,
        "review_ids": ",".join(r.ae.ae_id for r in rows),
        "review_next": f"{request.url.path}{query}",
    }


def add_review_routes(app: FastAPI, board: _BoardParts) -> None:
    """Serve the drill-down pages from ``app`` (``board`` is the board's shared parts)."""
    _add_listing_routes(app, board)
    _add_record_routes(app, board)


def _add_listing_routes(app: FastAPI, board: _BoardParts) -> None:
    runtime = board.runtime

    @app.get("/board/aes", include_in_schema=False)
    def listing(request: Request) -> Response:
        who = board.visitor(request)
        if who is None:
            return _login(request)
        given = dict(request.query_params)
        error, matching, more, position = None, 0, False, None
        rows: tuple[AeListingRow, ...] = ()
        cursor = given.get("after", "")
        after = int(cursor) if cursor.isascii() and cursor.isdigit() and len(cursor) < 19 else 0
        try:
            query = query_from_strings(given)
            chosen = query.to_filter(runtime.plan, who.principal, runtime.reads)
            found = ae_listing(runtime.review, who.principal, chosen, after, PAGE_SIZE)
            rows, matching, more, position = found.rows, found.matching, found.more, found.position
        except FilterError as problem:
            query, error = ListingQuery(), problem
        parameters = {k: v for k, v in given.items() if k != "after" and v}
        return board.pages.page(
            "board_aes.html.j2",
            400 if error else 200,
            form=given,
            error=error,
            rows=rows,
            matching=matching,
            after=after,
            next_link="?" + urlencode(parameters | {"after": rows[-1].number})
            if more and rows
            else None,
            first_link="?" + urlencode(parameters) if after else None,
            csv_link="/board/aes.csv" + ("?" + urlencode(parameters) if parameters else ""),
            export_limit=EXPORT_LIMIT,
            modalities=[(m.value, m.value) for m in Modality],
            attributions=[(a.value, a.value) for a in Attribution],
            statuses=[(s, s) for s in STATUSES],
            **_rule_context(board, who, query.rule),
            **_common(who, runtime),
            **_review_marks(runtime, who, rows, position, request),
        )

    @app.get("/board/aes.csv", include_in_schema=False)
    def listing_csv(request: Request) -> Response:
        who = board.visitor(request)
        if who is None:
            return _login(request)
        try:
            query = query_from_strings(dict(request.query_params))
            chosen = query.to_filter(runtime.plan, who.principal, runtime.reads)
        except FilterError as problem:
            return PlainTextResponse(str(problem), 400)
        # the rows are computed under the review's lock; the CSV is written after it is released
        found = ae_listing(runtime.review, who.principal, chosen, 0, EXPORT_LIMIT)
        text = write_csv(CSV_COLUMNS, (csv_row(r) for r in found.rows), excel_safe=True)
        provenance = stamp(found.position, found.chain_head, datetime.now(UTC))
        return Response(
            text.encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
                **provenance.headers(),
                **_cut_headers(len(found.rows), found.matching),
            },
        )


def _cut_headers(written: int, matching: int) -> dict[str, str]:
    """The download's name, and (when EXPORT_LIMIT cut it) a header saying how much it holds:
    the file's name says so too, so a saved file is not taken for the whole listing."""
    if written >= matching:
        return {"Content-Disposition": 'attachment; filename="adverse-events.csv"'}
    name = f"adverse-events-first-{written}-of-{matching}.csv"
    return {
        "Content-Disposition": f'attachment; filename="{name}"',
        "X-Export-Truncated": f"first {written} of {matching} rows",
    }


def _add_record_routes(app: FastAPI, board: _BoardParts) -> None:
    runtime = board.runtime

    @app.get("/board/aes/{ae_id}", include_in_schema=False)
    def ae_page(ae_id: str, request: Request) -> Response:
        who = board.visitor(request)
        if who is None:
            return _login(request)
        try:
            wanted = UUID(ae_id)
        except ValueError:
            return _not_found(board, who, "adverse event")
        found = ae_history(runtime.review, who.principal, wanted)
        if found is None:
            return _not_found(board, who, "adverse event")  # nor another site's
        return board.pages.page("board_ae.html.j2", ae=found, **_common(who, runtime))

    @app.get("/board/patients/{patient_id}", include_in_schema=False)
    def patient_page(patient_id: str, request: Request) -> Response:
        who = board.visitor(request)
        if who is None:
            return _login(request)
        found = patient_profile(runtime.review, who.principal, patient_id)
        if found is None:
            return _not_found(board, who, "patient")  # never confirm another site's ids
        common = _common(who, runtime)
        plot = patient_timeline(
            timeline_input(found, common["as_of"].date(), common["related"]),
            title=f"Patient {found.patient_id}: course on study",
        )
        return board.pages.page(
            "board_patient.html.j2", patient=found, timeline=Markup(plot), **common
        )

    @app.get("/board/rejections/{rejection_id}", include_in_schema=False)
    def rejection_page(
        rejection_id: Annotated[int, Path(ge=1, le=2**63 - 1)], request: Request
    ) -> Response:
        who = board.visitor(request)
        if who is None:
            return _login(request)
        found = runtime.reads.rejection(who.principal, rejection_id)
        if found is None:
            return _not_found(board, who, "dead letter")
        return board.pages.page(
            "board_rejection.html.j2",
            letter=DeadLetterRead.of(found),
            **_common(who, runtime),
        )
