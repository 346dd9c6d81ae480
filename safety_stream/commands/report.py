"""``safety-stream report``: the DSMB safety report as of a date, open or closed, HTML or PDF.

The store is only read: its schema is checked, never migrated, and a SQLite file that does
not exist is an error rather than a new, empty store.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from safety_stream.report.model import ReportVersion
    from safety_stream.settings import Settings
    from safety_stream.store.base import EventStore
    from safety_stream.store.checkpoint import Checkpoint

DATE_FORMS = (
    "YYYY-MM-DD (the end of that day, UTC) or an ISO 8601 time with a UTC offset, "
    "e.g. 2026-06-30T18:00:00+02:00 or 2026-06-30T16:00:00Z"
)
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class UsageError(ValueError):
    pass


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report",
        help="the DSMB safety report as of a date (HTML or PDF)",
        description="Write the DSMB safety report from the event log as it stood at a cut-off: "
        "toxicity tables, stopping rules with their plots, SAE and death listings, "
        "expedited-report timeliness and changes since the previous report. The same log "
        "and options always give the same HTML file.",
    )
    report.add_argument(
        "--db",
        help="store URL, e.g. sqlite:///trial.db or postgresql://user@host/db "
        "(default: $SAFETY_STREAM_DB, else sqlite:///safety-stream.db in this directory)",
    )
    report.add_argument("--plan", type=Path, help="monitoring plan (default: SPARKLE-L)")
    report.add_argument(
        "--cutoff",
        metavar="YYYY-MM-DD",
        help="clinical data cut-off: events whose clinical date (onset, treatment, lab draw, "
        "death...) is on or before it; rules are judged at the end of that day",
    )
    report.add_argument(
        "--snapshot",
        metavar="TIME|POSITION",
        help=f"the database state used: events stored by then ({DATE_FORMS}), or up to a log "
        "position (default: everything stored now)",
    )
    report.add_argument(
        "--as-of",
        metavar="DATE",
        help=f"deprecated: events stored by then ({DATE_FORMS}); use --cutoff and --snapshot",
    )
    report.add_argument(
        "--since",
        metavar="DATE",
        help="the previous report's cut-off (--cutoff, or --as-of): adds what changed since",
    )
    report.add_argument(
        "--version",
        dest="report_version",
        choices=["open", "closed"],
        default="open",
        help="open (default): pooled data for sponsor, investigators and DSMB, nothing "
        "patient-level; closed: DSMB members only, with patient listings and per-site tables",
    )
    report.add_argument(
        "--format",
        dest="report_format",
        choices=["html", "pdf"],
        default="html",
        help="html (default): one self-contained file; pdf: printed by headless Chromium",
    )
    report.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="file to write (default: dsmb-report-DATE-VERSION.html|pdf here)",
    )
    report.add_argument(
        "--chromium",
        metavar="PATH",
        help="Chromium for --format pdf (default: chromium, chromium-browser or google-chrome)",
    )


def parse_moment(text: str, option: str) -> datetime:
    """A cut-off: a day means its last microsecond in UTC; a time must carry its offset."""
    text = text.strip()
    try:
        if DAY.fullmatch(text):
            following = date.fromisoformat(text) + timedelta(days=1)
            return datetime.combine(following, time.min, UTC) - timedelta(microseconds=1)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option}: expected {DATE_FORMS}; got {text!r}") from None
    if moment.tzinfo is None:
        raise UsageError(f"{option}: {text!r} has no UTC offset; expected {DATE_FORMS}")
    return moment.astimezone(UTC)


def default_out(as_of: datetime, version: ReportVersion, fmt: str) -> Path:
    return Path(f"dsmb-report-{as_of.date().isoformat()}-{version}.{fmt}")


def run(args: argparse.Namespace) -> int:
    # imported here: ``safety-stream --help`` and the other commands need none of it
    from safety_stream.errors import SafetyStreamError
    from safety_stream.report.model import build_report
    from safety_stream.report.pdf import find_chromium, print_to_pdf
    from safety_stream.report.render import render_html
    from safety_stream.report.snapshot import snapshot_as_of
    from safety_stream.runtime import load_plan_or_default
    from safety_stream.settings import Settings
    from safety_stream.store.opening import open_store

    version: ReportVersion = args.report_version
    try:
        selection = parse_selection(args)
        as_of, cutoff, upto = selection
        since = None if args.since is None else parse_moment(args.since, "--since")
        if since is not None and since >= (end_of(cutoff) if cutoff else as_of):
            raise UsageError(f"--since ({since.isoformat()}) must be before the cut-off")
    except UsageError as error:
        print(f"safety-stream report: {error}", file=sys.stderr)
        return 2

    try:
        plan = load_plan_or_default(args.plan)
        chromium = find_chromium(args.chromium) if args.report_format == "pdf" else None
        settings = Settings()
        store = open_store(args.db or settings.db, create=False)  # never creates one
        try:
            now = snapshot_as_of(store, plan, as_of, cutoff, upto)
            before = (
                None
                if since is None
                else snapshot_as_of(store, plan, since, None if cutoff is None else since.date())
            )
            checkpoint = write_report_checkpoint(store, settings)
        finally:
            store.close()
        if now.included == 0:
            what = f"dated on or before {cutoff}" if cutoff else "stored by the snapshot"
            print(
                f"safety-stream report: no event {what} (the log holds {now.events} events by "
                "the snapshot): nothing to report; check --cutoff and --snapshot",
                file=sys.stderr,
            )
            return 1
        html = render_html(build_report(now, before, version))
        out = args.out or default_out(end_of(cutoff) if cutoff else as_of, version,
                                      args.report_format)  # fmt: skip
        if version == "closed":  # patient-level listings: readable by the owner only
            out.touch(mode=0o600)
            out.chmod(0o600)
        if chromium is not None:
            print_to_pdf(html, out, chromium)
            if version == "closed":
                out.chmod(0o600)
        else:
            out.write_bytes(html.encode("utf-8"))
    except SafetyStreamError as error:
        print(f"safety-stream report: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        print(f"safety-stream report: {error}", file=sys.stderr)
        return 1
    if as_of > datetime.now(UTC):
        print(
            "safety-stream report: warning: --as-of is in the future; events stored before "
            "then will change the report (it names the log position it was built from)",
            file=sys.stderr,
        )
    if args.as_of is not None:
        print(
            "safety-stream report: note: --as-of is deprecated: use --cutoff (clinical dates) "
            "and --snapshot (what was stored by then)",
            file=sys.stderr,
        )
    data = f"clinical cut-off {cutoff}, snapshot" if cutoff else "data as of"
    print(f"wrote {out}: {version} report, {data} {as_of.isoformat()}, log position {now.position}")
    if checkpoint is not None:
        print(f"checkpoint: position {checkpoint.position} signed in {settings.checkpoint_file}")
    return 0


def write_report_checkpoint(store: EventStore, settings: Settings) -> Checkpoint | None:
    """A signed checkpoint of the log's head, when a checkpoint key is configured; a failure
    is a warning (the report is written), saying why."""
    from safety_stream.store.checkpoint import CheckpointError, write_configured_checkpoint

    try:
        return write_configured_checkpoint(store, settings)
    except (CheckpointError, OSError) as error:
        print(f"safety-stream report: warning: no checkpoint written: {error}", file=sys.stderr)
        return None


def end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, UTC) - timedelta(microseconds=1)


def parse_selection(args: argparse.Namespace) -> tuple[datetime, date | None, int | None]:
    """(stored by, clinical cut-off, last log position) from --cutoff, --snapshot, --as-of."""
    if args.as_of is not None and (args.cutoff is not None or args.snapshot is not None):
        raise UsageError("--as-of is the old form of --snapshot: give one or the other")
    if args.as_of is None and args.cutoff is None and args.snapshot is None:
        raise UsageError("give --cutoff YYYY-MM-DD (and --snapshot to fix the database state)")
    cutoff = None
    if args.cutoff is not None:
        if not DAY.fullmatch(args.cutoff.strip()):
            raise UsageError(f"--cutoff: expected YYYY-MM-DD; got {args.cutoff!r}")
        try:
            cutoff = date.fromisoformat(args.cutoff.strip())
        except ValueError:
            raise UsageError(f"--cutoff: {args.cutoff!r} is not a date") from None
    upto = None
    stored_by = datetime.now(UTC)
    if args.as_of is not None:
        stored_by = parse_moment(args.as_of, "--as-of")
    elif args.snapshot is not None and args.snapshot.strip().isdigit():
        upto = int(args.snapshot)
    elif args.snapshot is not None:
        stored_by = parse_moment(args.snapshot, "--snapshot")
    return stored_by, cutoff, upto
