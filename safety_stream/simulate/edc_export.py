"""The simulated trial as sites' EDC systems would export it: one CSV row per AE.

An EDC export is a snapshot of the AE forms, not a history: each AE appears once with its worst
grade (an improvement does not lower it; a correction does), its current attribution, its end
date and outcome once resolved; an AE retracted as entered in error is gone. Each row carries
its AE's id (``EVENT_ID``), so posting the same export twice counts nothing twice and the
sponsor's expedited safety reports, which cite the AE, still find it. Enrolments, treatments
and labs are not AE forms: they stay NDJSON (``records_before``), and so do the safety reports
(``records_after``, posted after the export).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from safety_stream.simulate.generator import SimulatedRecord

COLUMNS = (
    "EVENT_ID", "STUDYID", "SITEID", "SUBJID", "AESPID", "REPORTER", "CTCAEVER", "AEDECOD",
    "AELLTCD", "AETOXGR", "AESTDTC", "AEENDTC", "AEOUT", "AEDTC", "AEMODDTC", "AESER", "AESDTH",
    "AESLIFE", "AESHOSP", "AESDISAB", "AESCONG", "AESMIE", "AEEXPECT", "AEIMMREL", "AERELRT",
    "AERELCT", "AERELIT", "AEACN",
)  # fmt: skip
SERIOUSNESS = {
    "death": "AESDTH", "life_threatening": "AESLIFE", "hospitalisation": "AESHOSP",
    "disability": "AESDISAB", "congenital_anomaly": "AESCONG", "medically_important": "AESMIE",
}  # fmt: skip
RELATED = {"unrelated": "NOT RELATED", "unlikely": "UNLIKELY RELATED",
           "possible": "POSSIBLY RELATED", "probable": "PROBABLY RELATED",
           "definite": "DEFINITELY RELATED"}  # fmt: skip
OUTCOME = {
    "recovered": "RECOVERED/RESOLVED",
    "recovered_with_sequelae": "RECOVERED/RESOLVED WITH SEQUELAE",
    "fatal": "FATAL",
}


def _yes(flag: bool) -> str:
    return "Y" if flag else "N"


def _row(report: dict[str, Any], number: int) -> dict[str, str]:
    attribution = report["attribution"]
    seriousness = set(report["seriousness"])
    return {
        "EVENT_ID": report["event_id"],
        "STUDYID": report["trial_id"],
        "SITEID": report["site_id"],
        "SUBJID": report["patient_id"],
        "AESPID": str(number),
        "REPORTER": report["reporter"],
        "CTCAEVER": report["ctcae_version"],
        "AEDECOD": report["ctcae_term"],
        "AELLTCD": str(report["meddra_code"]),
        "AETOXGR": str(report["grade"]),
        "AESTDTC": report["occurred_at"],
        "AEENDTC": "",
        "AEOUT": "",
        "AEDTC": report["recorded_at"],
        "AEMODDTC": "",
        "AESER": _yes(bool(seriousness)),
        **{column: _yes(name in seriousness) for name, column in SERIOUSNESS.items()},
        "AEEXPECT": report["expectedness"].upper(),
        "AEIMMREL": _yes(report["immune_related"]),
        "AERELRT": RELATED[attribution["radiotherapy"]],
        "AERELCT": RELATED[attribution["chemotherapy"]],
        "AERELIT": RELATED[attribution["immunotherapy"]],
        "AEACN": report["action_taken"].replace("_", " ").upper(),
    }


def edc_rows(records: Sequence[SimulatedRecord]) -> list[dict[str, str]]:
    """Every AE that stands, as its current row (in the order first reported)."""
    rows: dict[str, dict[str, str]] = {}
    per_patient: dict[str, int] = {}
    for record in records:
        if not record.valid:
            continue
        document = json.loads(record.body)
        kind = document["event_type"]
        if kind == "ae.reported":
            number = per_patient.get(document["patient_id"], 0) + 1
            per_patient[document["patient_id"]] = number
            rows[document["event_id"]] = _row(document, number)
        elif kind == "ae.updated":
            row = rows[document["ae_id"]]
            if document.get("grade_change") in ("worsened", "improved"):  # the form's grade
                row["AETOXGR"] = str(max(int(row["AETOXGR"]), document["grade"]))  # is the worst
            elif "grade" in document:  # a correction
                row["AETOXGR"] = str(document["grade"])
            for modality, column in (("radiotherapy", "AERELRT"), ("chemotherapy", "AERELCT"),
                                     ("immunotherapy", "AERELIT")):  # fmt: skip
                if "attribution" in document:
                    row[column] = RELATED[document["attribution"][modality]]
            row["AEMODDTC"] = document["recorded_at"]
        elif kind == "ae.resolved":
            row = rows[document["ae_id"]]
            row["AEENDTC"] = document["end_date"]
            row["AEOUT"] = OUTCOME[document["outcome"]]
            row["AEMODDTC"] = document["recorded_at"]
        elif kind == "ae.retracted":
            del rows[document["ae_id"]]
    return list(rows.values())


def edc_csv(records: Sequence[SimulatedRecord]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(edc_rows(records))
    return out.getvalue().encode()


def _kind(record: SimulatedRecord) -> str:
    return str(json.loads(record.body)["event_type"])


def records_before(records: Sequence[SimulatedRecord]) -> list[SimulatedRecord]:
    """The valid records that are not about AEs (enrolments, treatments, labs)."""
    return [r for r in records if r.valid and not _kind(r).startswith("ae.")]


def records_after(records: Sequence[SimulatedRecord]) -> list[SimulatedRecord]:
    """The expedited safety reports: they cite AEs of the export, so they go after it."""
    return [r for r in records if r.valid and _kind(r) == "ae.safety_report_submitted"]
