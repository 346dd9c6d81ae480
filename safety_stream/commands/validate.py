"""``safety-stream validate FILE...``: check NDJSON, JSON or EDC CSV files without storing them.

Exit status 0 when every record is valid, 1 when any is not, 2 when a file cannot be read.
Every bad record is listed with its line/row, field, reason and what is allowed.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from safety_stream.ctcae import ctcae_dictionary
from safety_stream.validation.records import InputFormat, sniff_format
from safety_stream.validation.validator import Validator, read_records

INPUT_SUFFIXES = (".json", ".ndjson", ".jsonl", ".csv")


@dataclass
class FileSummary:
    name: str
    input_format: str
    records: int = 0
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    unresolved_references: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def expand_paths(paths: list[str]) -> list[str]:
    """Files as given; directories expand to their event files, sorted by name."""
    expanded: list[str] = []
    for path in paths:
        candidate = Path(path)
        if path != "-" and candidate.is_dir():
            expanded.extend(
                str(p) for p in sorted(candidate.iterdir()) if p.suffix in INPUT_SUFFIXES
            )
        else:
            expanded.append(path)
    return expanded


def validate_stream(
    stream: IO[bytes],
    name: str,
    input_format: InputFormat | None,
    out: TextIO | None,
    encoding: str | None = None,
) -> FileSummary:
    """Validate one input; print each problem to ``out`` as it is found (when given)."""
    if input_format is None:
        head = stream.peek(4096)[:4096] if hasattr(stream, "peek") else b""
        input_format = sniff_format(head, name)
    summary = FileSummary(name, input_format.value)
    validator = Validator(ctcae_dictionary())
    results = validator.validate(
        read_records(stream, input_format, encoding), csv_paths=input_format is InputFormat.CSV
    )
    for result in results:
        summary.records += 1
        if result.valid:
            summary.valid += 1
            summary.duplicates += result.duplicate_of is not None
            summary.unresolved_references += len(result.unresolved)
            continue
        summary.invalid += 1
        for problem in result.problems:
            summary.errors.append({"location": result.location, **problem.as_dict()})
            if out is not None:
                print(f"{name}: {result.location}: {problem}", file=out)
    return summary


def run(
    paths: list[str], input_format: str | None, as_json: bool, encoding: str | None = None
) -> int:
    chosen = InputFormat(input_format) if input_format else None
    summaries: list[FileSummary] = []
    unreadable: list[dict[str, str]] = []
    started = time.perf_counter()
    for path in expand_paths(paths):
        try:
            if path == "-":
                summary = validate_stream(
                    sys.stdin.buffer, "<stdin>", chosen, None if as_json else sys.stdout, encoding
                )
            else:
                with open(path, "rb") as stream:
                    summary = validate_stream(
                        stream, path, chosen, None if as_json else sys.stdout, encoding
                    )
        except BrokenPipeError:  # our reader left (``| head``): not the file's fault
            raise
        except OSError as error:
            unreadable.append({"file": path, "error": error.strerror or str(error)})
            if not as_json:
                print(f"{path}: cannot read: {error.strerror or error}", file=sys.stderr)
            continue
        summaries.append(summary)
    elapsed = time.perf_counter() - started
    total = sum(s.records for s in summaries)
    rate = total / elapsed if elapsed > 0 else 0.0
    if as_json:
        document = {
            "files": [s.__dict__ for s in summaries],
            "unreadable": unreadable,
            "records": total,
            "valid": sum(s.valid for s in summaries),
            "invalid": sum(s.invalid for s in summaries),
            "elapsed_s": round(elapsed, 4),
            "records_per_s": round(rate, 1),
        }
        json.dump(document, sys.stdout, indent=2)
        print()
    else:
        for s in summaries:
            print(
                f"{s.name}: {s.records} records ({s.input_format}): {s.valid} valid, "
                f"{s.invalid} invalid, {s.duplicates} duplicate; "
                f"{s.unresolved_references} reference(s) to earlier events are checked on ingest"
            )
        print(f"validated {total} records in {elapsed:.3f} s ({rate:,.0f} records/s)")
    if unreadable:
        return 2
    return 1 if any(s.invalid for s in summaries) else 0
