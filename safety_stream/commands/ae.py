"""``safety-stream ae AE_ID``: one AE's current version and every version of it (who recorded
it, when, what it set, why), as the board's AE page shows it, from the store.

The id may be a unique prefix of at least 4 characters (the board and the listings show 8): a
prefix that matches several AEs is refused with their short ids, one that matches none with
where to look.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any
from uuid import UUID

from safety_stream.errors import UsageError

if TYPE_CHECKING:  # imported when the command runs: `safety-stream --help` stays quick
    from safety_stream.application.drilldown import AeHistoryRead
    from safety_stream.application.review import ReviewReads

MIN_PREFIX = 4
SHOWN_MATCHES = 10


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ae = commands.add_parser("ae", help="one AE with every version (who, when, what, why)")
    ae.add_argument(
        "ae_id", metavar="AE_ID", help="the AE's id, or a unique prefix (at least 4 characters)"
    )
    ae.add_argument("--json", action="store_true", help="machine-readable output")
    ae.add_argument(
        "--db",
        help="store URL (default: $SAFETY_STREAM_DB, else sqlite:///safety-stream.db here)",
    )


def resolve(review: ReviewReads, given: str) -> UUID:
    """The one AE whose id starts with ``given``; UsageError when none or several do."""
    from safety_stream.application.drilldown import ae_ids_with_prefix
    from safety_stream.application.reads import EVERYTHING

    prefix = given.strip().lower()
    if len(prefix) < MIN_PREFIX or any(c not in "0123456789abcdef-" for c in prefix):
        raise UsageError(
            f"{given!r} is not an AE id (a UUID, or a unique prefix of at least {MIN_PREFIX} "
            "hexadecimal characters, as the board and the listings show)"
        )
    matches = ae_ids_with_prefix(review, EVERYTHING, prefix)
    if not matches:
        raise UsageError(f"no AE id starts with {prefix!r} (see GET /v1/adverse-events)")
    if len(matches) > 1:
        shown = ", ".join(str(m)[: max(8, len(prefix) + 4)] for m in matches[:SHOWN_MATCHES])
        more = f" and {len(matches) - SHOWN_MATCHES} more" if len(matches) > SHOWN_MATCHES else ""
        raise UsageError(
            f"{prefix!r} matches {len(matches)} AEs ({shown}{more}): give more of the id"
        )
    return matches[0]


def _document(found: AeHistoryRead) -> dict[str, Any]:
    return {
        "adverse_event": found.row.fields(),
        "versions": [
            {
                "position": v.position,
                "event_type": v.event_type,
                "event_id": v.event_id,
                "reporter": v.reporter,
                "recorded_at": v.recorded_at,
                "stored_at": v.stored_at,
                "changes": v.changes,
                "reason": v.reason,
            }
            for v in found.versions
        ],
    }


def _print(found: AeHistoryRead) -> None:
    ae = found.row.ae
    print(f"AE {ae.ae_id}: {ae.ctcae_term} ({ae.soc}), patient {ae.patient_id}, site {ae.site_id}")
    print(
        f"  grade {ae.grade} now, worst {ae.worst_grade}; onset {ae.onset_date}, "
        f"{ae.status}{f' ({ae.outcome})' if ae.outcome else ''}"
    )
    related = ", ".join(f"{m} {a}" for m, a in ae.attribution.items())
    print(f"  attribution: {related}")
    for number, v in enumerate(found.versions, 1):
        changes = ", ".join(f"{k}={json.dumps(value)}" for k, value in v.changes.items())
        why = f"; reason: {v.reason}" if v.reason else ""
        print(
            f"  {number}. {v.event_type} by {v.reporter}, recorded {v.recorded_at:%Y-%m-%d %H:%M} "
            f"UTC, stored at position {v.position}: {changes}{why}"
        )


def run(db: str, given: str, as_json: bool) -> int:
    from safety_stream.application.drilldown import ae_history
    from safety_stream.application.reads import EVERYTHING
    from safety_stream.application.review import ReviewReads
    from safety_stream.store.opening import open_store

    store = open_store(db, create=False)
    try:
        review = ReviewReads(store)
        found = ae_history(review, EVERYTHING, resolve(review, given))
    finally:
        store.close()
    assert found is not None  # resolved just before, from the same log
    if as_json:
        print(json.dumps(_document(found), indent=2, default=str))
    else:
        _print(found)
    return 0
