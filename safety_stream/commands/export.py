"""``safety-stream export``: SDTM-shaped datasets (AE, SUPPAE, DM, EX, LB, DS) for a
statistician, as CSV and/or SAS transport, as of a clinical cut-off and a snapshot of the log.

The log is folded as the DSMB report folds it (``report.snapshot.snapshot_as_of``: the hash
chain is verified on the way, the cut-off selects events by their clinical date), and the
datasets are built from that fold (``review.sdtm``). ``manifest.json`` beside the files names
the log position and chain head they came from, the snapshot time, the cut-off, the version of
this software, and each file's row count and SHA-256.

The store is only read: its schema is checked, never migrated; a SQLite file that does not
exist is an error (exit status 2) rather than a new, empty store, and a store whose schema is
behind this version's is refused (exit status 1, naming ``safety-stream db upgrade``), as for
``report`` and ``verify``. Nothing is written before the store has been read and every file
encoded.
"""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from safety_stream.commands.report import DATE_FORMS, DAY, parse_moment
from safety_stream.errors import UsageError

if TYPE_CHECKING:
    from safety_stream.exporting.files import Format

FORMATS: dict[str, tuple[Format, ...]] = {"csv": ("csv",), "xpt": ("xpt",), "both": ("csv", "xpt")}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = commands.add_parser(
        "export",
        help="SDTM-shaped datasets (AE, SUPPAE, DM, EX, LB, DS) as CSV or SAS transport",
        description="Write the trial's SDTM-shaped datasets (AE with SUPPAE per-modality "
        "attribution, DM, EX, LB, DS) as of a clinical cut-off, as CSV and/or SAS transport "
        "(XPT v5), with manifest.json naming the log position and chain head they came from "
        "and each file's SHA-256. The store is only read. Files of the same names in --out "
        "are replaced.",
    )
    export.add_argument(
        "--db",
        help="store URL, e.g. sqlite:///trial.db or postgresql://user@host/db "
        "(default: $SAFETY_STREAM_DB, else sqlite:///safety-stream.db in this directory)",
    )
    export.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="directory to write into"
    )
    export.add_argument(
        "--cutoff",
        metavar="YYYY-MM-DD",
        help="clinical data cut-off: only what is dated on or before it (onset, dose, lab "
        "draw, death...) (default: everything stored)",
    )
    export.add_argument(
        "--as-of",
        metavar="TIME",
        help=f"the database state used: events stored by then ({DATE_FORMS}) "
        "(default: everything stored now)",
    )
    export.add_argument(
        "--format",
        dest="export_format",
        choices=sorted(FORMATS),
        default="csv",
        help="csv (default), xpt (SAS transport v5: needs pip install "
        "'safety-stream[export]') or both",
    )
    export.add_argument(
        "--excel-safe",
        action="store_true",
        help="neutralise spreadsheet formulas in the CSV: a cell starting with = + - @ (not a "
        "plain number), a tab or a carriage return gets a leading '",
    )
    export.add_argument("--plan", type=Path, help="monitoring plan (default: SPARKLE-L)")


def parse_cutoff(text: str | None) -> date | None:
    if text is None:
        return None
    if not DAY.fullmatch(text.strip()):
        raise UsageError(f"--cutoff: expected YYYY-MM-DD; got {text!r}")
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--cutoff: {text!r} is not a date") from None


def check_out(out: Path) -> None:
    """``--out`` must be a directory or not exist yet (its parent is created if needed)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is not a directory")


def run(args: argparse.Namespace) -> int:
    # imported here: ``safety-stream --help`` and the other commands need none of it
    from safety_stream import __version__
    from safety_stream.exporting.files import write_exports
    from safety_stream.report.snapshot import snapshot_as_of
    from safety_stream.review.csv_export import stamp
    from safety_stream.review.sdtm import sdtm_datasets
    from safety_stream.runtime import load_plan_or_default
    from safety_stream.settings import Settings
    from safety_stream.store.opening import open_store

    cutoff = parse_cutoff(args.cutoff)
    try:
        as_of = datetime.now(UTC) if args.as_of is None else parse_moment(args.as_of, "--as-of")
    except ValueError as error:  # report's UsageError is a ValueError
        raise UsageError(str(error)) from None
    check_out(args.out)
    formats = FORMATS[args.export_format]
    if "xpt" in formats:  # say which extra is missing before reading anything
        import pandas  # noqa: F401
        import pyreadstat  # noqa: F401
    plan = load_plan_or_default(args.plan)
    store = open_store(args.db or Settings().db, create=False)  # never creates one
    try:
        snapshot = snapshot_as_of(store, plan, as_of, cutoff)
    finally:
        store.close()
    if snapshot.events == 0:
        by = " stored by --as-of" if args.as_of is not None else ""
        raise UsageError(f"the store holds no event{by}: nothing to export")
    datasets = sdtm_datasets(snapshot.review(), cutoff)
    provenance = stamp(snapshot.position, snapshot.chain_head, as_of, cutoff)
    manifest = write_exports(
        datasets, args.out, formats, args.excel_safe, provenance, __version__,
        snapshot.last_stored_at,
    )  # fmt: skip
    counts = ", ".join(f"{key} {len(d.rows)}" for key, d in datasets.items())
    print(
        f"wrote {len(manifest['files'])} files and manifest.json to {args.out} "
        f"(rows: {counts}); log position {snapshot.position}, chain head {snapshot.chain_head}"
    )
    return 0
