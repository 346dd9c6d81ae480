"""The safety board's view model: what one principal may see, read from the runtime.

``gather`` reads the runtime (the projection under its lock, as the API does; the outbox; the
dead-letter store) into a ``Snapshot``; ``build_view`` is a pure function of the snapshot and
the principal, and is the one place that decides what a viewer sees: readers everything, a site
only its own rows and no trial-wide rules or alerts (the API answers 403 to sites for those).
The toxicity numbers are the API's own: both come from ``toxicity_tables``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from markupsafe import Markup

from safety_stream.alerts.outbox import AlertView
from safety_stream.alerts.triage import AlertTriage
from safety_stream.application.read_models import DeadLetterRead
from safety_stream.application.reads import ReadSnapshot
from safety_stream.auth import Principal
from safety_stream.board.alert_rows import AlertRow, alert_rows
from safety_stream.board.health import SiteSubmissions, SubmissionTally
from safety_stream.board.site_view import SiteOwn, site_own
from safety_stream.events import DSMB_STREAM, SERVER_SITE
from safety_stream.monitoring.monitor import EPOCH
from safety_stream.monitoring.status import ReportClockOut, RuleStatus
from safety_stream.plots import boundary_plot
from safety_stream.projections.toxicity import ModalityTable
from safety_stream.review.dataset import ReviewData
from safety_stream.runtime import Runtime
from safety_stream.store.base import Rejection

ROLE_LABELS = {
    "safety_officer": "safety officer",
    "dsmb": "DSMB member",
    "admin": "administrator",
    "site": "site",
}
DEAD_LETTERS_SHOWN = 50
NOT_SITES = frozenset({DSMB_STREAM, SERVER_SITE})
"""The trial's own streams (DSMB decisions and triage steps, the server's clock ticks): in the
log like every event, but no site's submissions."""
EXCERPT_CHARS = 240
CLOCK_ORDER = {"overdue": 0, "open": 1, "closed": 2}


@dataclass(frozen=True)
class Snapshot:
    """What the board shows, read at one moment; scoped to a site where the reads allow it."""

    trial_id: str
    trial_title: str
    registration: str
    plan_version: str
    related_at_least: str  # the plan's meaning of "related" (an attribution)
    as_of: datetime
    stamp: str
    position: int
    clock: datetime | None  # the monitoring clock (log time); None before the first event
    toxicity: list[ModalityTable]
    patients_by_site: dict[str, int]
    statuses: list[RuleStatus]
    late_saes_by_site: dict[str, int]
    plots: dict[str, str]  # rule id -> inline SVG
    open_alerts: list[AlertView]
    acknowledged_alerts: int
    submissions: list[SiteSubmissions]
    dead_letters: list[Rejection]
    quarantined: list[int]  # log positions of stored events the monitor could not process
    alerts: list[AlertView] = field(default_factory=list)  # every alert (readers only)
    triage: Mapping[UUID, AlertTriage] = field(default_factory=dict)  # alerts' triage
    alert_marks: Mapping[tuple[str, str], int] = field(default_factory=dict)  # the reader's
    site_own: SiteOwn | None = None  # a site's own view (sites only)


@dataclass(frozen=True)
class RuleCard:
    rule: RuleStatus
    plot: Markup  # boundary_plot escapes its own text


@dataclass(frozen=True)
class SiteHealth:
    submissions: SiteSubmissions
    patients: int
    late_saes: int = 0  # serious AEs the server received > 24 h after the site recorded them


