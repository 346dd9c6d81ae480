"""An independent fold of the raw stored events for the DMC table tests: plain dictionaries
and direct loops over the JSON payloads, sharing no code with ``safety_stream.review``.

The rules it encodes are the ones the tables document: an AE's worst grade is the maximum of
its grade course (a worsening or improvement appends, a correction replaces the last), 5 once
it was resolved fatal or cited by a death; retracted AEs are dropped; the latest exit record
wins; "related" is possible or stronger. Treatment-emergent: onset on or after the UTC date of
the patient's first administration of any modality (a patient never dosed has none).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from safety_stream.ctcae import ctcae_dictionary
from safety_stream.store.base import StoredEvent

RELATED = ("possible", "probable", "definite")
MODALITIES = ("radiotherapy", "chemotherapy", "immunotherapy")


@dataclass
class RawAe:
    ae_id: str
    patient: str
    site: str
    term: str
    soc: str
    onset: date
    course: list[int]
    attribution: dict[str, str]
    seriousness: list[str]
    immune: bool
    action: str
    stored: datetime
    fatal: bool = False
    retracted: bool = False

    @property
    def worst(self) -> int:
        return 5 if self.fatal else max(self.course)

    def related(self, modality: str | None = None) -> bool:
        wanted = MODALITIES if modality is None else (modality,)
        return any(self.attribution[m] in RELATED for m in wanted)


@dataclass
class RawPatient:
    patient: str
    site: str
    enrolled: date
    planned: list[str]
    doses: list[dict[str, Any]] = field(default_factory=list)  # treatment + "on" date
    exit: tuple[str, date, str | None] | None = None  # kind, date, withdrawal reason
    death: tuple[date, str, str | None] | None = None  # date, cause, cited AE id
    last_day: date | None = None


@dataclass
class Raw:
    patients: dict[str, RawPatient] = field(default_factory=dict)
    all_aes: dict[str, RawAe] = field(default_factory=dict)

    @property
    def aes(self) -> list[RawAe]:
        return [a for a in self.all_aes.values() if not a.retracted]


def _day(text: str) -> date:
    return date.fromisoformat(text[:10])


def _as_utc(text: str) -> date:
    return datetime.fromisoformat(text).astimezone(UTC).date()


def _amend(raw: Raw, kind: str, doc: dict[str, Any]) -> None:
    ae = raw.all_aes[doc["ae_id"]]
    if kind == "ae.retracted":
        ae.retracted = True
    elif kind == "ae.resolved" and doc["outcome"] == "fatal":
        ae.fatal = True
    elif kind == "ae.updated":
        if doc.get("grade") is not None:
            if doc.get("grade_change") in ("worsened", "improved"):
                ae.course.append(doc["grade"])
            else:
                ae.course[-1] = doc["grade"]
        if doc.get("attribution") is not None:
            ae.attribution = doc["attribution"]
        if doc.get("seriousness") is not None:
            ae.seriousness = doc["seriousness"]
        if doc.get("immune_related") is not None:
            ae.immune = doc["immune_related"]


def _clinical_day(kind: str, doc: dict[str, Any]) -> date | None:
    if kind in ("ae.retracted", "ae.safety_report_submitted"):
        return None
    for name in ("onset_date", "end_date", "death_date", "last_contact_date"):
        if doc.get(name):
            return _day(doc[name])
    return _as_utc(doc["occurred_at"])


def fold_raw(events: list[StoredEvent]) -> Raw:
    raw = Raw()
    soc_of = ctcae_dictionary()
    for stored in events:
        doc = json.loads(stored.payload)
        kind, pid = doc["event_type"], doc["patient_id"]
        if kind in ("dsmb.decision", "clock.ticked", "alert.triaged"):
            continue
        if kind == "patient.enrolled":
            raw.patients[pid] = RawPatient(
                pid, doc["site_id"], _as_utc(doc["occurred_at"]), doc["planned_modalities"]
            )
        elif kind == "treatment.administered":
            raw.patients[pid].doses.append({**doc["treatment"], "on": _as_utc(doc["occurred_at"])})
        elif kind == "ae.reported":
            found = soc_of.lookup(doc["ctcae_term"])
            raw.all_aes[doc["event_id"]] = RawAe(
                doc["event_id"], pid, doc["site_id"], doc["ctcae_term"],
                found.soc if found else "", _day(doc["onset_date"]), [doc["grade"]],
                doc["attribution"], doc["seriousness"], doc["immune_related"],
                doc["action_taken"], stored.stored_at,
            )  # fmt: skip
        elif kind.startswith("ae."):
            _amend(raw, kind, doc)
        elif kind == "patient.withdrawn":
            raw.patients[pid].exit = ("withdrawn", _as_utc(doc["occurred_at"]), doc["reason"])
        elif kind == "patient.lost_to_follow_up":
            raw.patients[pid].exit = ("lost", _day(doc["last_contact_date"]), None)
        elif kind == "patient.died":
            when = _day(doc["death_date"])
            raw.patients[pid].exit = ("died", when, None)
            raw.patients[pid].death = (when, doc["primary_cause"], doc.get("related_ae_id"))
            cited = doc.get("related_ae_id")
            if cited in raw.all_aes and raw.all_aes[cited].patient == pid:
                raw.all_aes[cited].fatal = True
        on = _clinical_day(kind, doc)
        patient = raw.patients.get(pid)
        if on is not None and patient is not None:
            patient.last_day = on if patient.last_day is None else max(patient.last_day, on)
    return raw


def pct(count: int, n: int) -> float | None:
    return None if n == 0 else round(100.0 * count / n, 1)


def treatment_emergent(raw: Raw) -> list[RawAe]:
    """The non-retracted AEs with onset on or after their patient's first dose date."""
    found = []
    for ae in raw.aes:
        doses = raw.patients[ae.patient].doses
        if doses and ae.onset >= min(d["on"] for d in doses):
            found.append(ae)
    return found


def pre_dose(raw: Raw) -> tuple[int, int]:
    """(AEs, patients) the treatment-emergent rule leaves out."""
    kept = {ae.ae_id for ae in treatment_emergent(raw)}
    left = [ae for ae in raw.aes if ae.ae_id not in kept]
    return len(left), len({ae.patient for ae in left})


def treated(raw: Raw) -> int:
    """The safety population: patients with at least one dose (every percentage's base)."""
    return sum(1 for p in raw.patients.values() if p.doses)
