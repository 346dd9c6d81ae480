"""/metrics: the pipeline counters and the trial's state gauges, checked by promtool, and
never a patient or AE identifier in a label."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import EXAMPLES
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from realservers import require_binary
from trial_builder import CHEMO_CROSSES, crossing_trial

from safety_stream.api.app import create_app
from safety_stream.events import encode_json
from safety_stream.runtime import Runtime, build_memory_runtime, build_runtime
from safety_stream.settings import Settings

SAMPLE = (EXAMPLES / "sparkle-l-sample.ndjson").read_bytes()


@pytest.fixture(params=["memory", "sqlite"])
def runtime(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    monkeypatch.chdir(tmp_path)  # the default alert channel writes a file here
    if request.param == "memory":
        runtime = build_memory_runtime()
    else:
        runtime = build_runtime(Settings(db=request.getfixturevalue("sqlite_url")))
    yield runtime
    runtime.close()


def reader(runtime: Runtime) -> dict[str, str]:
    """Headers of a new safety officer's credential (a reader may scrape)."""
    token = runtime.credentials.add(f"officer-{uuid.uuid4().hex[:8]}", "safety_officer", None)
    return {"Authorization": f"Bearer {token}"}


def scrape(runtime: Runtime) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """Post the sample, a crossing trial and one invalid record; return /metrics parsed."""
    client = TestClient(create_app(runtime))
    token = runtime.credentials.add("admin", "admin", None)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    assert client.post("/v1/events", content=SAMPLE, headers=headers).status_code == 201
    crossing_events = crossing_trial(CHEMO_CROSSES, site="CN-GZ-09").events
    crossing = "\n".join(encode_json(e) for e in crossing_events)
    assert client.post("/v1/events", content=crossing.encode(), headers=headers).status_code == 201
    bad = b'{"event_type": "ae.reported", "schema_version": 1}'
    assert client.post("/v1/events", content=bad, headers=headers).status_code == 422
    text = client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_show_ingest_state_and_rules(runtime: Runtime) -> None:
    _, samples = scrape(runtime)
    assert value(samples, "safety_stream_ingest_records_total", outcome="stored",
                 event_type="ae.reported") >= 4  # fmt: skip
    assert value(samples, "safety_stream_ingest_records_total", outcome="rejected",
                 event_type="ae.reported") == 1  # fmt: skip
    rejected = {k[1] for k in samples if k[0] == "safety_stream_ingest_rejections_total"}
    assert rejected and all(dict(labels)["reason"].startswith("schema.") for labels in rejected)
    # The crossing trial: four chemotherapy-related grade 3 AEs at CN-GZ-09.
    assert value(samples, "safety_stream_adverse_events", modality="chemotherapy", grade="3",
                 site="CN-GZ-09") == CHEMO_CROSSES  # fmt: skip
    assert value(samples, "safety_stream_site_patients_exposed", modality="chemotherapy",
                 site="CN-GZ-09") == CHEMO_CROSSES  # fmt: skip
    rule = {"rule": "chemotherapy-related-g3", "modality": "chemotherapy"}
    kind = next(r.kind for r in runtime.plan.rules if r.id == rule["rule"])
    assert value(samples, "safety_stream_rule_state", kind=kind, **rule) == 2
    # crossed when the first patients to complete the window (the crossing trial's: their
    # chemotherapy began first) were all counted; it stays crossed as the sample's patients join
    counter = next(c for c in runtime.monitor.counting if c.rule.id == rule["rule"])
    assert counter.crossed_at == CHEMO_CROSSES
    assert counter.counted_among_first(CHEMO_CROSSES) == CHEMO_CROSSES
    assert counter.table.at(CHEMO_CROSSES) == CHEMO_CROSSES
    assert value(samples, "safety_stream_rule_counted_patients", **rule) == counter.x
    assert value(samples, "safety_stream_rule_boundary_patients", **rule) == counter.boundary()
    assert value(samples, "safety_stream_derived_events_total", kind="boundary.crossed") >= 1
    assert value(samples, "safety_stream_projection_lag_events") == 0
    assert value(samples, "safety_stream_log_position") == runtime.store.head()
    assert value(samples, "safety_stream_ingest_to_projection_seconds_count") == 3
    assert value(samples, "safety_stream_alerts", severity="critical", state="unacknowledged") == 0
    runtime.dispatcher.run_once()  # plans the alerts (delivery goes to the local file)
    after = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(
            TestClient(create_app(runtime)).get("/metrics", headers=reader(runtime)).text
        )
        for s in family.samples
    }
    assert value(after, "safety_stream_alerts", severity="critical", state="unacknowledged") >= 1
    assert value(after, "safety_stream_alert_deliveries_total", channel="file",
                 outcome="delivered") >= 1  # fmt: skip


def test_promtool_finds_the_live_metrics_clean(runtime: Runtime) -> None:
    promtool = require_binary("promtool")
    text, _ = scrape(runtime)
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60
    )
    assert checked.returncode == 0, checked.stderr.decode() + checked.stdout.decode()
    assert checked.stdout.decode().strip() == "" and checked.stderr.decode().strip() == ""


def test_no_label_name_or_value_identifies_a_patient_or_an_ae(runtime: Runtime) -> None:
    _, samples = scrape(runtime)
    with runtime.projector.lock:
        patients = set(runtime.projector.state.patients)
        aes = {str(a) for a in runtime.projector.state.aes}
    assert patients and aes
    uuid_like = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")
    for _, labels in samples:
        for name, label_value in labels:
            assert not re.search(r"patient|subject|ae_id|event_id", name), name
            assert label_value not in patients and label_value not in aes, (name, label_value)
            assert not uuid_like.search(label_value), (name, label_value)
            assert not re.fullmatch(r"SPK-\d+|P\d+", label_value), (name, label_value)


def test_metrics_need_the_metrics_token_or_a_reader_and_refuse_a_site() -> None:
    runtime = build_memory_runtime(Settings(metrics_token="a-metrics-token-of-some-length"))
    client = TestClient(create_app(runtime))
    site = runtime.credentials.add("CN-SH-01", "site", "CN-SH-01")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    refused = client.get("/metrics", headers={"Authorization": f"Bearer {site}"})
    assert refused.status_code == 403  # every site's counts are not one site's to read
    token = {"Authorization": "Bearer a-metrics-token-of-some-length"}
    assert "safety_stream_log_position" in client.get("/metrics", headers=token).text
    assert client.get("/metrics", headers=reader(runtime)).status_code == 200
    # the metrics token opens /metrics and nothing else
    assert client.get("/v1/toxicity", headers=token).status_code == 401
