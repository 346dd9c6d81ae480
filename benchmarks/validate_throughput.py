"""Validation throughput against plain ``json.loads`` of the same lines, in one process.

    python benchmarks/validate_throughput.py [--events 100000]

Writes a realistic NDJSON file (enrolments, treatments, AE reports and amendments, labs) to a
temporary directory, then times, best of 3 rounds each:
  baseline  json.loads of every line (no validation at all)
  pydantic  structural validation only (the tagged union's validate_json)
  full      the validation pipeline: read, parse, CTCAE and reference checks
  command   what `safety-stream validate FILE` runs, from opening the file to the summary
and prints records/s and each rate as a ratio of the baseline's (target: validate >= 0.5).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from safety_stream.commands.validate import validate_stream
from safety_stream.ctcae import ctcae_dictionary
from safety_stream.events import event_adapter
from safety_stream.validation.records import read_ndjson
from safety_stream.validation.validator import Validator

TERMS = [
    ("Neutrophil count decreased", 10029366, 3),
    ("Diarrhea", 10012727, 2),
    ("Nausea", 10028813, 1),
    ("Fatigue", 10016256, 2),
    ("Alanine aminotransferase increased", 10001551, 3),
    ("Rash maculo-papular", 10037868, 1),
]
ATTRIBUTIONS = ["unrelated", "unlikely", "possible", "probable", "definite"]


def make_events(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events: list[dict[str, Any]] = []
    patients: list[tuple[str, str, list[str]]] = []

    def envelope(kind: str, site: str, patient: str, when: datetime) -> dict[str, Any]:
        return {
            "event_type": kind,
            "schema_version": 1,
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "trial_id": "SPARKLE-L",
            "site_id": site,
            "patient_id": patient,
            "reporter": "crc.bench",
            "occurred_at": when.isoformat().replace("+00:00", "Z"),
            "recorded_at": (when + timedelta(hours=5)).isoformat().replace("+00:00", "Z"),
        }

    while len(events) < count:
        when = start + timedelta(minutes=len(events))
        if not patients or rng.random() < 0.02:
            site = f"SITE-{rng.randint(1, 12):02d}"
            patient = f"P{len(patients):05d}"
            patients.append((site, patient, []))
            events.append(
                envelope("patient.enrolled", site, patient, when)
                | {"consent_date": when.date().isoformat(), "planned_modalities": ["chemotherapy"]}
            )
            continue
        site, patient, aes = rng.choice(patients)
        roll = rng.random()
        if roll < 0.55:
            term, code, grade = rng.choice(TERMS)
            event = envelope("ae.reported", site, patient, when) | {
                "ctcae_version": "5.0",
                "ctcae_term": term,
                "meddra_code": code,
                "grade": grade,
                "onset_date": when.date().isoformat(),
                "seriousness": [],
                "expectedness": "expected",
                "immune_related": False,
                "attribution": {
                    m: rng.choice(ATTRIBUTIONS)
                    for m in ("radiotherapy", "chemotherapy", "immunotherapy")
                },
                "action_taken": "dose_not_changed",
            }
            aes.append(event["event_id"])
        elif roll < 0.70 and aes:
            event = envelope("ae.resolved", site, patient, when) | {
                "ae_id": rng.choice(aes),
                "outcome": "recovered",
                "end_date": when.date().isoformat(),
            }
        elif roll < 0.85:
            event = envelope("treatment.administered", site, patient, when) | {
                "treatment": {"modality": "chemotherapy", "regimen": "FOLFOX", "cycle": 1}
            }
        else:
            event = envelope("lab.resulted", site, patient, when) | {
                "test": "ALT",
                "value": 31.0,
                "unit": "U/L",
                "uln": 40.0,
            }
        events.append(event)
    return events


def best_of(rounds: int, work: Callable[[], int]) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(rounds):
        started = time.perf_counter()
        count = work()
        best = min(best, time.perf_counter() - started)
    return best, count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    path = Path(tmp.name) / "events.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in make_events(args.events)))
    data = path.read_bytes()
    lines = data.splitlines()
    ctcae_dictionary()
    adapter = event_adapter()

    def baseline() -> int:
        return sum(1 for line in lines if json.loads(line))

    def structural() -> int:
        return sum(1 for line in lines if adapter.validate_json(line) is not None)

    def full() -> int:
        validator = Validator(ctcae_dictionary())
        results = validator.validate(read_ndjson(io.BytesIO(data)))
        valid = sum(1 for r in results if r.valid)
        assert valid == len(lines), f"only {valid} of {len(lines)} benchmark events are valid"
        return valid

    def command() -> int:
        """What `safety-stream validate FILE` runs, file reading included."""
        with path.open("rb") as stream:
            summary = validate_stream(stream, str(path), None, None)
        assert summary.valid == len(lines)
        return summary.valid

    print(f"{len(lines)} events, {len(data) / len(lines):.0f} bytes/event on average")
    base_s, _ = best_of(args.rounds, baseline)
    base_rate = len(lines) / base_s
    print(f"{'json.loads (baseline)':<28} {base_rate:>12,.0f} events/s   ratio 1.00")
    stages = (
        ("pydantic validate_json", structural),
        ("full validation", full),
        ("safety-stream validate FILE", command),
    )
    for name, work in stages:
        seconds, count = best_of(args.rounds, work)
        rate = count / seconds
        print(f"{name:<28} {rate:>12,.0f} events/s   ratio {rate / base_rate:.2f}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
