"""Producing raw submissions: one JSON record per message, keyed by trial, acknowledged only
once every in-sync replica has it (acks=all, idempotent producer: a retried send is written
once). Used by the API in distributed mode and by ``safety-stream post --kafka``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from safety_stream.kafka.config import KafkaSettings
from safety_stream.kafka.topics import Topics
from safety_stream.validation.records import RawRecord

SITE_HEADER = "safety-stream-site"  # the site the sender authenticated as (API only)
SOURCE_HEADER = "safety-stream-source"  # who sent it, e.g. "http:SITE-01" (kept with rejections)
_TRIAL_ID = re.compile(rb'"trial_id"\s*:\s*"([^"\\]{1,64})"')


def trial_key(raw: bytes) -> bytes:
    """The partition key of a record: its trial id, or empty when it names none (it will be
    rejected, so its place in the order does not matter)."""
    found = _TRIAL_ID.search(raw)
    return found.group(1) if found else b""


def record_bytes(record: RawRecord) -> bytes:
    """The bytes to put on the topic: the record as received, or re-encoded when the reader
    split it out of a JSON document."""
    if record.parsed:
        return json.dumps(record.value, separators=(",", ":"), ensure_ascii=False).encode()
    return record.raw


@dataclass(frozen=True, slots=True)
class Receipt:
    location: str
    partition: int
    offset: int


class SubmissionProducer:
    def __init__(self, settings: KafkaSettings, client_id: str = "safety-stream") -> None:
        from kafka import KafkaProducer

        self.topic = Topics.of(settings).submissions
        self._producer: Any = KafkaProducer(
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            request_timeout_ms=30_000,
            delivery_timeout_ms=120_000,
            **settings.client_options(),
        )

    def send(
        self, records: Sequence[RawRecord], source: str, site_id: str | None = None
    ) -> list[Receipt]:
        """Send ``records`` in order; returns once the broker acknowledged every one.

        Raises kafka-python's error if any send failed: the caller reports failure and the
        sender retries with the same event ids, which the workers store once.
        """
        headers = [(SOURCE_HEADER, source.encode())]
        if site_id is not None:
            headers.append((SITE_HEADER, site_id.encode()))
        values = [record_bytes(r) for r in records]
        futures = [
            self._producer.send(self.topic, key=trial_key(v), value=v, headers=headers)
            for v in values
        ]
        self._producer.flush()
        receipts = []
        for record, future in zip(records, futures, strict=True):
            metadata = future.get(timeout=0)  # raises the send's error
            receipts.append(Receipt(record.location, metadata.partition, metadata.offset))
        return receipts

    def close(self) -> None:
        self._producer.close()
