"""The simulated trial as a list of submissions in the order sites would send them.

Each patient: enrolment; FOLFOX every 14 days (cycles 1-4 before SBRT, 5-8 after); the PD-1
antibody every 21 days (6 doses); SBRT 10 Gy x 5 on days 57-61; liver labs at baseline and
3 months. AEs are drawn per modality (``rates``); each is reported after its onset (some
weeks late), and may worsen, be corrected, be retracted as entered in error, need an
expedited report, and resolve. A share of submissions is invalid in the ways real ones are.
Everything comes from one seeded generator: the same config gives byte-identical output.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from safety_stream.ctcae import CtcaeDictionary, ctcae_dictionary
from safety_stream.simulate.rates import MODALITIES, TERMS, SimulationConfig

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
TRIAL = "SPARKLE-L"
CHEMO_DAYS = (1, 15, 29, 43, 71, 85, 99, 113)
PD1_DAYS = (1, 22, 43, 64, 85, 106)
SBRT_DAYS = (57, 58, 59, 60, 61)
WINDOWS = {"chemotherapy": (2, 56), "immunotherapy": (2, 84), "radiotherapy": (62, 150)}
RELATED = ("possible", "probable", "definite")


@dataclass(frozen=True, slots=True)
class SimulatedRecord:
    """One submission: when the site sends it, from which site, and the bytes it sends."""

    sent_at: datetime
    site_id: str
    body: bytes
    valid: bool


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class _Trial:
    def __init__(self, config: SimulationConfig, ctcae: CtcaeDictionary) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.ctcae = ctcae
        self.out: list[tuple[datetime, int, SimulatedRecord, dict[str, Any]]] = []

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def emit(
        self,
        kind: str,
        site: str,
        patient: str,
        occurred: datetime,
        recorded: datetime,
        **body: Any,
    ) -> str:
        document = {
            "event_type": kind,
            "schema_version": 1,
            "event_id": self._id(),
            "trial_id": TRIAL,
            "site_id": site,
            "patient_id": patient,
            "reporter": f"crc.{site.lower()}",
            "occurred_at": _stamp(occurred),
            "recorded_at": _stamp(recorded),
            **body,
        }
        raw = json.dumps(document, separators=(",", ":")).encode()
        self.out.append(
            (recorded, len(self.out), SimulatedRecord(recorded, site, raw, True), document)
        )
        return str(document["event_id"])

    def patient(self, number: int, site: str, day0: datetime) -> None:
        rng = self.rng
        patient = f"{site}-{number:04d}"
        self.emit(
            "patient.enrolled", site, patient, day0, day0 + timedelta(hours=2),
            consent_date=day0.date().isoformat(), planned_modalities=list(MODALITIES),
        )  # fmt: skip
        for cycle, day in enumerate(CHEMO_DAYS, start=1):
            self._treat(
                site,
                patient,
                day0,
                day,
                {"modality": "chemotherapy", "regimen": "FOLFOX", "cycle": cycle},
            )
        for cycle, day in enumerate(PD1_DAYS, start=1):
            self._treat(
                site,
                patient,
                day0,
                day,
                {
                    "modality": "immunotherapy",
                    "agent": "toripalimab",
                    "dose_mg": 240,
                    "cycle": cycle,
                },
            )
        for fraction, day in enumerate(SBRT_DAYS, start=1):
            self._treat(
                site,
                patient,
                day0,
                day,
                {
                    "modality": "radiotherapy",
                    "technique": "SBRT",
                    "fraction": fraction,
                    "fractions_planned": 5,
                    "dose_gy": 10,
                    "target": "liver",
                },
            )
        for day in (0, 90):
            when = day0 + timedelta(days=day, hours=3)
            value = round(rng.uniform(12, 38), 1)
            self.emit("lab.resulted", site, patient, when, when + timedelta(hours=6),
                      test="ALT", value=value, unit="U/L", uln=40.0)  # fmt: skip
        for modality in MODALITIES:
            if rng.random() < self.config.severe_rate[modality]:
                self._ae(site, patient, day0, modality, severe=True)
        low = self.config.low_grade_per_patient
        for _ in range(int(low) + (rng.random() < low - int(low))):
            self._ae(site, patient, day0, rng.choice(MODALITIES), severe=False)

    def _treat(
        self, site: str, patient: str, day0: datetime, day: int, treatment: dict[str, Any]
    ) -> None:
        when = day0 + timedelta(days=day, hours=1)
        self.emit(
            "treatment.administered",
            site,
            patient,
            when,
            when + timedelta(hours=4),
            treatment=treatment,
        )

    def _ae(self, site: str, patient: str, day0: datetime, modality: str, severe: bool) -> None:
        rng, config = self.rng, self.config
        terms = [
            t
            for t in TERMS[modality]
            if (3 in self._grades(t)) == severe or (not severe and 1 in self._grades(t))
        ]
        term = self.ctcae.lookup(rng.choice(terms))
        assert term is not None
        grade: int = (
            (4 if rng.random() < 0.2 and 4 in term.grades else 3)
            if severe
            else rng.choice([g for g in (1, 2) if g in term.grades])
        )
        start, end = WINDOWS[modality]
        onset = day0 + timedelta(days=rng.randint(start, end), hours=rng.randint(0, 10))
        delay = (
            timedelta(days=rng.randint(14, 40))
            if rng.random() < config.late_share
            else timedelta(hours=rng.randint(2, 72))
        )
        reported = onset + delay
        attribution = {m: rng.choice(("unrelated", "unlikely")) for m in MODALITIES}
        attribution[modality] = rng.choice(RELATED)
        serious = severe and rng.random() < 0.3
        unexpected = serious and rng.random() < 0.4
        ae_id = self.emit(
            "ae.reported", site, patient, onset, reported,
            ctcae_version="5.0", ctcae_term=term.term, meddra_code=term.meddra_code, grade=grade,
            onset_date=onset.date().isoformat(),
            seriousness=["hospitalisation"] if serious else [],
            expectedness="unexpected" if unexpected else "expected",
            immune_related=modality == "immunotherapy", attribution=attribution,
            action_taken="dose_reduced" if severe else "dose_not_changed",
        )  # fmt: skip
        when = reported

        def follow_up(kind: str, days: tuple[int, int], **body: Any) -> None:
            nonlocal when
            when += timedelta(days=rng.randint(*days))
            self.emit(kind, site, patient, when, when, ae_id=ae_id, **body)

        if rng.random() < config.retraction_share:
            reason = "entered in error: duplicate of another record"
            follow_up("ae.retracted", (1, 10), reason=reason)
            return
        if unexpected and rng.random() < 0.9:
            sent = reported + timedelta(days=rng.randint(1, 12))
            self.emit("ae.safety_report_submitted", site, patient, sent, sent + timedelta(hours=1),
                      ae_id=ae_id, report_reference=f"IND-{ae_id[:8]}")  # fmt: skip
        if rng.random() < config.upgrade_share and grade + 1 in term.grades and grade < 4:
            grade += 1
            follow_up("ae.updated", (2, 7), grade=grade, reason="worsened at follow-up")
        if rng.random() < config.correction_share:
            corrected = dict(attribution) | {modality: "unlikely"}
            reason = "attribution corrected at source data verification"
            follow_up("ae.updated", (1, 14), attribution=corrected, reason=reason)
        if rng.random() < config.resolve_share:
            end_date = onset + timedelta(days=rng.randint(5, 30))
            when = max(when, end_date) + timedelta(days=1)
            self.emit(
                "ae.resolved",
                site,
                patient,
                when,
                when,
                ae_id=ae_id,
                outcome="recovered",
                end_date=end_date.date().isoformat(),
            )

    def _grades(self, name: str) -> frozenset[int]:
        term = self.ctcae.lookup(name)
        assert term is not None, name
        return term.grades

    def invalid(self, document: dict[str, Any], when: datetime) -> SimulatedRecord:
        """A bad copy of a good submission, as sites really get them wrong."""
        bad = dict(document) | {"event_id": self._id()}
        flaw = self.rng.randrange(4)
        if flaw == 0 and bad["event_type"] == "ae.reported":
            bad["grade"] = 5 if bad["ctcae_term"] in ("Nausea", "Fatigue", "Pruritus") else 0
        elif flaw == 1 and bad["event_type"] == "ae.reported":
            bad["ctcae_term"] = bad["ctcae_term"].lower() + "s"  # misspelt
        elif flaw == 2:
            del bad["recorded_at"]
        else:
            bad["occurred_at"] = "2026-02-30T10:00:00Z"
        raw = json.dumps(bad, separators=(",", ":")).encode()
        return SimulatedRecord(when, str(document["site_id"]), raw, False)


def as_ndjson(records: Sequence[SimulatedRecord]) -> bytes:
    """The records as an NDJSON document, one submission per line."""
    return b"".join(r.body + b"\n" for r in records)


def simulate(config: SimulationConfig | None = None) -> list[SimulatedRecord]:
    """Every submission of the simulated trial, in the order they are sent."""
    config = config or SimulationConfig()
    trial = _Trial(config, ctcae_dictionary())
    rng = trial.rng
    sites = [f"SITE-{n:02d}" for n in range(1, config.sites + 1)]
    days = sorted(rng.uniform(0, config.enrolment_days) for _ in range(config.patients))
    for number, day in enumerate(days, start=1):
        enrolled = T0 + timedelta(minutes=round(day * 24 * 60))
        trial.patient(number, rng.choice(sites), enrolled)
    trial.out.sort(key=lambda item: (item[0], item[1]))
    records = []
    for when, _, record, document in trial.out:
        if rng.random() < config.invalid_share:
            records.append(trial.invalid(document, when))
        records.append(record)
    return records
