"""A synthetic, always-valid event stream for load tests and benchmarks (not a simulator).

Enrolments, chemotherapy doses, AE reports with random attribution, resolutions and labs, for
patients spread over a dozen sites; deterministic for a given seed. The trial simulator (with
realistic schedules and rates) is a separate, richer tool.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

TERMS = [
    ("Neutrophil count decreased", 10029366, 3),
    ("Diarrhea", 10012727, 2),
    ("Nausea", 10028813, 1),
    ("Fatigue", 10016256, 2),
    ("Alanine aminotransferase increased", 10001551, 3),
    ("Rash maculo-papular", 10037868, 1),
]
ATTRIBUTIONS = ["unrelated", "unlikely", "possible", "probable", "definite"]


def make_events(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events: list[dict[str, Any]] = []
    patients: list[tuple[str, str, list[str]]] = []

    def envelope(kind: str, site: str, patient: str, when: datetime) -> dict[str, Any]:
        return {
            "event_type": kind,
            "schema_version": 1,
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "trial_id": "SPARKLE-L",
            "site_id": site,
            "patient_id": patient,
            "reporter": "crc.bench",
            "occurred_at": when.isoformat().replace("+00:00", "Z"),
            "recorded_at": (when + timedelta(hours=5)).isoformat().replace("+00:00", "Z"),
        }

    while len(events) < count:
        when = start + timedelta(minutes=len(events))
        if not patients or rng.random() < 0.02:
            site = f"SITE-{rng.randint(1, 12):02d}"
            patient = f"P{len(patients):05d}"
            patients.append((site, patient, []))
            events.append(
                envelope("patient.enrolled", site, patient, when)
                | {"consent_date": when.date().isoformat(), "planned_modalities": ["chemotherapy"]}
            )
            continue
        site, patient, aes = rng.choice(patients)
        roll = rng.random()
        if roll < 0.55:
            term, code, grade = rng.choice(TERMS)
            event = envelope("ae.reported", site, patient, when) | {
                "ctcae_version": "5.0",
                "ctcae_term": term,
                "meddra_code": code,
                "grade": grade,
                "onset_date": when.date().isoformat(),
                "seriousness": [],
                "expectedness": "expected",
                "immune_related": False,
                "attribution": {
                    m: rng.choice(ATTRIBUTIONS)
                    for m in ("radiotherapy", "chemotherapy", "immunotherapy")
                },
                "action_taken": "dose_not_changed",
            }
            aes.append(event["event_id"])
        elif roll < 0.70 and aes:
            event = envelope("ae.resolved", site, patient, when) | {
                "ae_id": rng.choice(aes),
                "outcome": "recovered",
                "end_date": when.date().isoformat(),
            }
        elif roll < 0.85:
            event = envelope("treatment.administered", site, patient, when) | {
                "treatment": {"modality": "chemotherapy", "regimen": "FOLFOX", "cycle": 1}
            }
        else:
            event = envelope("lab.resulted", site, patient, when) | {
                "test": "ALT",
                "value": 31.0,
                "unit": "U/L",
                "uln": 40.0,
            }
        events.append(event)
    return events
