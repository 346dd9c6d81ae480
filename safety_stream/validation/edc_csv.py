"""CSV exports from an EDC: one row per AE, with CDISC SDTM-style column names.

Each row becomes an ``ae.reported`` event, plus an ``ae.resolved`` event when the row has an
end date and outcome. Columns not listed here are ignored. Without an ``EVENT_ID`` column the
event ids are derived from (STUDYID, SITEID, SUBJID, AESPID), so posting the same export
twice never counts an AE twice. The full mapping is documented in ``schemas/README.md``.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from typing import IO, Any

from safety_stream.validation.codes import ProblemCode
from safety_stream.validation.problems import Problem
from safety_stream.validation.records import MAX_DOCUMENT_BYTES, RawRecord, decode_text

EDC_NAMESPACE = uuid.UUID("6c1f3a52-8d0e-4b7e-9f59-2f6d3c1b7a10")
"""Namespace of the UUIDv5 event ids derived for CSV rows (never change it)."""

REQUIRED_COLUMNS = (
    "STUDYID", "SITEID", "SUBJID", "AESPID", "REPORTER", "CTCAEVER", "AEDECOD", "AELLTCD",
    "AETOXGR", "AESTDTC", "AEDTC", "AEEXPECT", "AEIMMREL", "AERELRT", "AERELCT", "AERELIT",
    "AEACN",
)  # fmt: skip

COLUMN_OF_FIELD = {
    "event_id": "EVENT_ID",
    "trial_id": "STUDYID",
    "site_id": "SITEID",
    "patient_id": "SUBJID",
    "reporter": "REPORTER",
    "ctcae_version": "CTCAEVER",
    "ctcae_term": "AEDECOD",
    "meddra_code": "AELLTCD",
    "grade": "AETOXGR",
    "onset_date": "AESTDTC",
    "occurred_at": "AESTDTC",
    "recorded_at": "AEDTC",
    "expectedness": "AEEXPECT",
    "immune_related": "AEIMMREL",
    "attribution.radiotherapy": "AERELRT",
    "attribution.chemotherapy": "AERELCT",
    "attribution.immunotherapy": "AERELIT",
    "action_taken": "AEACN",
    "verbatim_term": "AETERM",
    "end_date": "AEENDTC",
    "outcome": "AEOUT",
    "seriousness": "AESDTH/AESLIFE/AESHOSP/AESDISAB/AESCONG/AESMIE",
}

SERIOUSNESS_COLUMNS = {
    "AESDTH": "death",
    "AESLIFE": "life_threatening",
    "AESHOSP": "hospitalisation",
    "AESDISAB": "disability",
    "AESCONG": "congenital_anomaly",
    "AESMIE": "medically_important",
}

RELATEDNESS = {
    "not related": "unrelated",
    "unlikely related": "unlikely",
    "possibly related": "possible",
    "probably related": "probable",
    "definitely related": "definite",
} | {word: word for word in ("unrelated", "unlikely", "possible", "probable", "definite")}
RELATEDNESS_ALLOWED = (
    "NOT RELATED, UNLIKELY RELATED, POSSIBLY RELATED, PROBABLY RELATED or DEFINITELY RELATED"
)
OUTCOMES = {
    "recovered/resolved": "recovered",
    "recovered/resolved with sequelae": "recovered_with_sequelae",
    "fatal": "fatal",
}
OUTCOMES_ALLOWED = "RECOVERED/RESOLVED, RECOVERED/RESOLVED WITH SEQUELAE or FATAL"
EXPECTEDNESS = {"expected": "expected", "unexpected": "unexpected"}
ACTIONS = {
    "dose not changed": "dose_not_changed",
    "dose reduced": "dose_reduced",
    "drug interrupted": "drug_interrupted",
    "drug withdrawn": "drug_withdrawn",
    "not applicable": "not_applicable",
    "unknown": "unknown",
}
ACTIONS_ALLOWED = (
    "DOSE NOT CHANGED, DOSE REDUCED, DRUG INTERRUPTED, DRUG WITHDRAWN, NOT APPLICABLE or UNKNOWN"
)
YES_NO = {"y": True, "yes": True, "n": False, "no": False}


RESOLUTION_COLUMNS = COLUMN_OF_FIELD | {"occurred_at": "AEENDTC", "recorded_at": "AEMODDTC"}


def column_path(path: str, event_type: str = "ae.reported") -> str:
    """Show a model field path as the CSV column a site can find in its export."""
    columns = RESOLUTION_COLUMNS if event_type == "ae.resolved" else COLUMN_OF_FIELD
    column = columns.get(path)
    return f"{column} ({path})" if column else path


def _lower(value: str) -> str:
    return value.strip().lower().replace("_", " ")


def _datetime(value: str) -> str:
    """ISO dates become midnight UTC; ISO datetimes pass through (offset required)."""
    value = value.strip()
    return f"{value}T00:00:00Z" if len(value) == 10 else value


DATE_COLUMNS = ("AESTDTC", "AEDTC", "AEENDTC", "AEMODDTC")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})")
DAY_FIRST = re.compile(r"(\d{1,2})[./-](\d{1,2})[./-](\d{4})")
DATE_FORMAT = "YYYY-MM-DD (e.g. 2026-11-20), or YYYY-MM-DDThh:mm:ss with a UTC offset"


def _date_problem(column: str, text: str) -> Problem | None:
    """A problem when a date cell is not ISO 8601 (the cell's value echoed, the form named)."""
    text = text.strip()
    if ISO_DATE.fullmatch(text) or ISO_DATETIME.fullmatch(text):
        return None
    message = f"{text!r} is not a date in the form YYYY-MM-DD"
    local = DAY_FIRST.fullmatch(text)
    if local:
        first, second, year = local.groups()
        message += f" (if it is day/month/year, write {year}-{int(second):02d}-{int(first):02d})"
    return Problem(column, message, ProblemCode.CSV_DATE_FORMAT, DATE_FORMAT)


def sniff_delimiter(header_line: str) -> str:
    """The export's separator: whichever of comma, semicolon and tab its header uses most
    (European Excel writes ';', some EDCs tab-separated text); ',' when none appears."""
    counts = {delimiter: header_line.count(delimiter) for delimiter in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def row_to_events(row: dict[str, str]) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Map one CSV row to wire-format event objects (validated later like any JSON event)."""
    problems: list[Problem] = []

    def flag(column: str) -> bool | None:
        text = row.get(column, "").strip().lower()
        if text == "":
            return None if column == "AEIMMREL" else False
        if text not in YES_NO:
            problems.append(
                Problem(column, f"{row[column]!r} is not Y or N", ProblemCode.CSV_YES_NO, "Y or N")
            )
            return None
        return YES_NO[text]

    for column in DATE_COLUMNS:
        cell = row.get(column, "")
        if cell.strip() or column in ("AESTDTC", "AEDTC"):
            bad_date = _date_problem(column, cell)
            if bad_date:
                problems.append(bad_date)

    seriousness = [name for column, name in SERIOUSNESS_COLUMNS.items() if flag(column)]
    if flag("AESER") and not seriousness:
        problems.append(
            Problem(
                "AESER",
                "AESER is Y but no seriousness criterion column is Y",
                ProblemCode.CSV_SERIOUS_WITHOUT_CRITERION,
                "Y in at least one of " + ", ".join(SERIOUSNESS_COLUMNS),
            )
        )

    def vocab(column: str, mapping: dict[str, str], allowed: str) -> str | None:
        text = _lower(row.get(column, ""))
        if text in mapping:
            return mapping[text]
        problems.append(
            Problem(
                column,
                f"{row.get(column, '')!r} is not an allowed value",
                ProblemCode.CSV_VOCABULARY,
                allowed,
            )
        )
        return None

    attribution = {
        modality: vocab(column, RELATEDNESS, RELATEDNESS_ALLOWED)
        for modality, column in (
            ("radiotherapy", "AERELRT"),
            ("chemotherapy", "AERELCT"),
            ("immunotherapy", "AERELIT"),
        )
    }
    version = row["CTCAEVER"].strip().lower().removeprefix("v")
    base: dict[str, Any] = {
        "trial_id": row["STUDYID"].strip(),
        "site_id": row["SITEID"].strip(),
        "patient_id": row["SUBJID"].strip(),
        "reporter": row["REPORTER"],
        "recorded_at": _datetime(row["AEDTC"]),
        "schema_version": 1,
    }
    key = f"{base['trial_id']}/{base['site_id']}/{base['patient_id']}/{row['AESPID'].strip()}"
    report_id = row.get("EVENT_ID", "").strip() or str(uuid.uuid5(EDC_NAMESPACE, key))
    onset = row["AESTDTC"].strip()
    reported = base | {
        "event_type": "ae.reported",
        "event_id": report_id,
        "occurred_at": _datetime(onset),
        "ctcae_version": "5.0" if version in ("5", "5.0") else row["CTCAEVER"],
        "ctcae_term": row["AEDECOD"].strip(),
        "meddra_code": row["AELLTCD"].strip(),
        "grade": row["AETOXGR"].strip(),
        "onset_date": onset[:10],
        "seriousness": seriousness,
        "expectedness": vocab("AEEXPECT", EXPECTEDNESS, "EXPECTED or UNEXPECTED"),
        "immune_related": flag("AEIMMREL"),
        "attribution": attribution,
        "action_taken": vocab("AEACN", ACTIONS, ACTIONS_ALLOWED),
    }
    if row.get("AETERM", "").strip():
        reported["verbatim_term"] = row["AETERM"]
    events = [reported]
    end = row.get("AEENDTC", "").strip()
    if end:
        outcome = vocab("AEOUT", OUTCOMES, OUTCOMES_ALLOWED)
        # the resolution was recorded when the row was last modified (else: on its end date)
        modified = row.get("AEMODDTC", "").strip() or end
        events.append(
            base
            | {
                "recorded_at": _datetime(modified),
                "event_type": "ae.resolved",
                "event_id": str(uuid.uuid5(EDC_NAMESPACE, key + "/resolved")),
                "occurred_at": _datetime(end),
                "ae_id": report_id,
                "outcome": outcome,
                "end_date": end[:10],
            }
        )
    return events, problems


ENCODING_HINT = (
    "; Excel and Windows exports are often cp1252: name the encoding (CLI: --encoding cp1252; "
    "HTTP: Content-Type: text/csv; charset=windows-1252) or export as UTF-8"
)


def read_edc_csv(stream: IO[bytes], encoding: str | None = None) -> Iterator[RawRecord]:
    """Rows of an EDC export as records (``value`` holds the mapped event objects).

    UTF-8 with or without a byte-order mark unless ``encoding`` names another; the separator
    (comma, semicolon or tab) is taken from the header line.
    """
    data = stream.read(MAX_DOCUMENT_BYTES + 1)
    text, encoding_problem = decode_text(
        data[:MAX_DOCUMENT_BYTES], "the CSV file", encoding, ENCODING_HINT
    )
    if encoding_problem:
        yield RawRecord("file", b"", problems=[encoding_problem])
        return
    delimiter = sniff_delimiter(text.split("\n", 1)[0])
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        header = [c.strip() for c in reader.fieldnames or []]
    except csv.Error as error:
        yield RawRecord(
            "row 1", b"", problems=[Problem("", str(error), ProblemCode.CSV_MALFORMED, None)]
        )
        return
    reader.fieldnames = header
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        found = f"; the header has {len(header)} column(s): {', '.join(header)[:200]}"
        if len(missing) > len(REQUIRED_COLUMNS) // 2:
            found += " (is this an EDC AE export, separated by ',', ';' or tab?)"
        yield RawRecord(
            "header",
            delimiter.join(header).encode()[:1000],
            problems=[
                Problem(
                    "",
                    "missing required column(s): " + ", ".join(missing) + found,
                    ProblemCode.CSV_MISSING_COLUMNS,
                    "the columns listed in schemas/README.md (EDC CSV mapping)",
                )
            ],
        )
        return
    try:
        for row in reader:
            location = f"row {reader.line_num}"
            raw = delimiter.join(str(v) for v in row.values()).encode()[:MAX_DOCUMENT_BYTES]
            if None in row or any(v is None for v in row.values()):
                cells = sum(v is not None for k, v in row.items() if k is not None)
                cells += len(row.get(None) or [])
                yield RawRecord(
                    location,
                    raw,
                    problems=[
                        Problem(
                            "",
                            f"row has {cells} cells, the header has {len(header)}",
                            ProblemCode.CSV_RAGGED_ROW,
                            f"{len(header)} cells per row",
                        )
                    ],
                )
                continue
            events, problems = row_to_events(row)
            yield RawRecord(location, raw, value=events, problems=problems, parsed=True)
    except csv.Error as error:
        yield RawRecord(
            f"row {reader.line_num}",
            b"",
            problems=[Problem("", str(error), ProblemCode.CSV_MALFORMED)],
        )
