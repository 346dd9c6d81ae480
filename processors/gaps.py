"""Records a worker would otherwise skip: the store, not Kafka's delivery, is the truth.

Each partition's records must be ingested in offset order with none left out: a follower cites
its enrolment. Two things break that in Faust: a worker stopped (or killed) after a batch's
offsets were committed but before its ingest transaction committed leaves records that the
next owner never receives; and after a rebalance a take() batch can skip records in its
middle (seen after a fresh broker start: a batch of offsets 1275-1859 held 147 records). The
store keeps, per partition, the last offset whose records it committed (in the same
transaction). Before a batch is ingested, ``complete`` checks that each partition's records in
it run without a hole from that stored offset on, and reads any that are missing straight from
Kafka, so the partition's records are ingested whole and in order.

``Ingester`` remembers the last offset of each partition that this process stored: a batch that
continues it without a hole needs no read of the store (the store can only be further, when
another worker took the partition meanwhile, and ingest skips what it already holds).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from processors import pipeline
from processors.pipeline import Submission
from safety_stream.ingest import IngestReport
from safety_stream.kafka.config import KafkaSettings
from safety_stream.runtime import Runtime
from safety_stream.store.base import EventStore

log = logging.getLogger(__name__)

POLL_MS = 1000
MAX_POLLS = 60


def ingest_with_gaps(
    runtime: Runtime, settings: KafkaSettings, batch: Sequence[Submission]
) -> list[IngestReport]:
    """Ingest ``batch`` with whatever was skipped before or inside it, in one blocking step."""
    return pipeline.ingest_batch(runtime, complete(runtime.store, settings, batch))


class Ingester:
    """``ingest_with_gaps`` that knows how far this process stored each partition."""

    def __init__(self, runtime: Runtime, settings: KafkaSettings) -> None:
        self._runtime = runtime
        self._settings = settings
        self._stored: dict[tuple[str, int], int] = {}  # stored by this process, at least

    def __call__(self, batch: Sequence[Submission]) -> list[IngestReport]:
        """One blocking step; what it remembers moves only once every run has committed."""
        found = complete(self._runtime.store, self._settings, batch, self._stored)
        reports = pipeline.ingest_batch(self._runtime, found)
        for item in found:
            key = (item.topic, item.partition)
            self._stored[key] = max(item.offset, self._stored.get(key, -1))
        return reports


def stored_offsets(store: EventStore, sources: list[str]) -> dict[str, int | None]:
    with store.write() as session:  # reads only: the transaction commits nothing
        return {source: session.source_offset(source) for source in sources}


def complete(
    store: EventStore,
    settings: KafkaSettings,
    batch: Sequence[Submission],
    known: Mapping[tuple[str, int], int] | None = None,
) -> list[Submission]:
    """Each partition's records from the store's offset + 1 to the batch's last, in order: the
    batch's own, and the ones it lacks read from Kafka (records already stored are left to
    ingest, which skips them). ``known``: offsets the store holds at least, per partition; a
    partition whose records continue one without a hole is not looked up."""
    by_partition: dict[tuple[str, int], dict[int, Submission]] = {}
    for item in batch:
        by_partition.setdefault((item.topic, item.partition), {})[item.offset] = item
    known = known or {}
    unsure = [key for key, items in by_partition.items() if not _continues(known.get(key), items)]
    stored = stored_offsets(store, [f"kafka:{t}/{p}" for t, p in unsure]) if unsure else {}
    found: list[Submission] = []
    for (topic, partition), items in by_partition.items():
        last = stored.get(f"kafka:{topic}/{partition}", known.get((topic, partition)))
        start = 0 if last is None else last + 1
        end = max(items) + 1
        holes = [offset for offset in range(start, end) if offset not in items]
        if holes:
            log.warning(
                "%d records of offsets %d-%d of %s/%d were not delivered: reading them again",
                len(holes), start, end - 1, topic, partition,
            )  # fmt: skip
            for item in _read(settings, (topic, partition), holes[0], holes[-1] + 1):
                items.setdefault(item.offset, item)
        found += [items[offset] for offset in sorted(items)]
    return found


def _continues(last: int | None, items: Mapping[int, Submission]) -> bool:
    """Whether ``items`` run from ``last`` + 1 without a hole."""
    return last is not None and min(items) == last + 1 and max(items) - last == len(items)


def _read(settings: KafkaSettings, key: tuple[str, int], start: int, end: int) -> list[Submission]:
    """Offsets ``start`` to ``end - 1`` of one partition, read without a consumer group."""
    from kafka import KafkaConsumer, TopicPartition

    partition = TopicPartition(*key)
    consumer: Any = KafkaConsumer(
        enable_auto_commit=False, group_id=None, **settings.client_options()
    )
    try:
        consumer.assign([partition])
        consumer.seek(partition, start)
        found: list[Submission] = []
        for _ in range(MAX_POLLS):
            for message in consumer.poll(timeout_ms=POLL_MS).get(partition, []):
                if message.offset < end:
                    headers = {str(k): bytes(v) for k, v in message.headers or [] if v is not None}
                    found.append(
                        Submission(key[0], key[1], message.offset, message.value or b"", headers)
                    )
            if consumer.position(partition) >= end:  # read past the range (holes included)
                return found
        # the batch is retried (never skipped) until the broker serves them
        raise RuntimeError(f"could not read offsets {start}-{end - 1} of {key[0]}/{key[1]}")
    finally:
        consumer.close()
