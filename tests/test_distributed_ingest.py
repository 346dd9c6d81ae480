"""Ingest in distributed mode against the real broker: the HTTP API acknowledges a POST once
Kafka has it (202 with partition and offset), the site client counts what was queued, the
site's credential still bounds what it may write, and a site with only ``kcat`` can post."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import httpx
from conftest import require_server
from distributed import kafka_environment, kafka_settings, start_worker, wait_until_done
from realservers import require_binary
from serve_process import start_safety_stream
from trial_builder import BOTH_CROSS, CHEMO_CROSSES, crossing_trial

from safety_stream.client import SiteClient
from safety_stream.events import encode_json
from safety_stream.kafka.topics import Topics
from safety_stream.store.sql import SqlEventStore


def site_token(db: str, site: str) -> str:
    command = [str(Path(sys.executable).with_name("safety-stream")), "sites", "add", site]
    done = subprocess.run([*command, "--db", db], check=True, capture_output=True, text=True)
    return done.stdout.splitlines()[-1]


def test_the_api_queues_on_kafka_and_the_workers_store(postgres_url: str, tmp_path: Path) -> None:
    settings = kafka_settings(require_server("Kafka", "SAFETY_STREAM_TEST_KAFKA"))
    token = site_token(postgres_url, "S1")
    worker = start_worker(settings, postgres_url, tmp_path)
    api = start_safety_stream(postgres_url, tmp_path, env=kafka_environment(settings))
    events = crossing_trial(BOTH_CROSS, site="S1").events
    lines = [encode_json(e).encode() for e in events]
    forged = json.loads(lines[0]) | {"site_id": "S2", "patient_id": "X9", "event_id": str(uuid4())}
    try:
        client = SiteClient(api.url, token)
        summary = client.post_events([json.loads(line) for line in lines] + [forged])
        client.close()
        assert summary.queued == len(lines) + 1  # acknowledged by the broker, not yet stored
        again = httpx.post(
            f"{api.url}/v1/events", content=lines[0],
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )  # fmt: skip
        assert again.status_code == 202
        [item] = again.json()["results"]
        assert again.json()["topic"] == Topics.of(settings).submissions
        assert item["offset"] == len(lines) + 1  # the resend is the next record on the log
        wait_until_done(postgres_url, settings, len(lines) + 2)
        toxicity = httpx.get(
            f"{api.url}/v1/toxicity", headers={"Authorization": f"Bearer {api.token}"}
        ).json()
        rejected = httpx.get(
            f"{api.url}/v1/rejections", headers={"Authorization": f"Bearer {api.token}"}
        ).json()
    finally:
        api.stop()
        worker.stop()
    chemo = next(m for m in toxicity["modalities"] if m["modality"] == "chemotherapy")
    assert chemo["exposed"] == BOTH_CROSS  # the resend counted once
    assert chemo["grade3_or_worse"]["count"] == BOTH_CROSS
    [forbidden] = rejected
    assert forbidden["problems"][0]["code"] == "auth.site_mismatch"


def test_a_site_with_only_kcat_can_post(postgres_url: str, tmp_path: Path) -> None:
    kcat = require_binary("kcat")
    settings = kafka_settings(require_server("Kafka", "SAFETY_STREAM_TEST_KAFKA"))
    events = crossing_trial(CHEMO_CROSSES, site="S7").events
    lines = [f"SPARKLE-L|{encode_json(e)}" for e in events]
    lines.append('SPARKLE-L|{"event_type": "ae.reported", "grade": "three"}')
    worker = start_worker(settings, postgres_url, tmp_path)
    try:
        subprocess.run(
            [kcat, "-P", "-b", settings.bootstrap, "-t", Topics.of(settings).submissions,
             "-K", "|", "-X", "acks=all", "-X", "enable.idempotence=true"],
            input="\n".join(lines) + "\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
        wait_until_done(postgres_url, settings, len(lines))
        metrics = worker.metrics()
    finally:
        worker.stop()
    stored = [
        line for line in metrics.splitlines()
        if line.startswith("safety_stream_ingest_records_total{") and 'outcome="stored"' in line
    ]  # fmt: skip
    assert sum(float(line.rsplit(" ", 1)[1]) for line in stored) == len(events)
    assert (
        'safety_stream_ingest_records_total{event_type="ae.reported",outcome="rejected"} 1.0'
        in metrics
    )


def test_topics_create_is_idempotent_and_post_kafka_queues_a_file(
    postgres_url: str, tmp_path: Path
) -> None:
    settings = kafka_settings(require_server("Kafka", "SAFETY_STREAM_TEST_KAFKA"))
    executable = str(Path(sys.executable).with_name("safety-stream"))
    env = kafka_environment(settings)
    listed = subprocess.run(
        [executable, "topics", "create", "--kafka", settings.bootstrap],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert listed.count("\texists") == len(listed.splitlines()) == 6  # made by kafka_settings
    events = crossing_trial(CHEMO_CROSSES, site="S3").events
    path = tmp_path / "events.ndjson"
    path.write_text("".join(encode_json(e) + "\n" for e in events))
    posted = subprocess.run(
        [executable, "post", str(path), "--kafka", settings.bootstrap],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert f"queued {len(events)} record(s) on {Topics.of(settings).submissions}" in posted
    worker = start_worker(settings, postgres_url, tmp_path)
    try:
        wait_until_done(postgres_url, settings, len(events))
    finally:
        worker.stop()
    store = SqlEventStore.open(postgres_url)
    assert [str(e.event_id) for e in store.read()] == [str(e.event_id) for e in events]
    store.close()
