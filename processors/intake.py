"""The submissions consumer: records taken from Kafka a batch at a time, stored, and only then
committed.

The worker used to take submissions through a Faust agent. Faust hands a stream one message
at a time: each record cost four asyncio tasks and an ``asyncio.wait`` in the consumer's
fetch loop (``Consumer._drain_messages`` -> ``Service.wait_first``), the conductor's lock
and the stream's iteration and acknowledgement, ~400 us of the interpreter per record on the
development machine, about as much as validating, storing, projecting and monitoring it. Here
a plain aiokafka consumer in a group of its own (``<prefix>-workers-submissions``) hands over
whole fetches (``getmany``, the worker's batch size at most) while it fetches the next ones in
the background, so a backlog is stored in full batches and a lone record at once.

Guarantees (as before, at least once from Kafka, effectively once in the store):
- an offset is committed only after the transaction that stored its record (and the records
  before it in its partition) has committed; a crash before the commit redelivers records,
  which ``ingest`` skips by the offsets the store keeps with them;
- a rebalance waits for the batch in hand to be stored and committed before the partitions go
  (the rebalance listener takes the same lock as the batch), so a new owner starts after it;
- a commit refused because the group moved on is logged and left: the records are stored,
  and whoever owns the partition now skips them.

When a fetch comes back empty after records were stored, the intake is idle: ``idle`` is set
and ``on_idle`` is called once (the worker sends the monitor an idle wake-up, and the monitor
saves its projection once it has caught up, rather than when the checkpoint interval next
falls due).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from processors.pipeline import Submission
from safety_stream.kafka.config import KafkaSettings

log = logging.getLogger(__name__)

# A fetch names every partition held but those with records still buffered, and the next one
# is sent only when it returns: a worker draining a backlog of one partition waited, each time
# its buffer ran dry, for a fetch of its empty partitions that the broker held up to aiokafka's
# 500 ms (three times in a 14,000-record run, ~12 % of it). The broker now holds an empty fetch
# 50 ms at most, and a partition's fetch brings up to 4 MiB (~7,000 records, not ~1,700), so
# the buffer runs dry less often (memory: 4 MiB per partition held, at most). The waits for a
# fetch over that run: 1.4 s with the defaults, 0.7 s with 50 ms, 0.3 s with both.
FETCH_WAIT_MS = 50
PARTITION_FETCH_BYTES = 4 * 1024 * 1024
IDLE_AFTER_MS = 100  # a fetch that brings nothing for this long: nothing is waiting

Store = Callable[[list[Submission]], Awaitable[None]]
OnIdle = Callable[[], Awaitable[None]]


def submission(record: Any) -> Submission:
    """A submission from an aiokafka consumer record."""
    headers = {str(k): bytes(v) for k, v in record.headers or () if v is not None}
    return Submission(record.topic, record.partition, record.offset, record.value or b"", headers)


class _FinishBatchFirst(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base
    """Partitions are given up only between batches: the batch in hand is stored and its
    offsets committed first."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self._lock:
            log.info("giving up %d submission partitions", len(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("holding %d submission partitions", len(assigned))


class Intake:
    """Consume ``topic`` in ``group`` and pass each fetch (``batch`` records at most, in
    offset order per partition) to ``store``; commit its offsets once ``store`` returned."""

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        group: str,
        store: Store,
        batch: int,
        on_idle: OnIdle | None = None,
    ) -> None:
        self._settings, self._topic, self._group = settings, topic, group
        self.store, self._batch = store, batch  # store: called with each batch
        self._on_idle = on_idle
        self.idle = True  # the last fetch brought nothing (and nothing is being stored)
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None

    def assignment(self) -> list[str]:
        """The submission partitions held now, as "topic/partition"."""
        consumer = self._consumer
        if consumer is None:
            return []
        try:
            held = consumer.assignment()
        except Exception:  # not started yet, or stopped
            return []
        return sorted(f"{tp.topic}/{tp.partition}" for tp in held)

    async def run(self) -> None:
        """Until cancelled (the worker stops): fetch, store, commit."""
        consumer = AIOKafkaConsumer(
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._batch,
            fetch_max_wait_ms=FETCH_WAIT_MS,
            max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
            **self._settings.client_options(),
        )
        consumer.subscribe([self._topic], listener=_FinishBatchFirst(self._lock))
        await consumer.start()
        self._consumer = consumer
        try:
            await self.consume(consumer)
        finally:
            self._consumer = None
            await consumer.stop()

    async def consume(self, consumer: AIOKafkaConsumer) -> None:
        """Fetch, store and commit until cancelled; on the first empty fetch after stored
        records, mark the intake idle and call ``on_idle``."""
        while True:
            fetched = await consumer.getmany(timeout_ms=IDLE_AFTER_MS, max_records=self._batch)
            if fetched:
                self.idle = False
                await self._take(consumer, fetched)
            elif not self.idle:
                self.idle = True
                await self._idle()

    async def _idle(self) -> None:
        if self._on_idle is None:
            return
        try:
            await self._on_idle()
        except Exception as error:  # only a wake-up: the worker's heartbeat comes anyway
            log.warning("the intake's idle wake-up failed (%s)", type(error).__name__)

    async def _take(
        self, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, Sequence[Any]]
    ) -> None:
        async with self._lock:
            # a partition given up since the fetch (between it and the lock) is left to its
            # new owner: neither stored nor committed here
            held = consumer.assignment()
            fetched = {tp: records for tp, records in fetched.items() if records and tp in held}
            if not fetched:
                return
            await self.store([submission(r) for records in fetched.values() for r in records])
            offsets = {tp: records[-1].offset + 1 for tp, records in fetched.items()}
            try:
                await consumer.commit(offsets)
            except KafkaError as error:  # the group moved on: the new owner skips them
                log.warning("offsets of a stored batch not committed (%s)", type(error).__name__)
