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
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from safety_stream.commands.validate import validate_stream
from safety_stream.ctcae import ctcae_dictionary
from safety_stream.events import event_adapter
from safety_stream.synthetic import make_events
from safety_stream.validation.records import read_ndjson
from safety_stream.validation.validator import Validator


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