@dataclass(frozen=True)
class BoardView:
    trial_id: str
    trial_title: str
    registration: str
    plan_version: str
    related_at_least: str
    viewer: str
    role_label: str
    site_id: str | None  # the one site this viewer sees, None for all
    can_acknowledge: bool
    can_decide: bool  # a dsmb or safety_officer credential records DSMB decisions
    as_of: datetime
    stamp: str
    position: int | None  # the log's position and clock are trial-wide: None for a site
    clock: datetime | None
    toxicity: list[ModalityTable]
    rules: list[RuleCard] | None  # None: not for this viewer
    sentinels: list[RuleStatus] | None
    clocks: list[ReportClockOut] | None
    alerts: list[AlertRow] | None  # open (not closed): most severe first, then newest
    acknowledged_alerts: int
    sites: list[SiteHealth]
    dead_letters: list[DeadLetterRead]
    illustrative: bool
    quarantined: list[int]  # trial-wide: empty for a site
    closed_alerts: list[AlertRow] = field(default_factory=list)
    site_own: SiteOwn | None = None  # a site's own view: its clocks, lateness, what to fix

    @property
    def unreviewed_alerts(self) -> int:
        """Open alerts new or changed since this reader marked them reviewed."""
        return sum(a.review is not None for a in self.alerts or [])

    @property
    def crossed(self) -> int:
        return sum(c.rule.status == "crossed" for c in self.rules or [])

    @property
    def awaiting_decision(self) -> int:
        """Crossed rules and raised sentinels the DSMB has not decided on yet (latched)."""
        rules = sum(c.rule.awaiting_decision for c in self.rules or [])
        return rules + sum(s.awaiting_decision for s in self.sentinels or [])

    @property
    def approached(self) -> int:
        return sum(c.rule.status == "approached" for c in self.rules or [])

    @property
    def sentinels_raised(self) -> int:
        return sum(s.status == "crossed" for s in self.sentinels or [])

    @property
    def critical_alerts(self) -> int:
        return sum(a.alert.severity == "critical" for a in self.alerts or [])

    def clocks_in(self, state: str) -> list[ReportClockOut]:
        return [c for c in self.clocks or [] if c.state == state]


def excerpt(letter: DeadLetterRead) -> str:
    """The beginning of what was received, as text (the board's dead-letter table)."""
    raw = letter.raw.decode("utf-8", errors="replace")
    return raw if len(raw) <= EXCERPT_CHARS else raw[: EXCERPT_CHARS - 1] + "…"


def build_view(snapshot: Snapshot, principal: Principal) -> BoardView:
    """What ``principal`` may see of ``snapshot`` (pure)."""
    site = principal.sees_site
    reader = site is None
    counting = [s for s in snapshot.statuses if s.kind in ("bayesian", "pocock")]
    reporting = next((s for s in snapshot.statuses if s.kind == "expedited_report"), None)
    clocks = sorted(
        reporting.clocks or [] if reporting else [],
        key=lambda c: (CLOCK_ORDER[c.state], c.due),
    )
    submissions = [
        s
        for s in snapshot.submissions
        if (reader and s.site_id not in NOT_SITES) or (site is not None and s.site_id == site)
    ]
    open_rows, closed_rows = alert_rows(snapshot.alerts, snapshot.triage, snapshot.alert_marks)
    return BoardView(
        trial_id=snapshot.trial_id,
        trial_title=snapshot.trial_title,
        registration=snapshot.registration,
        plan_version=snapshot.plan_version,
        related_at_least=snapshot.related_at_least,
        viewer=principal.name,
        role_label=ROLE_LABELS[principal.role],
        site_id=site,
        can_acknowledge=reader,
        can_decide=principal.role in ("dsmb", "safety_officer"),
        as_of=snapshot.as_of,
        stamp=snapshot.stamp,
        position=snapshot.position if reader else None,
        clock=snapshot.clock if reader else None,
        toxicity=[
            t.model_copy(update={"by_site": [r for r in t.by_site if r.site_id == site]})
            if site is not None
            else t
            for t in snapshot.toxicity
        ],
        rules=[RuleCard(s, Markup(snapshot.plots.get(s.rule_id, ""))) for s in counting]
        if reader
        else None,
        sentinels=[s for s in snapshot.statuses if s.kind == "sentinel"] if reader else None,
        clocks=clocks if reader else [c for c in clocks if c.site_id == site],
        alerts=open_rows if reader else None,
        closed_alerts=closed_rows if reader else [],
        site_own=snapshot.site_own
        if site is not None and snapshot.site_own is not None and snapshot.site_own.site_id == site
        else None,
        acknowledged_alerts=snapshot.acknowledged_alerts if reader else 0,
        sites=[
            SiteHealth(
                s,
                snapshot.patients_by_site.get(s.site_id or "", 0),
                snapshot.late_saes_by_site.get(s.site_id or "", 0),
            )
            for s in submissions
        ],
        dead_letters=[
            DeadLetterRead.of(r) for r in snapshot.dead_letters if reader or r.site_id == site
        ][:DEAD_LETTERS_SHOWN],
        illustrative=reader and any(s.illustrative for s in snapshot.statuses),
        quarantined=snapshot.quarantined if reader else [],
    )


