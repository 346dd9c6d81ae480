"""The worker's wiring without a broker: the submissions intake's batches (called as the
consumer calls them) and the Faust agents driven through ``agent.test_context()``: what each
stores, skips, keeps and publishes. The real broker is in test_distributed.py."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

import faust.tables
import faust.topics
import faust.transport.drivers.aiokafka
import pytest
from conftest import EXAMPLES
from trial_builder import BOTH_CROSS, crossing_trial

from processors import pipeline
from processors.app import WorkerApp, create_app
from processors.pipeline import Submission, ingest_batch
from safety_stream.events import encode_json
from safety_stream.kafka.config import KafkaSettings
from safety_stream.kafka.producer import SITE_HEADER
from safety_stream.runtime import Runtime, build_memory_runtime

LINES = (EXAMPLES / "sparkle-l-sample.ndjson").read_bytes().splitlines()
Sent = list[tuple[str, bytes, bytes]]


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.chdir(tmp_path)  # the default alert channel writes an NDJSON file here
    runtime = build_memory_runtime()
    yield runtime
    runtime.close()


@pytest.fixture
def sent() -> Iterator[Sent]:
    """Every message the agents send, instead of a producer: (topic, key, value)."""
    messages: Sent = []

    async def send(self: Any, *args: Any, key: Any = None, value: Any = None, **_: Any) -> Any:
        messages.append((self.get_topic_name(), key, value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def changelog(*args: Any, **kwargs: Any) -> Any:  # the table's changelog write
        return SimpleNamespace(message=SimpleNamespace(partition=0))

    class Batch:
        def __init__(self) -> None:
            self.messages: list[tuple[Any, Any]] = []

        def append(self, *, key: Any, value: Any, timestamp: Any) -> object:
            self.messages.append((key, value))
            return self

    class Producer:
        """The app's aiokafka producer, as publishing uses it (one partition per topic)."""

        async def partitions_for(self, topic: str) -> set[int]:
            return {0}

        def create_batch(self) -> Batch:
            return Batch()

        async def send_batch(self, batch: Batch, topic: str, *, partition: int) -> Any:
            messages.extend((topic, key, value) for key, value in batch.messages)
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

    with (
        patch.object(faust.topics.Topic, "send", send),
        patch.object(
            faust.transport.drivers.aiokafka.Producer, "_ensure_producer", lambda self: Producer()
        ),
        patch.object(faust.tables.Table, "send_changelog", changelog),
    ):
        yield messages


def worker(runtime: Runtime, tmp_path: Path) -> WorkerApp:
    return create_app(runtime, KafkaSettings(bootstrap="127.0.0.1:9"), data_dir=tmp_path)


def agents(runtime: Runtime, tmp_path: Path) -> dict[str, Any]:
    return worker(runtime, tmp_path).agents


def submissions(
    lines: list[bytes], first: int = 0, headers: dict[str, bytes] | None = None
) -> list[Submission]:
    """Records of partition 0 of the submissions topic from offset ``first`` on."""
    topic = "safety-stream.submissions"
    return [Submission(topic, 0, first + n, line, headers or {}) for n, line in enumerate(lines)]


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


async def settle() -> None:
    await asyncio.sleep(0.1)  # past the take() window: the batch is processed


def topic(sent: Sent, suffix: str) -> list[tuple[bytes, bytes]]:
    return [(k, v) for name, k, v in sent if name == f"safety-stream.{suffix}"]


@run_async
async def test_ingest_stores_keeps_dead_letters_and_skips_a_redelivered_record(
    runtime: Runtime, sent: Sent, tmp_path: Path
) -> None:
    store = worker(runtime, tmp_path).intake.store
    await store(submissions([*LINES[:10], b'{"event_type": "ae.reported", "grade": 9}']))
    # the consumer restarted before its offsets were committed: offsets 3-9 come again
    await store(submissions(LINES[3:10], first=3))
    assert runtime.store.head() == 10
    [rejection] = runtime.store.rejections()
    assert rejection.location == "safety-stream.submissions/0@10"  # topic/partition@offset
    assert any("grade" in p["path"] for p in rejection.problems)
    wakes = [json.loads(v) for _, v in topic(sent, "appended")]
    assert wakes and wakes[-1] == {"head": 10}


@run_async
async def test_ingest_holds_a_site_to_its_own_events(
    runtime: Runtime, sent: Sent, tmp_path: Path
) -> None:
    """The API puts the authenticated site in a header; a record of another site is refused."""
    enrolment = json.loads(LINES[0])
    other = "SITE-99" if enrolment["site_id"] != "SITE-99" else "SITE-98"
    await worker(runtime, tmp_path).intake.store(
        submissions(LINES[:1], headers={SITE_HEADER: other.encode()})
    )
    assert runtime.store.head() == 0
    [rejection] = runtime.store.rejections()
    assert rejection.site_id == other
    assert rejection.problems[0]["code"] == "auth.site_mismatch"


@run_async
async def test_monitor_and_notify_publish_what_the_store_holds_once(
    runtime: Runtime, sent: Sent, tmp_path: Path
) -> None:
    trial = crossing_trial(BOTH_CROSS)
    with runtime.store.write() as session:
        for event in trial.events:
            session.append(event)
    head = len(trial.events)
    found = agents(runtime, tmp_path)
    async with found["monitor"].test_context() as monitor:
        await monitor.put(json.dumps({"head": head}).encode(), partition=0)
        await settle()
        await monitor.put(b'{"head": null}', partition=0)  # a heartbeat: nothing new
        await settle()
    assert runtime.projector.state.position == head
    events = topic(sent, "events")
    assert [json.loads(v)["position"] for _, v in events] == list(range(1, head + 1))
    assert [k for k, _ in events] == [e.patient_id.encode() for e in trial.events]
    assert json.loads(events[0][1])["event"] == json.loads(encode_json(trial.events[0]))
    derived = [json.loads(v) for _, v in topic(sent, "derived")]
    assert {(d["kind"], d["rule_id"]) for d in derived} >= {
        ("boundary.crossed", "chemotherapy-related-g3"),
        ("boundary.crossed", "overall-related-g3"),
    }
    async with found["notify"].test_context() as notify:
        await notify.put(b"{}", partition=0)
        await settle()
        await notify.put(b"{}", partition=0)
        await settle()
    alerts = [json.loads(v) for _, v in topic(sent, "alerts")]
    assert sorted(a["derived_id"] for a in alerts) == sorted(d["derived_id"] for d in derived)
    assert all(a["channels"] for a in alerts)  # routed (default: the NDJSON file channel)


@run_async
async def test_a_failing_store_is_retried_until_the_batch_is_stored(
    runtime: Runtime, sent: Sent, tmp_path: Path
) -> None:
    calls: list[int] = []

    def flaky(runtime: Runtime, batch: list[pipeline.Submission]) -> Any:
        calls.append(len(batch))
        if len(calls) == 1:
            raise ConnectionError("the database went away")
        return ingest_batch(runtime, batch)

    with patch.object(pipeline, "ingest_batch", flaky):
        await worker(runtime, tmp_path).intake.store(submissions(LINES[:5]))  # past one retry
    assert calls == [5, 5]
    assert runtime.store.head() == 5
    assert topic(sent, "appended")  # the monitor was woken once it succeeded
