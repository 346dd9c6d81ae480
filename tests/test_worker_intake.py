"""The submissions intake's order of effects, with a stand-in consumer (no broker): a fetch is
stored before its offsets are committed, a partition given up since the fetch is left alone,
and a refused commit does not stop the worker. The real broker (kill -9, two workers sharing
the partitions, a broker restart) is in test_distributed.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from processors.intake import Intake
from processors.pipeline import Submission
from safety_stream.kafka.config import KafkaSettings

TOPIC = "safety-stream.submissions"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


def records(tp: TopicPartition, offsets: range) -> list[Any]:
    return [
        SimpleNamespace(
            topic=tp.topic,
            partition=tp.partition,
            offset=n,
            value=b"{}",
            headers=[("safety-stream-source", b"test")],
        )
        for n in offsets
    ]


class Consumer:
    """What the intake uses of aiokafka's consumer, recording the order of effects."""

    def __init__(self, held: set[TopicPartition], effects: list[Any], refuse: bool = False):
        self.held, self.effects, self.refuse = held, effects, refuse

    def assignment(self) -> set[TopicPartition]:
        return self.held

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.refuse:
            raise CommitFailedError("the group rebalanced")
        self.effects.append(("commit", offsets))


def intake(effects: list[Any], on_idle: Callable[[], Awaitable[None]] | None = None) -> Intake:
    async def store(batch: Sequence[Submission]) -> None:
        await asyncio.sleep(0)
        effects.append(("store", [(s.partition, s.offset, s.source) for s in batch]))

    return Intake(KafkaSettings(bootstrap="127.0.0.1:9"), TOPIC, "g", store, 500, on_idle)


def take(effects: list[Any], consumer: Consumer, fetched: dict[TopicPartition, Any]) -> None:
    asyncio.run(intake(effects)._take(consumer, fetched))


def test_a_fetch_is_stored_before_its_offsets_are_committed() -> None:
    effects: list[Any] = []
    take(
        effects,
        Consumer({P0, P1}, effects),
        {P0: records(P0, range(5, 8)), P1: records(P1, range(2, 3))},
    )
    assert effects == [
        ("store", [(0, 5, "test"), (0, 6, "test"), (0, 7, "test"), (1, 2, "test")]),
        ("commit", {P0: 8, P1: 3}),  # the next offset to read, per partition
    ]


def test_a_partition_given_up_since_the_fetch_is_neither_stored_nor_committed() -> None:
    effects: list[Any] = []
    take(
        effects,
        Consumer({P1}, effects),
        {P0: records(P0, range(5, 8)), P1: records(P1, range(2, 3))},
    )
    assert effects == [("store", [(1, 2, "test")]), ("commit", {P1: 3})]
    effects.clear()
    take(effects, Consumer(set(), effects), {P0: records(P0, range(5, 8))})
    assert effects == []


def test_a_refused_commit_leaves_the_stored_batch_to_the_new_owner(
    caplog: pytest.LogCaptureFixture,
) -> None:
    effects: list[Any] = []
    take(effects, Consumer({P0}, effects, refuse=True), {P0: records(P0, range(0, 2))})
    assert effects == [("store", [(0, 0, "test"), (0, 1, "test")])]
    assert "not committed (CommitFailedError)" in caplog.text


class Fetches(Consumer):
    """A consumer whose fetches are scripted; the intake is cancelled once they run out."""

    def __init__(self, fetches: list[dict[TopicPartition, Any]], effects: list[Any]) -> None:
        super().__init__({P0}, effects)
        self.fetches = fetches

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        if not self.fetches:
            raise asyncio.CancelledError
        return self.fetches.pop(0)


def test_the_first_empty_fetch_after_stored_records_marks_the_intake_idle_once() -> None:
    effects: list[Any] = []
    consumer = Fetches(
        [{}, {P0: records(P0, range(0, 2))}, {}, {}, {P0: records(P0, range(2, 3))}, {}],
        effects,
    )
    states = []

    async def idle() -> None:
        states.append(taker.idle)
        effects.append("idle")

    taker = intake(effects, idle)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(taker.consume(consumer))
    assert effects == [
        ("store", [(0, 0, "test"), (0, 1, "test")]),
        ("commit", {P0: 2}),
        "idle",  # once, not at the second empty fetch; and not before anything was stored
        ("store", [(0, 2, "test")]),
        ("commit", {P0: 3}),
        "idle",
    ]
    assert states == [True, True] and taker.idle


def test_a_failing_idle_wake_up_does_not_stop_the_intake(caplog: pytest.LogCaptureFixture) -> None:
    effects: list[Any] = []

    async def idle() -> None:
        raise ConnectionError("the broker is away")

    fetches = [{P0: records(P0, range(0, 1))}, {}, {P0: records(P0, range(1, 2))}]
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(intake(effects, idle).consume(Fetches(fetches, effects)))
    assert [e[0] for e in effects] == ["store", "commit", "store", "commit"]
    assert "idle wake-up failed (ConnectionError)" in caplog.text
