"""The worker's shortcuts past the store: a batch that continues what this process stored is
not looked up again, the events ingest stored are folded as they are (not read back), and the
monitor reads the log only when it must."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import patch

import pytest
from conftest import EXAMPLES

from processors import gaps, pipeline
from processors.pipeline import Submission
from safety_stream.kafka.config import KafkaSettings
from safety_stream.runtime import Runtime, build_memory_runtime

LINES = (EXAMPLES / "sparkle-l-sample.ndjson").read_bytes().splitlines()
SETTINGS = KafkaSettings(bootstrap="127.0.0.1:9")


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.chdir(tmp_path)
    runtime = build_memory_runtime()
    yield runtime
    runtime.close()


def batch(offsets: range) -> list[Submission]:
    return [Submission("t.submissions", 0, n, LINES[n]) for n in offsets]


def test_a_batch_that_continues_what_this_process_stored_is_not_looked_up(
    runtime: Runtime,
) -> None:
    ingester = gaps.Ingester(runtime, SETTINGS)
    with patch.object(gaps, "stored_offsets", wraps=gaps.stored_offsets) as looked_up:
        ingester(batch(range(0, 4)))
        assert looked_up.call_count == 1  # nothing known yet
        ingester(batch(range(4, 8)))
        assert looked_up.call_count == 1  # continues offset 3 without a hole
        ingester(batch(range(3, 10)))  # redelivered from 3: looked up, 3-7 skipped
        assert looked_up.call_count == 2
    assert runtime.store.head() == 10


def test_a_hole_after_what_this_process_stored_is_read_from_kafka(runtime: Runtime) -> None:
    ingester = gaps.Ingester(runtime, SETTINGS)
    ingester(batch(range(0, 4)))
    with patch.object(gaps, "_read", return_value=batch(range(4, 6))) as read:
        ingester(batch(range(6, 8)))
    read.assert_called_once_with(SETTINGS, ("t.submissions", 0), 4, 6)
    assert runtime.store.head() == 8


def test_events_handed_over_are_folded_without_reading_the_log(runtime: Runtime) -> None:
    reports = pipeline.ingest_batch(runtime, batch(range(0, 10)))
    stored = [a for r in reports for a in r.appended]
    with patch("safety_stream.projections.projector.fold") as read_log:
        assert pipeline.project(runtime, stored, upto=stored[-1][0]) == 10
    read_log.assert_not_called()
    assert runtime.projector.state.position == 10


def test_the_log_is_read_when_the_events_handed_over_do_not_continue_the_projection(
    runtime: Runtime,
) -> None:
    pipeline.ingest_batch(runtime, batch(range(0, 5)))  # never handed over
    second = pipeline.ingest_batch(runtime, batch(range(5, 10)))
    stored = [a for r in second for a in r.appended]
    assert pipeline.project(runtime, stored, upto=stored[-1][0]) == 10
    assert runtime.projector.state.position == 10


def test_the_log_is_read_up_to_the_head_a_wake_up_names(runtime: Runtime) -> None:
    mine = [a for r in pipeline.ingest_batch(runtime, batch(range(0, 5))) for a in r.appended]
    pipeline.ingest_batch(runtime, batch(range(5, 10)))  # another worker's, after mine
    assert pipeline.project(runtime, mine, upto=10) == 10
    assert runtime.projector.state.position == 10


def test_a_heartbeat_reads_the_log() -> None:
    assert pipeline.wakes_head([json.dumps({"head": 7}).encode(), b'{"head":3}']) == 7
    assert pipeline.wakes_head([b'{"head":7}', b'{"head":null}']) is None
    assert pipeline.wakes_head([b"not json"]) is None
    assert pipeline.wakes_head([]) is None


def test_no_tick_and_no_read_of_the_log_while_no_timer_is_due(runtime: Runtime) -> None:
    pipeline.ingest_batch(runtime, batch(range(0, 10)))
    with patch.object(runtime.projector, "catch_up") as catch_up:
        assert not pipeline.tick_when_due(runtime)
    catch_up.assert_not_called()


def test_an_idle_wake_up_saves_the_projection_once_it_has_caught_up(runtime: Runtime) -> None:
    stored = [a for r in pipeline.ingest_batch(runtime, batch(range(0, 10))) for a in r.appended]
    pipeline.project(runtime, stored)
    projector = runtime.projector
    assert projector.unsaved == 10  # under the checkpoint interval: not saved yet
    with patch.object(projector, "checkpoint", wraps=projector.checkpoint) as saved:
        assert not pipeline.save_when_idle(runtime, idle_wake=False)  # a store's wake-up
        pipeline.ingest_batch(runtime, batch(range(10, 12)))  # stored, not folded yet
        assert not pipeline.save_when_idle(runtime, idle_wake=True)  # not caught up
        assert saved.call_count == 0 and projector.unsaved == 10
        pipeline.project(runtime)
        assert pipeline.save_when_idle(runtime, idle_wake=True)
        assert saved.call_count == 1 and projector.unsaved == 0
        assert not pipeline.save_when_idle(runtime, idle_wake=True)  # nothing new to save
        assert saved.call_count == 1


def test_an_idle_wake_up_is_told_from_the_others_and_names_no_head() -> None:
    store_wake, heartbeat = b'{"head":12}', pipeline.HEARTBEAT_WAKE
    assert pipeline.idle_wake_in([store_wake, pipeline.IDLE_WAKE])
    assert not pipeline.idle_wake_in([store_wake, heartbeat])
    assert pipeline.wakes_head([store_wake, pipeline.IDLE_WAKE]) is None  # read the log
