"""Publishing in whole batches (processors/publishing.py), against a stand-in producer: each
message once, on its key's partition by Kafka's default partitioning (computed here with
kafka-python's own murmur2), in order within its partition, batches split when full, and a
failed acknowledgement raised. The real broker is in test_distributed.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kafka.partitioner.default import murmur2

from processors.publishing import send_batched

PARTITIONS = {0, 1, 2, 3, 4, 5}


class Batch:
    def __init__(self, capacity: int) -> None:
        self.capacity, self.messages = capacity, list[tuple[bytes, bytes]]()

    def append(self, *, key: bytes, value: bytes, timestamp: None) -> object | None:
        if self.messages and len(self.messages) >= self.capacity:
            return None  # full (the first message always fits, as aiokafka's builder)
        self.messages.append((key, value))
        return object()


class Producer:
    """What ``send_batched`` uses of aiokafka's producer."""

    def __init__(self, capacity: int = 3, fail: bool = False) -> None:
        self.capacity, self.fail = capacity, fail
        self.sent: list[tuple[str, int, list[tuple[bytes, bytes]]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return PARTITIONS

    def create_batch(self) -> Batch:
        return Batch(self.capacity)

    async def send_batch(self, batch: Batch, topic: str, *, partition: int) -> Any:
        self.sent.append((topic, partition, batch.messages))
        acknowledged = asyncio.get_running_loop().create_future()
        if self.fail:
            acknowledged.set_exception(ConnectionError("not acknowledged"))
        else:
            acknowledged.set_result(None)
        return acknowledged


def kafka_partition(key: bytes) -> int:
    return int((murmur2(key) & 0x7FFFFFFF) % len(PARTITIONS))


def test_each_message_once_on_its_keys_partition_in_order_in_batches_of_the_capacity() -> None:
    messages = [(f"P-{n % 7:03d}".encode(), f"{n}".encode()) for n in range(40)]
    producer = Producer(capacity=3)
    asyncio.run(send_batched(producer, "t.events", messages))
    assert all(topic == "t.events" for topic, _, _ in producer.sent)
    assert all(1 <= len(batch) <= 3 for _, _, batch in producer.sent)
    received = [(p, key, value) for _, p, batch in producer.sent for key, value in batch]
    assert sorted(value for _, _, value in received) == sorted(v for _, v in messages)
    assert all(p == kafka_partition(key) for p, key, _ in received)
    for partition in PARTITIONS:  # a partition's messages in the order they were given
        mine = [value for p, _, value in received if p == partition]
        assert mine == [v for k, v in messages if kafka_partition(k) == partition]
    assert len({p for p, _, _ in received}) > 1  # the keys spread over several partitions


def test_nothing_to_send_sends_nothing() -> None:
    producer = Producer()
    asyncio.run(send_batched(producer, "t.events", []))
    assert producer.sent == []


def test_a_batch_not_acknowledged_raises() -> None:
    with pytest.raises(ConnectionError):
        asyncio.run(send_batched(Producer(fail=True), "t.events", [(b"P-001", b"{}")]))