def change_stamp(runtime: Runtime, principal: Principal, tally: SubmissionTally) -> str:
    """Changes whenever what ``principal`` sees may have changed (the live board's trigger).

    A site's stamp counts only its own submissions, so it never learns when others post.
    """
    site = principal.sees_site
    if site is not None:
        tally.refresh(runtime.store)
        row = tally.rows(site)[0]
        return f"s{row.events}.{row.dead_letters}"
    newest = runtime.store.rejections(limit=1)
    dead = f"{newest[0].id}x{newest[0].received}" if newest else "0"
    counts = runtime.outbox.counts()
    return f"r{runtime.store.head()}.{dead}.{sum(counts.values())}.{runtime.outbox.last_action()}"


def gather(
    runtime: Runtime, principal: Principal, tally: SubmissionTally, now: datetime | None = None
) -> Snapshot:
    """Read everything ``principal`` may see (sites: nothing trial-wide is even read)."""
    moment = now or datetime.now(UTC)
    site = principal.sees_site
    stamp = change_stamp(runtime, principal, tally)  # first: a later change shows as new
    plan = runtime.plan
    read = runtime.reads.snapshot(principal)  # one position, scoped to what principal sees
    monitor = read.monitor
    assert monitor is not None  # a live snapshot
    toxicity = read.toxicity(moment)
    patients_by_site = Counter(p.site_id for p in read.patients.values())
    late_saes = Counter(read.aes[ae_id].site_id for ae_id in monitor.late_aes)
    statuses = list(monitor.rules)  # a site is shown its own report clocks only
    plots = {
        counter.rule_id: boundary_plot(
            counter.table,
            list(counter.path),
            counter.max_n,
            title=counter.title,
            status=counter.status,
        )
        for counter in monitor.counting  # none for a site
    }
    tally.refresh(runtime.store)
    every_alert = runtime.outbox.alerts(limit=10_000, by_severity=True) if site is None else []
    unacknowledged = sorted(
        (v for v in every_alert if v.acknowledged_at is None), key=lambda v: -v.number
    )
    acknowledged = (
        sum(n for (_, s), n in runtime.outbox.counts().items() if s == "acknowledged")
        if site is None
        else 0
    )
    return Snapshot(
        trial_id=plan.trial.id,
        trial_title=plan.trial.title,
        registration=plan.trial.registration,
        plan_version=plan.version,
        related_at_least=plan.related_means_at_least.value,
        as_of=moment,
        stamp=stamp,
        position=read.position or 0,  # None for a site (build_view shows it to readers only)
        clock=None if monitor.clock in (None, EPOCH) else monitor.clock,
        toxicity=toxicity,
        patients_by_site=dict(patients_by_site),
        late_saes_by_site=dict(late_saes),
        statuses=statuses,
        plots=plots,
        open_alerts=unacknowledged,  # newest first
        acknowledged_alerts=acknowledged,
        submissions=tally.rows(site),
        dead_letters=runtime.reads.rejections(principal, limit=DEAD_LETTERS_SHOWN),
        quarantined=list(monitor.quarantined),  # empty for a site
        alerts=every_alert,
        triage=runtime.triage.states(principal) if site is None else {},
        alert_marks=runtime.marks.review_marks(principal, "alert"),  # empty for a site
        site_own=None
        if site is None
        else _site_own(runtime, principal, site, read, patients_by_site[site], tally),
    )


def _site_own(
    runtime: Runtime,
    principal: Principal,
    site: str,
    read: ReadSnapshot,
    patients: int,
    tally: SubmissionTally,
) -> SiteOwn:
    """A site's own view, from what the reads give that site (its AEs, clocks, dead letters);
    hours left or late are counted to the server's clock (the store's, as receipts are)."""
    monitor = read.monitor
    assert monitor is not None
    late = set(monitor.late_aes)

    def received(data: ReviewData) -> dict[str, datetime]:
        return {
            str(state.ae_id): detail.first_stored_at
            for state, detail in data.aes(include_retracted=True)
            if state.ae_id in late
        }

    stored = runtime.review.read(principal, received) if late else {}
    dead = tally.rows(site)[0].dead_letters
    now = runtime.store.now()
    return site_own(site, patients, read.aes, monitor.report_clocks, late, stored, dead, now)
