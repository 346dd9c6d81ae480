"""Records a worker would otherwise skip: the store, not Kafka's committed offsets, is the truth.

Faust commits a batch's offsets when the agent leaves it; a worker stopped (or killed) after
that commit but before the batch's ingest transaction committed leaves records that the next
owner of the partition never receives. The store keeps, per partition, the last offset whose
records it committed (in the same transaction). Before ingesting a batch, ``missing`` compares
each partition's first offset in the batch with that stored offset and reads any records in
between straight from Kafka, so they are ingested first, in order. (It does not close every
loss yet: see "Known defects" in the README.)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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
    """Ingest ``batch`` after whatever was skipped before it, in one blocking step."""
    return pipeline.ingest_batch(runtime, [*missing(runtime.store, settings, batch), *batch])


def stored_offsets(store: EventStore, sources: list[str]) -> dict[str, int | None]:
    with store.write() as session:  # reads only: the transaction commits nothing
        return {source: session.source_offset(source) for source in sources}


def missing(
    store: EventStore, settings: KafkaSettings, batch: Sequence[Submission]
) -> list[Submission]:
    """The records between each partition's stored offset and the batch's first offset."""
    first: dict[tuple[str, int], int] = {}
    for item in batch:
        key = (item.topic, item.partition)
        first[key] = min(first.get(key, item.offset), item.offset)
    stored = stored_offsets(store, [f"kafka:{t}/{p}" for t, p in first])
    found: list[Submission] = []
    for (topic, partition), offset in first.items():
        last = stored[f"kafka:{topic}/{partition}"]
        start = 0 if last is None else last + 1
        log.info(
            "batch of %s/%d from offset %d; the store has up to %s", topic, partition, offset, last
        )
        if start < offset:
            log.warning("re-reading offsets %d-%d of %s/%d", start, offset - 1, topic, partition)
            found += _read(settings, (topic, partition), start, offset)
    return found


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
            if found and found[-1].offset >= end - 1:
                return found
        # the batch is retried (never skipped) until the broker serves them
        raise RuntimeError(f"could not read offsets {start}-{end - 1} of {key[0]}/{key[1]}")
    finally:
        consumer.close()
