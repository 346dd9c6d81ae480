"""``safety-stream monitor --plan PLAN.yaml FILE...``: a dry-run fold for statisticians.

Each file (NDJSON, JSON or EDC CSV, read as ``validate`` reads them) is one independent trial
history, folded in memory through validation, projection and the monitor; nothing is stored.
The monitoring clock ends at ``--now`` (default: the latest time in the file). Exit status 0,
or 1 when any record was rejected (each listed).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from safety_stream.errors import UsageError
from safety_stream.monitoring.dryrun import Folded, fold
from safety_stream.monitoring.status import rule_statuses
from safety_stream.plan import MonitoringPlan
from safety_stream.validation.records import InputFormat, sniff_format
from safety_stream.validation.validator import read_records


def parse_now(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--now: {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise UsageError(f"--now: {text!r} has no UTC offset (e.g. 2026-12-31T00:00:00Z)")
    return moment


def fold_file(plan: MonitoringPlan, path: str, now: datetime | None) -> Folded:
    try:
        with Path(path).open("rb") as stream:
            head = stream.peek(4096)[:4096]
            input_format = sniff_format(head, path)
            return fold(
                plan,
                read_records(stream, input_format),
                now=now,
                csv=input_format is InputFormat.CSV,
            )
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror or error}") from None


def summary(path: str, folded: Folded) -> dict[str, Any]:
    crossings: dict[str, str] = {}  # when each crossing is seen with timely data
    for derived in folded.derived:
        if derived.kind == "boundary.crossed" and derived.rule_id not in crossings:
            seen = derived.details.get("crossed_with_data_of")
            crossings[derived.rule_id] = seen or derived.occurred_at.isoformat()
    rules = []
    for status in rule_statuses(folded.monitor):
        first = crossings.get(status.rule_id)
        rules.append(
            {
                "id": status.rule_id,
                "kind": status.kind,
                "status": status.status,
                "ever_crossed": first is not None or status.status == "crossed",
                "n": status.n,
                "x": status.x,
                "first_crossed_at": first.replace("+00:00", "Z") if first else None,
            }
        )
    return {"file": path, "stored": folded.stored, "rejected": folded.rejected, "rules": rules}


def run(plan: MonitoringPlan, paths: list[str], now_text: str | None, as_json: bool) -> int:
    now = parse_now(now_text)
    files = []
    rejected = 0
    for path in paths:
        folded = fold_file(plan, path, now)
        rejected += folded.rejected
        files.append(summary(path, folded))
        if not as_json:
            for location, problem in folded.problems:
                print(f"{path}: {location}: {problem}", file=sys.stderr)
    if as_json:
        print(json.dumps({"files": files}, indent=2))
        return 1 if rejected else 0
    for document in files:
        print(
            f"{document['file']}: {document['stored']} stored, {document['rejected']} rejected "
            f"(plan {plan.version})"
        )
        for rule in document["rules"]:
            counts = "" if rule["n"] is None else f" {rule['x']} of {rule['n']:g}"
            crossed = (
                f"; first crossed {rule['first_crossed_at']}" if rule["first_crossed_at"] else ""
            )
            print(f"  {rule['id']:<28} {rule['kind']:<17} {rule['status']:<17}{counts}{crossed}")
    return 1 if rejected else 0
