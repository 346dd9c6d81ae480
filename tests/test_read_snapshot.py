"""The application's read snapshot: what a principal sees is decided in one place (a site: its
own patients, AEs and report clocks, and no trial-wide position; readers: everything), it is
copied out (the live projection is not shared), and it is consistent (one log position, even
while another thread posts)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from trial_builder import CHEMO_CROSSES, DIARRHEA, NEUTROPENIA, Trial

from safety_stream.application.reads import EVERYTHING, ReadSnapshot
from safety_stream.application.submissions import EmbeddedSubmitter, KafkaSubmitter
from safety_stream.auth import Principal
from safety_stream.events import encode_json
from safety_stream.ingest import IngestReport
from safety_stream.runtime import Runtime, build_memory_runtime
from safety_stream.validation.records import InputFormat

SH, BJ = "CN-SH-01", "CN-BJ-02"
ADMIN = Principal("admin", "admin", None)
SHANGHAI = Principal(SH, "site", SH)
BEIJING = Principal(BJ, "site", BJ)
DSMB = Principal("dsmb", "dsmb", None)


def two_sites() -> Trial:
    """Shanghai crosses the chemotherapy rule; each site has one serious AE (a report clock,
    and a late one: the server received it long after the site recorded it)."""
    trial = Trial()
    for i in range(1, CHEMO_CROSSES + 1):
        trial.enrol(f"SH-{i:03d}", 0, SH)
        trial.treat(f"SH-{i:03d}", "chemotherapy", 1, SH)
        trial.ae(f"SH-{i:03d}", 3 + i, *NEUTROPENIA, 3, ct="possible", site=SH)
    trial.ae(
        "SH-001",
        20,
        *DIARRHEA,
        3,
        ct="possible",
        site=SH,
        seriousness=["hospitalisation"],
        expectedness="unexpected",
    )
    for i in range(1, 3):
        trial.enrol(f"BJ-{i:03d}", 0, BJ)
        trial.treat(f"BJ-{i:03d}", "chemotherapy", 2, BJ)
    trial.ae(
        "BJ-001",
        9,
        *DIARRHEA,
        3,
        ct="possible",
        site=BJ,
        seriousness=["hospitalisation"],
        expectedness="unexpected",
    )
    return trial


def submit(runtime: Runtime, trial: Trial) -> IngestReport:
    body = "\n".join(encode_json(e) for e in trial.events).encode()
    report = runtime.submitter.submit(body, InputFormat.NDJSON, ADMIN, None)
    assert isinstance(report, IngestReport)
    assert {o.status for o in report.outcomes} == {"stored"}
    return report


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    runtime = build_memory_runtime()
    submit(runtime, two_sites())
    yield runtime
    runtime.close()


def sites_in(snapshot: ReadSnapshot) -> set[str]:
    assert snapshot.monitor is not None
    return (
        {p.site_id for p in snapshot.patients.values()}
        | {a.site_id for a in snapshot.aes.values()}
        | {c.site_id for c in snapshot.monitor.report_clocks}
        | {snapshot.aes[a].site_id for a in snapshot.monitor.late_aes}
        | {c.site_id for r in snapshot.monitor.rules for c in r.clocks or []}
    )


def test_the_embedded_runtime_submits_here_and_the_distributed_one_to_kafka(
    runtime: Runtime,
) -> None:
    assert isinstance(runtime.submitter, EmbeddedSubmitter)
    assert not isinstance(runtime.submitter, KafkaSubmitter)
    assert runtime.store.head() == len(two_sites().events)


def test_a_site_sees_only_its_own_patients_aes_and_clocks_and_no_position(
    runtime: Runtime,
) -> None:
    for principal, site, patients in ((SHANGHAI, SH, CHEMO_CROSSES), (BEIJING, BJ, 2)):
        snapshot = runtime.reads.snapshot(principal)
        assert snapshot.site == site
        assert sites_in(snapshot) == {site}
        assert len(snapshot.patients) == patients
        assert snapshot.position is None and snapshot.trial_state().position == 0
        monitor = snapshot.monitor
        assert monitor is not None
        assert (monitor.position, monitor.clock) == (None, None)
        assert len(monitor.report_clocks) == 1 and len(monitor.late_aes) == 1
        # nothing trial-wide: no counting rules, sentinels, decisions or quarantined events
        assert [r.kind for r in monitor.rules] == ["expedited_report"]
        assert (monitor.counting, monitor.decisions, monitor.quarantined) == ((), (), ())
        assert dict(monitor.raised) == {}
        # the toxicity tables count its own patients only
        for table in snapshot.toxicity():
            assert {row.site_id for row in table.by_site} <= {site}
        assert runtime.reads.monitoring(principal) == monitor


def test_a_dsmb_member_sees_every_site_and_the_position(runtime: Runtime) -> None:
    snapshot = runtime.reads.snapshot(DSMB)
    assert snapshot.site is None
    assert sites_in(snapshot) == {SH, BJ}
    assert len(snapshot.patients) == CHEMO_CROSSES + 2
    assert snapshot.position == runtime.store.head()
    monitor = snapshot.monitor
    assert monitor is not None and monitor.position == snapshot.position
    assert monitor.clock is not None
    assert len(monitor.report_clocks) == 2 and len(monitor.late_aes) == 2
    assert {r.kind for r in monitor.rules} >= {"bayesian", "sentinel", "expedited_report"}
    chemo = [c for c in monitor.counting if c.status == "crossed"]
    assert chemo and chemo[0].path[-1][1] >= CHEMO_CROSSES  # x on the plotted path
    assert runtime.reads.snapshot(EVERYTHING).patients == snapshot.patients


def test_the_snapshot_is_a_copy_not_the_live_projection(runtime: Runtime) -> None:
    snapshot = runtime.reads.snapshot(DSMB)
    live = runtime.projector.state
    for pid, patient in snapshot.patients.items():
        assert patient == live.patients[pid] and patient is not live.patients[pid]
        for modality, exposure in patient.exposure.items():
            assert exposure is not live.patients[pid].exposure[modality]
    for ae_id, ae in snapshot.aes.items():
        assert ae == live.aes[ae_id] and ae is not live.aes[ae_id]
        assert ae.course is not live.aes[ae_id].course
    with pytest.raises(TypeError):
        snapshot.patients["X"] = next(iter(snapshot.patients.values()))  # type: ignore[index]
    before = {pid: len(p.exposure) for pid, p in snapshot.patients.items()}
    more = Trial()
    more.treat("BJ-001", "immunotherapy", 30, BJ)
    submit(runtime, more)
    assert {pid: len(p.exposure) for pid, p in snapshot.patients.items()} == before
    assert len(runtime.reads.snapshot(DSMB).patients["BJ-001"].exposure) == 2


def test_another_sites_patient_and_dead_letters_are_not_found(runtime: Runtime) -> None:
    assert runtime.reads.patient_history(BEIJING, "SH-001") is None
    own = runtime.reads.patient_history(SHANGHAI, "SH-001")
    assert own is not None and {a.site_id for a in own.aes} == {SH}
    assert len(own.events) == len(own.aes) == 2
    assert runtime.reads.patient_history(DSMB, "SH-001") == own
    bad = b'{"event_type": "patient.enrolled", "site_id": "' + BJ.encode() + b'"}'
    runtime.submitter.submit(bad, InputFormat.JSON, BEIJING, None)
    (dead,) = runtime.reads.rejections(DSMB, limit=10)
    assert runtime.reads.rejections(BEIJING, limit=10) == [dead]
    assert runtime.reads.rejections(SHANGHAI, limit=10) == []
    assert runtime.reads.rejection(SHANGHAI, dead.id) is None
    assert runtime.reads.rejection(BEIJING, dead.id) == dead


def test_a_snapshot_is_taken_at_one_position_while_another_thread_posts() -> None:
    runtime = build_memory_runtime()
    try:
        trial = Trial()
        for i in range(200):
            site = (SH, BJ)[i % 2]
            trial.enrol(f"P-{i:03d}", 0, site)
            trial.treat(f"P-{i:03d}", "chemotherapy", 1, site)
        events = [encode_json(e) for e in trial.events]
        done = threading.Event()

        def post() -> None:
            try:
                for start in range(0, len(events), 2):  # each pair: one patient, then exposure
                    body = "\n".join(events[start : start + 2]).encode()
                    runtime.submitter.submit(body, InputFormat.NDJSON, ADMIN, None)
            finally:
                done.set()

        poster = threading.Thread(target=post)
        poster.start()
        seen = 0
        while not done.is_set() or seen < 2:
            snapshot = runtime.reads.snapshot(DSMB)
            assert snapshot.position is not None
            # every event up to the position, none after: two events per patient, each one
            # enrolled and exposed at once
            assert len(snapshot.patients) * 2 == snapshot.position
            assert all("chemotherapy" in p.exposure for p in snapshot.patients.values())
            shanghai = runtime.reads.snapshot(SHANGHAI)
            assert shanghai.position is None
            assert {p.site_id for p in shanghai.patients.values()} <= {SH}
            seen += 1
        poster.join()
        assert len(runtime.reads.snapshot(DSMB).patients) == 200
    finally:
        runtime.close()
