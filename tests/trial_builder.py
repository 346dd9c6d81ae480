"""A small builder of event histories with explicit days, for projection and monitor tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from safety_stream.events import EventBase, decode_object
from safety_stream.monitoring.counting import table_for
from safety_stream.plan import load_plan

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Trial:
    """Builds a small event history with explicit times."""

    def __init__(self) -> None:
        self.events: list[EventBase] = []

    def add(
        self, kind: str, patient: str, day: int, site: str = "S1", hours: float = 0,
        **fields: Any,
    ) -> str:  # fmt: skip
        when = (T0 + timedelta(days=day, hours=hours)).isoformat()
        document = {
            "event_type": kind,
            "schema_version": 1,
            "event_id": str(uuid.uuid4()),
            "trial_id": "SPARKLE-L",
            "site_id": site,
            "patient_id": patient,
            "reporter": "test",
            "occurred_at": when,
            "recorded_at": when,
            **fields,
        }
        self.events.append(decode_object(document))
        return str(document["event_id"])

    def enrol(self, patient: str, day: int = 0, site: str = "S1") -> None:
        self.add(
            "patient.enrolled", patient, day, site,
            consent_date=(T0 + timedelta(days=day)).date().isoformat(),
            planned_modalities=["radiotherapy", "chemotherapy", "immunotherapy"],
        )  # fmt: skip

    def treat(self, patient: str, modality: str, day: int, site: str = "S1") -> None:
        treatment = {
            "radiotherapy": {"modality": "radiotherapy", "technique": "SBRT", "fraction": 1,
                             "fractions_planned": 5, "dose_gy": 10, "target": "liver"},
            "chemotherapy": {"modality": "chemotherapy", "regimen": "FOLFOX", "cycle": 1},
            "immunotherapy": {"modality": "immunotherapy", "agent": "toripalimab",
                              "dose_mg": 240, "cycle": 1},
        }[modality]  # fmt: skip
        self.add("treatment.administered", patient, day, site, treatment=treatment)

    def ae(
        self, patient: str, day: int, term: str, code: int, grade: int,
        rt: str = "unrelated", ct: str = "unrelated", it: str = "unrelated", site: str = "S1",
        seriousness: list[str] | None = None, expectedness: str = "expected",
        immune_related: bool = False, hours: float = 0,
    ) -> str:  # fmt: skip
        if seriousness is None:
            seriousness = ["death"] if grade == 5 else []
        return self.add(
            "ae.reported", patient, day, site, hours,
            ctcae_version="5.0", ctcae_term=term, meddra_code=code, grade=grade,
            onset_date=(T0 + timedelta(days=day)).date().isoformat(),
            seriousness=seriousness, expectedness=expectedness,
            immune_related=immune_related,
            attribution={"radiotherapy": rt, "chemotherapy": ct, "immunotherapy": it},
            action_taken="dose_not_changed",
        )  # fmt: skip

    def update(self, patient: str, day: int, ae_id: str, site: str = "S1", **fields: Any) -> str:
        return self.add("ae.updated", patient, day, site, ae_id=ae_id, reason="review", **fields)

    def decide(self, day: int, *rules: str, outcome: str = "continue_unchanged") -> str:
        """A DSMB decision answering ``rules`` (releases their latch)."""
        return self.add(
            "dsmb.decision", "DSMB", day, "DSMB", answers=list(rules), outcome=outcome,
            rationale="reviewed at the DSMB meeting", decided_by="dsmb-chair",
        )  # fmt: skip

    def retract(self, patient: str, day: int, ae_id: str, site: str = "S1") -> str:
        return self.add("ae.retracted", patient, day, site, ae_id=ae_id, reason="entered in error")

    def submit_report(self, patient: str, day: int, ae_id: str, site: str = "S1") -> str:
        return self.add(
            "ae.safety_report_submitted", patient, day, site,
            ae_id=ae_id, report_reference=f"IND-{ae_id[:8]}",
        )  # fmt: skip

    def lab(self, patient: str, day: int, test: str, times_uln: float, site: str = "S1") -> str:
        return self.add(
            "lab.resulted", patient, day, site,
            test=test, value=40.0 * times_uln, unit="U/L", uln=40.0,
        )  # fmt: skip

    def child_pugh(self, patient: str, day: int, score: int, site: str = "S1") -> str:
        letter = "A" if score <= 6 else "B" if score <= 9 else "C"
        return self.add(
            "child_pugh.assessed", patient, day, site, score=score, child_pugh_class=letter
        )


NEUTROPENIA = ("Neutrophil count decreased", 10029366)
DIARRHEA = ("Diarrhea", 10012727)
NAUSEA = ("Nausea", 10028813)
ASCITES = ("Ascites", 10003445)
DEATH_NOS = ("Death NOS", 10011914)
HEPATIC_FAILURE = ("Hepatic failure", 10019663)
ALT_INCREASED = ("Alanine aminotransferase increased", 10001551)


FOLLOWED_DAY = 200
"""A day past every SPARKLE-L window of patients enrolled on day 0 (the longest is 182 days)."""


def _all_events_crossing(rule_id: str) -> int:
    """The number of patients, each with the counted event, at which a SPARKLE-L rule first
    crosses (the least look n whose boundary is at most n)."""
    rule = next(r for r in SPARKLE_L.rules if r.id == rule_id)
    table = table_for(rule)  # type: ignore[arg-type]
    return next(n for n, bound in zip(table.looks, table.stop_if_at_least, strict=True)
                if bound is not None and bound <= n)  # fmt: skip


SPARKLE_L = load_plan(Path(__file__).parent.parent / "deploy" / "plans" / "sparkle-l.yaml")
CHEMO_CROSSES = _all_events_crossing("chemotherapy-related-g3")
"""Patients in a ``crossing_trial`` that cross the chemotherapy rule only (6 of 6)."""
BOTH_CROSS = _all_events_crossing("overall-related-g3")
"""Patients in a ``crossing_trial`` that also cross the overall rule (20 of 20, from min_n)."""


def crossing_trial(patients: int = CHEMO_CROSSES, site: str = "S1", prefix: str = "P") -> Trial:
    """Under the SPARKLE-L plan: each patient has a chemotherapy-related grade 3 neutropenia,
    and a last, normal lab on day 200 moves the clock past every window.

    As the windows complete (the chemotherapy one on day 57, the on-study one on day 182),
    ``CHEMO_CROSSES`` patients cross the chemotherapy rule; ``BOTH_CROSS`` patients cross the
    overall rule too. Fewer than ``CHEMO_CROSSES`` cross nothing.
    """
    trial = Trial()
    for i in range(1, patients + 1):
        patient = f"{prefix}{i}"
        trial.enrol(patient, 0, site)
        trial.treat(patient, "chemotherapy", 1, site)
        trial.ae(patient, 3 + i, *NEUTROPENIA, 3, ct="possible", site=site)
    trial.lab(f"{prefix}{patients}", FOLLOWED_DAY, "ALT", 1.0, site)
    return trial
