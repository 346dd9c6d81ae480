"""The review dataset folded live through the production path: every administration, lab and
Child-Pugh score of a patient, every version of an AE with who recorded it, how a patient left
the study; the same as the report's snapshot folds; what a site sees is its own."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from test_read_snapshot import ADMIN, BEIJING, SHANGHAI, submit, two_sites
from trial_builder import DIARRHEA, Trial

from safety_stream.report.snapshot import snapshot_as_of
from safety_stream.review.dataset import ReviewData
from safety_stream.runtime import build_memory_runtime


def history_trial() -> tuple[Trial, str]:
    trial = Trial()
    trial.enrol("P1", 0)
    trial.treat("P1", "radiotherapy", 2)
    trial.treat("P1", "chemotherapy", 3)
    trial.lab("P1", 4, "ALT", 3.5)
    trial.child_pugh("P1", 5, 6)
    ae = trial.ae("P1", 6, *DIARRHEA, 2, ct="probable")
    trial.update("P1", 8, ae, grade=3, grade_change="worsened")
    trial.add("ae.resolved", "P1", 12, ae_id=ae, outcome="recovered", end_date="2026-01-13")
    trial.add("patient.withdrawn", "P1", 20, reason="adverse_event", details="persistent diarrhoea")
    return trial, ae


def test_a_patient_and_an_ae_keep_their_whole_history() -> None:
    runtime = build_memory_runtime()
    trial, ae_id = history_trial()
    submit(runtime, trial)
    data = runtime.review.read(ADMIN, lambda d: d)
    patient, detail = data.patient("P1") or (None, None)
    assert patient is not None and detail is not None
    assert [a.modality for a in detail.administrations] == ["radiotherapy", "chemotherapy"]
    sbrt = detail.administrations[0]
    assert (sbrt.fraction, sbrt.fractions_planned, sbrt.dose_gy) == (1, 5, 10.0)
    assert detail.administrations[1].regimen == "FOLFOX"
    assert [(lab.test, lab.times_uln) for lab in detail.labs] == [("ALT", 3.5)]
    assert [(c.score, c.child_pugh_class) for c in detail.child_pugh] == [(6, "A")]
    assert detail.exit is not None and detail.exit.kind == "withdrawn"
    assert detail.exit.reason == "adverse_event" and detail.death is None
    assert detail.planned_modalities == ["chemotherapy", "immunotherapy", "radiotherapy"]

    found = data.ae(UUID(ae_id))
    assert found is not None
    state, ae = found
    assert state.worst == 3 and state.status == "resolved"
    assert [v.event_type for v in ae.history] == ["ae.reported", "ae.updated", "ae.resolved"]
    assert ae.history[1].changes == {"grade": 3, "grade_change": "worsened"}
    assert ae.history[1].reason == "review" and ae.history[1].reporter == "test"
    assert ae.history[2].changes == {"outcome": "recovered", "end_date": "2026-01-13"}
    assert ae.action_taken == "dose_not_changed" and ae.meddra_code == DIARRHEA[1]
    assert [v.position for v in ae.history] == sorted(v.position for v in ae.history)


def test_the_live_fold_equals_the_reports_snapshot() -> None:
    runtime = build_memory_runtime()
    trial, _ = history_trial()
    submit(runtime, trial)
    submit(runtime, two_sites())
    live = runtime.review.read(ADMIN, lambda d: d)
    snapshot = snapshot_as_of(runtime.store, runtime.plan, datetime.now(UTC)).review()
    assert live.position == snapshot.position == runtime.store.head()
    assert live.chain_head == snapshot.chain_head
    assert live.details == snapshot.details
    assert live.state.aes == snapshot.state.aes

    # folded again from nothing: the same (the live one was folded in two catch-ups)
    again = ReviewData()
    again.fold_payloads(
        (s.position, s.payload, s.stored_at, s.chain_hash) for s in runtime.store.read()
    )
    assert again.details == live.details


def test_a_site_sees_only_its_own_patients_and_aes() -> None:
    runtime = build_memory_runtime()
    submit(runtime, two_sites())
    shanghai = runtime.review.read(SHANGHAI, lambda d: d)
    beijing = runtime.review.read(BEIJING, lambda d: d)
    assert {p.site_id for p, _ in shanghai.patients()} == {SHANGHAI.sees_site}
    assert {a.site_id for a, _ in beijing.aes()} == {BEIJING.sees_site}
    assert {d.site_id for d in beijing.details.patients.values()} == {BEIJING.sees_site}
    assert shanghai.position == 0 and shanghai.chain_head == ""
    everything = runtime.review.read(ADMIN, lambda d: d)
    assert len(everything.patients()) == len(shanghai.patients()) + len(beijing.patients())
