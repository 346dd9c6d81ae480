"""A directory of exports: each SDTM-shaped dataset as CSV and/or XPT, and ``manifest.json``
saying where in the log they were taken and what each file holds.

The manifest names the log position and chain head (the hash of the last event the export
covers: ``safety-stream verify`` checks the chain up to it), the snapshot time (as of), the
clinical cut-off, the software version, whether the CSV is Excel-safe, and for each file its
dataset, format, row count and SHA-256, so an analyst can show which data a result came from
and that the files are the ones written. The files hold patient-level data: they are created
readable by their owner only (0600), in a directory created 0700 when it is new.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from safety_stream.review.csv_export import Stamp, write_csv
from safety_stream.review.sdtm_spec import Dataset

Format = Literal["csv", "xpt"]
MANIFEST = "manifest.json"


@dataclass(frozen=True, slots=True)
class WrittenFile:
    name: str
    dataset: str
    format: Format
    rows: int
    sha256: str


def csv_text(dataset: Dataset, excel_safe: bool) -> str:
    """One dataset as CSV (the header is the variable names)."""
    return write_csv(dataset.names, dataset.rows, excel_safe)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, readable and writable by the owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    path.chmod(0o600)


def encode(
    dataset: Dataset, fmt: Format, excel_safe: bool, created: datetime | None = None
) -> bytes:
    """The bytes of one dataset in one format (XPT needs the ``export`` extra; ``created``
    is the time its header names)."""
    if fmt == "csv":
        return csv_text(dataset, excel_safe).encode("utf-8")
    from safety_stream.exporting.xpt import xpt_bytes

    return xpt_bytes(dataset, created)


def write_exports(
    datasets: dict[str, Dataset],
    out: Path,
    formats: tuple[Format, ...],
    excel_safe: bool,
    stamp: Stamp,
    version: str,
    created: datetime | None = None,
) -> dict[str, Any]:
    """Write every dataset in every format into ``out`` (created if needed) and the manifest;
    returns the manifest. Every file is encoded before the first is written, so a failure
    (e.g. the XPT extra missing) leaves nothing behind. ``created`` is the time the XPT
    headers name (the last event's storage time: the same log gives the same bytes)."""
    encoded = [
        (key, dataset, fmt, encode(dataset, fmt, excel_safe, created))
        for key, dataset in datasets.items()
        for fmt in formats
    ]
    if not out.exists():
        out.mkdir(parents=True, mode=0o700)
    written = []
    for key, dataset, fmt, data in encoded:
        name = f"{key}.{fmt}"
        _write_private(out / name, data)
        written.append(
            WrittenFile(
                name, dataset.name, fmt, len(dataset.rows), hashlib.sha256(data).hexdigest()
            )
        )
    manifest = build_manifest(written, stamp, version, excel_safe)
    _write_private(out / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return manifest


def build_manifest(
    files: list[WrittenFile], stamp: Stamp, version: str, excel_safe: bool
) -> dict[str, Any]:
    return {
        "software": {"name": "safety-stream", "version": version},
        "log_position": stamp.position,
        "chain_head": stamp.chain_head,
        "as_of": None if stamp.as_of is None else stamp.as_of.isoformat(),
        "cutoff": None if stamp.cutoff is None else stamp.cutoff.isoformat(),
        "excel_safe": excel_safe,
        "files": [
            {
                "name": f.name,
                "dataset": f.dataset,
                "format": f.format,
                "rows": f.rows,
                "sha256": f.sha256,
            }
            for f in files
        ],
    }
