"""The simulated trial as a list of submissions in the order sites would send them.

Each patient: enrolment; FOLFOX every 14 days (cycles 1-4 before SBRT, 5-8 after); the PD-1
antibody every 21 days (6 doses); SBRT 10 Gy x 5 on days 57-61; liver labs and Child-Pugh at
baseline and 3 months (``course``). AEs are drawn per modality (``rates``); each is reported
after its onset (some weeks late), and may worsen, be corrected, be retracted as entered in
error, need an expedited report, and resolve; a few are fatal. Some patients die, withdraw or
are lost: no treatment, assessment or AE onset of theirs comes after that. A share of
submissions is invalid in the ways real ones are.
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
from safety_stream.simulate.course import (
    ASSESSMENT_DAYS,
    LIVER_LABS,
    draw_leaving,
    failing_liver,
    lab_of_ae,
    normal_value,
)
from safety_stream.simulate.rates import (
    CUMULATIVE_FROM_DAY,
    FATAL_TERMS,
    MODALITIES,
    SEVERE_TERMS,
    TERMS,
    SimulationConfig,
)

T0 = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)  # a Monday; the whole trial lies in the past
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
        rng, config = self.rng, self.config
        patient = f"{site}-{number:04d}"
        self.emit(
            "patient.enrolled", site, patient, day0, day0 + timedelta(hours=2),
            consent_date=day0.date().isoformat(), planned_modalities=list(MODALITIES),
        )  # fmt: skip
        leaving = draw_leaving(rng, config)
        fatal: str | None = None  # the modality of a related death, drawn with the severe AEs
        if rng.random() < config.related_death_share:
            fatal = rng.choice(MODALITIES)
        end = leaving.day if leaving is not None else float("inf")
        if fatal is not None:  # first: nothing of the patient's may come after the death
            died = self._ae(site, patient, day0, fatal, True, end, fatal=True)
            end = min(end, died if died is not None else end)
        for modality in MODALITIES:
            if modality != fatal and rng.random() < config.severe_rate[modality]:
                self._ae(site, patient, day0, modality, True, end)
        schedule = [
            (day, {"modality": "chemotherapy", "regimen": "FOLFOX", "cycle": cycle})
            for cycle, day in enumerate(CHEMO_DAYS, start=1)
        ] + [
            (day, {"modality": "immunotherapy", "agent": "toripalimab", "dose_mg": 240,
                   "cycle": cycle})
            for cycle, day in enumerate(PD1_DAYS, start=1)
        ] + [
            (day, {"modality": "radiotherapy", "technique": "SBRT", "fraction": fraction,
                   "fractions_planned": 5, "dose_gy": 10, "target": "liver"})
            for fraction, day in enumerate(SBRT_DAYS, start=1)
        ]  # fmt: skip
        for day, treatment in schedule:
            if day < end:
                self._treat(site, patient, day0, day, treatment)
        for day in ASSESSMENT_DAYS:
            if day < end:
                self._assessment(site, patient, day0 + timedelta(days=day, hours=3))
        low = config.low_grade_per_patient
        for _ in range(int(low) + (rng.random() < low - int(low))):
            self._ae(site, patient, day0, rng.choice(MODALITIES), False, end)
        if leaving is not None and leaving.day <= end:
            self._leave(site, patient, day0 + timedelta(days=leaving.day, hours=9), leaving.kind)

    def _assessment(self, site: str, patient: str, when: datetime) -> None:
        """Liver labs and a Child-Pugh score (5 or 6: class A), all normal."""
        for test in LIVER_LABS:
            value, unit, uln = normal_value(self.rng, test)
            self.emit("lab.resulted", site, patient, when, when + timedelta(hours=6),
                      test=test, value=value, unit=unit, uln=uln)  # fmt: skip
        score = self.rng.choice((5, 5, 6))
        self.emit("child_pugh.assessed", site, patient, when, when + timedelta(hours=6),
                  score=score, child_pugh_class="A", ascites="none")  # fmt: skip

    def _leave(self, site: str, patient: str, when: datetime, kind: str) -> None:
        body: dict[str, Any] = {
            "patient.died": {"death_date": when.date().isoformat(),
                             "primary_cause": "progression of metastatic colorectal cancer"},
            "patient.withdrawn": {"reason": "consent_withdrawn"},
            "patient.lost_to_follow_up": {"last_contact_date": when.date().isoformat()},
        }[kind]  # fmt: skip
        self.emit(kind, site, patient, when, when + timedelta(days=self.rng.randint(1, 5)), **body)

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

    def _term(self, modality: str, severe: bool, fatal: bool, day: int) -> str:
        rng = self.rng
        if fatal:
            return FATAL_TERMS[modality]
        if severe:
            shares = SEVERE_TERMS[modality]
            return rng.choices(list(shares), weights=list(shares.values()))[0]
        terms = [
            t
            for t in TERMS[modality]
            if 1 in self._grades(t) and day >= CUMULATIVE_FROM_DAY.get(t, 0)
        ]
        return rng.choice(terms)

    def _ae(
        self,
        site: str,
        patient: str,
        day0: datetime,
        modality: str,
        severe: bool,
        before_day: float,
        fatal: bool = False,
    ) -> float | None:
        """One AE (not if its onset falls after ``before_day``, when the patient had left);
        the day of death when it is fatal."""
        rng, config = self.rng, self.config
        start, end = WINDOWS[modality]
        day = rng.randint(start, end)
        term = self.ctcae.lookup(self._term(modality, severe, fatal, day))
        assert term is not None
        grade: int = (
            5
            if fatal
            else (4 if rng.random() < 0.2 and 4 in term.grades else 3)
            if severe
            else rng.choice([g for g in (1, 2) if g in term.grades])
        )
        if day >= before_day:
            return None
        onset = day0 + timedelta(days=day, hours=rng.randint(0, 10))
        delay = (
            timedelta(days=rng.randint(14, 40))
            if rng.random() < config.late_share and not fatal
            else timedelta(hours=rng.randint(2, 72))
        )
        reported = onset + delay
        attribution = {m: rng.choice(("unrelated", "unlikely")) for m in MODALITIES}
        attribution[modality] = rng.choice(RELATED)
        serious = fatal or (severe and rng.random() < 0.3)
        unexpected = serious and rng.random() < 0.4
        seriousness = (
            ["death"] if fatal
            else ["life_threatening"] if serious and grade == 4
            and rng.random() < config.life_threatening_share
            else ["hospitalisation"] if serious
            else []
        )  # fmt: skip
        ae_id = self.emit(
            "ae.reported", site, patient, onset, reported,
            ctcae_version="5.0", ctcae_term=term.term, meddra_code=term.meddra_code, grade=grade,
            onset_date=onset.date().isoformat(), seriousness=seriousness,
            expectedness="unexpected" if unexpected else "expected",
            immune_related=modality == "immunotherapy", attribution=attribution,
            action_taken="dose_reduced" if severe and not fatal else "dose_not_changed",
        )  # fmt: skip
        self._ae_labs(site, patient, onset, term.term, grade)
        when = reported

        def follow_up(kind: str, days: tuple[int, int], **body: Any) -> None:
            nonlocal when
            when += timedelta(days=rng.randint(*days))
            self.emit(kind, site, patient, when, when, ae_id=ae_id, **body)

        if fatal:
            died = onset + timedelta(days=rng.randint(1, 10))
            when = max(when, died)
            self.emit("ae.resolved", site, patient, when, when, ae_id=ae_id, outcome="fatal",
                      end_date=died.date().isoformat())  # fmt: skip
            self.emit("patient.died", site, patient, when, when, death_date=died.date().isoformat(),
                      primary_cause=term.term, related_ae_id=ae_id)  # fmt: skip
            if unexpected:
                sent = reported + timedelta(days=rng.randint(1, 6))
                self.emit("ae.safety_report_submitted", site, patient, sent, sent,
                          ae_id=ae_id, report_reference=f"IND-{ae_id[:8]}")  # fmt: skip
            return (died - day0).total_seconds() / 86400
        if rng.random() < config.retraction_share:
            reason = "entered in error: duplicate of another record"
            follow_up("ae.retracted", (1, 10), reason=reason)
            return None
        if unexpected and rng.random() < 0.9:
            sent = reported + timedelta(days=rng.randint(1, 12))
            self.emit("ae.safety_report_submitted", site, patient, sent, sent + timedelta(hours=1),
                      ae_id=ae_id, report_reference=f"IND-{ae_id[:8]}")  # fmt: skip
        if rng.random() < config.upgrade_share and grade + 1 in term.grades and grade < 4:
            grade += 1
            follow_up("ae.updated", (2, 7), grade=grade, grade_change="worsened",
                      reason="worsened at follow-up")  # fmt: skip
        milder = [g for g in (1, 2) if g in term.grades and g < grade]
        if severe and milder and rng.random() < config.improve_share:
            grade = rng.choice(milder)
            follow_up("ae.updated", (3, 10), grade=grade, grade_change="improved",
                      reason="improving with treatment")  # fmt: skip
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
        return None

    def _ae_labs(self, site: str, patient: str, onset: datetime, term: str, grade: int) -> None:
        """The lab values a lab AE (or hepatic failure) shows, drawn at its onset."""
        rng, drawn, resulted = self.rng, onset, onset + timedelta(hours=6)
        lab = lab_of_ae(rng, term, grade)
        if lab is not None:
            test, value, unit, uln = lab
            self.emit("lab.resulted", site, patient, drawn, resulted,
                      test=test, value=value, unit=unit, uln=uln)  # fmt: skip
        elif term == "Hepatic failure":
            times_uln, score = failing_liver(rng)
            unit, uln, _ = LIVER_LABS["bilirubin_total"]
            self.emit("lab.resulted", site, patient, drawn, resulted, test="bilirubin_total",
                      value=round(uln * times_uln, 1), unit=unit, uln=uln)  # fmt: skip
            self.emit("child_pugh.assessed", site, patient, drawn, resulted, score=score,
                      child_pugh_class="B" if score <= 9 else "C", ascites="mild")  # fmt: skip

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
