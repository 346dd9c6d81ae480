"""``safety-stream schemas export``: write (or ``--check``) the JSON Schemas of every event."""

from __future__ import annotations

from pathlib import Path

from safety_stream.contract import drift, export


def run(directory: Path, check: bool) -> int:
    if check:
        stale = drift(directory)
        for name in stale:
            print(
                f"{directory / name}: differs from the models (run: safety-stream schemas export)"
            )
        if not stale:
            print(f"{directory}: every schema matches the models")
        return 1 if stale else 0
    for name in export(directory):
        print(directory / name)
    return 0
