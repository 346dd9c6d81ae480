"""``safety-stream decide``: record a DSMB decision on crossed rules or raised sentinels.

The decision is appended to the log (validated and hash-chained like every event); the rules it
answers are released from their "awaiting DSMB decision" latch, and ``pause_enrolment`` makes
the server refuse new enrolments until a later ``resume_enrolment``.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from safety_stream.ctcae import ctcae_dictionary
from safety_stream.errors import UsageError
from safety_stream.events import DecisionOutcome, Modality
from safety_stream.governance import DecisionError, build_decision, record_decision
from safety_stream.store.opening import open_store


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    decide = commands.add_parser(
        "decide", help="record a DSMB decision (releases the latch of the rules it answers)"
    )
    decide.add_argument(
        "--rule", action="append", required=True, metavar="RULE_ID",
        help="a rule the decision answers (repeat for several)",
    )  # fmt: skip
    decide.add_argument(
        "--outcome", required=True, choices=[o.value for o in DecisionOutcome],
        help="what the DSMB decided",
    )  # fmt: skip
    decide.add_argument("--rationale", required=True, help="the reasons, as minuted")
    decide.add_argument("--by", required=True, help="who records it (a DSMB member or officer)")
    decide.add_argument(
        "--modality", choices=[m.value for m in Modality], help="with stop_modality: which"
    )
    decide.add_argument("--plan", type=Path, help="monitoring plan (default: SPARKLE-L)")
    decide.add_argument(
        "--db",
        help="store URL (default: $SAFETY_STREAM_DB, else sqlite:///safety-stream.db here)",
    )


def run(args: argparse.Namespace, db: str) -> int:
    from safety_stream.runtime import load_plan_or_default

    plan = load_plan_or_default(args.plan)
    try:
        decision = build_decision(
            plan, args.rule, args.outcome, args.rationale, args.by, datetime.now(UTC),
            args.modality,
        )  # fmt: skip
    except DecisionError as error:
        raise UsageError(str(error)) from None
    store = open_store(db, create=False)
    try:
        report = record_decision(store, ctcae_dictionary(), decision, f"cli:{args.by}")
    finally:
        store.close()
    (outcome,) = report.outcomes
    if outcome.status != "stored":
        raise UsageError("; ".join(p.message for p in outcome.problems))
    print(
        f"recorded decision {decision.event_id} at position {outcome.position}: "
        f"{decision.outcome} on {', '.join(decision.answers)}"
    )
    return 0
