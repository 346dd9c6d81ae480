"""SAS transport (XPT) version 5 files of SDTM-shaped datasets, written by ``pyreadstat``.

Version 5 is what regulators take (FDA Study Data Technical Conformance Guide): names of at
most 8 characters, labels of at most 40, character values of at most 200 bytes; the datasets
of ``review.sdtm`` keep to them. A character column is written with its values as they are
(UTF-8; an empty text is SAS's missing character value), a numeric one as doubles with None as
SAS's missing value (``.``). The file label is the dataset's label, the member name its name.

The header's created and modified times (``ddMMMyy:hh:mm:ss``) are set to the time given
(the time the last event of the export was stored; SAS's epoch 1960-01-01 when there is none),
not the time of writing, so the same log prefix and options give the same bytes.

``pyreadstat`` and ``pandas`` (the data frame it takes) are the optional ``export`` extra
(``pip install 'safety-stream[export]'``); they are imported when a file is written, so the
rest of the package works without them.
"""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from safety_stream.review.sdtm_spec import Dataset

SAS_EPOCH = datetime(1960, 1, 1, tzinfo=UTC)
STAMP = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")
# where a one-member v5 file keeps its four times: the library header's created and modified,
# the member header's created and modified (80-byte records 2, 3, 6 and 7)
STAMP_OFFSETS = (144, 160, 464, 480)


def set_created(data: bytes, moment: datetime) -> bytes:
    """``data`` (a one-member XPT v5 file) with its header times set to ``moment`` (UTC)."""
    text = moment.astimezone(UTC).strftime("%d%b%y:%H:%M:%S").upper().encode("ascii")
    out = bytearray(data)
    for offset in STAMP_OFFSETS:
        if STAMP.fullmatch(bytes(out[offset : offset + 16])) is None:
            raise ValueError(f"not an XPT v5 header time at byte {offset}: the layout changed")
        out[offset : offset + 16] = text
    return bytes(out)


def write_xpt(dataset: Dataset, path: Path, created: datetime | None = None) -> None:
    """Write ``dataset`` to ``path`` as an XPT v5 file (one member) created at ``created``
    (None: SAS's epoch)."""
    import pandas as pd
    import pyreadstat

    frame = pd.DataFrame(
        {
            column.name: pd.Series(
                [row[i] for row in dataset.rows],
                dtype=object if column.type == "Char" else "float64",
            )
            for i, column in enumerate(dataset.columns)
        }
    )
    pyreadstat.write_xport(
        frame,
        str(path),
        file_label=dataset.label,
        column_labels=[c.label for c in dataset.columns],
        table_name=dataset.name,
        file_format_version=5,
    )
    path.write_bytes(set_created(path.read_bytes(), created or SAS_EPOCH))


def xpt_bytes(dataset: Dataset, created: datetime | None = None) -> bytes:
    """The XPT v5 file of ``dataset`` as bytes (written to a temporary file, then read:
    pyreadstat writes to paths only)."""
    with tempfile.TemporaryDirectory(prefix="safety-stream-xpt-") as folder:
        path = Path(folder) / f"{dataset.name.lower()}.xpt"
        write_xpt(dataset, path, created)
        return path.read_bytes()
