"""Submissions: what happens to a site's POSTed records, chosen once at start-up.

:class:`EmbeddedSubmitter` validates, stores and projects them here (the embedded runtime);
:class:`KafkaSubmitter` puts them on the submissions topic for the workers (the distributed
runtime's API). Either answers only once the records are durable (committed to the log, or
acknowledged by the broker).
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from itertools import islice
from typing import Protocol

from safety_stream.auth import Principal
from safety_stream.ctcae import CtcaeDictionary
from safety_stream.governance import pause_reason
from safety_stream.health import Health
from safety_stream.ingest import IngestReport, ingest
from safety_stream.kafka.producer import Receipt, SubmissionProducer
from safety_stream.metrics import PipelineMetrics
from safety_stream.monitoring.monitor import Monitor
from safety_stream.plan import MonitoringPlan
from safety_stream.projections.projector import Projector
from safety_stream.settings import Settings
from safety_stream.store.base import EventStore
from safety_stream.validation.edc_csv import read_edc_csv
from safety_stream.validation.records import (
    InputFormat,
    RawRecord,
    read_json_document,
    read_ndjson,
)

log = logging.getLogger(__name__)

STORAGE_FULL = "storage_full"
PART = 1_000
"""Records per transaction: about 0.1 s of the write lock on this project's 2-core machine."""


class SubmissionRefused(Exception):
    """The submission as a whole cannot be taken; nothing of it was stored or sent.

    ``status`` is the HTTP status the API answers with (413, 415, 503)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Queued:
    """Distributed mode: the records are on the submissions topic, to be processed."""

    topic: str
    receipts: tuple[Receipt, ...]


Submitted = IngestReport | Queued


class Submitter(Protocol):
    def submit(
        self, body: bytes, input_format: InputFormat, caller: Principal, encoding: str | None
    ) -> Submitted:
        """Take one request's body (blocking: call it from a worker thread); raises
        :class:`SubmissionRefused` when it cannot be taken as a whole."""
        ...

    def close(self) -> None: ...


def read_records(
    body: bytes, input_format: InputFormat, encoding: str | None, most: int
) -> list[RawRecord]:
    """The records of ``body``; refused (413) as soon as there are more than ``most`` (the
    rest is never read)."""
    stream = io.BytesIO(body)
    if input_format is InputFormat.NDJSON:
        reader = read_ndjson(stream)
    elif input_format is InputFormat.JSON:
        reader = read_json_document(stream)
    else:
        reader = read_edc_csv(stream, encoding)
    records = list(islice(reader, most + 1))
    if len(records) > most:
        raise SubmissionRefused(
            413, f"more than {most} records in one request: send them in several requests"
        )
    return records


class EmbeddedSubmitter:
    """Validate, store and project here, in parts of ``PART`` records."""

    def __init__(
        self,
        store: EventStore,
        projector: Projector,
        monitor: Monitor,
        plan: MonitoringPlan,
        ctcae: CtcaeDictionary,
        settings: Settings,
        metrics: PipelineMetrics,
        health: Health,
    ) -> None:
        self._store = store
        self._projector = projector
        self._monitor = monitor
        self._plan = plan
        self._ctcae = ctcae
        self._settings = settings
        self._metrics = metrics
        self._health = health

    def submit(
        self, body: bytes, input_format: InputFormat, caller: Principal, encoding: str | None
    ) -> IngestReport:
        """Store the submission in parts of ``PART`` records, each committed and projected
        before the next: another site's POST waits for one part at most, never for the whole
        batch. A retry of a submission cut short stores the rest (the stored parts answer
        "duplicate")."""
        records = read_records(body, input_format, encoding, self._settings.max_records)
        reports = []
        for start in range(0, len(records), PART):
            started = time.perf_counter()
            report = ingest(
                self._store,
                records[start : start + PART],
                input_format,
                self._ctcae,
                source=f"http:{caller.name}",
                site_id=caller.site_id if caller.role == "site" else None,
                clock_skew=timedelta(seconds=self._settings.clock_skew_seconds),
                enrolment_paused=pause_reason(self._monitor),
                trial_id=self._plan.trial.id,
            )
            self._metrics.append_seconds.observe(time.perf_counter() - started)
            self._metrics.count_report(report)
            try:
                self._projector.follow(report.appended)
            except Exception:  # stored and durable: acknowledged; projected when saving works
                log.exception("the projection could not be saved; the events are stored")
            self._metrics.ingest_to_projection_seconds.observe(time.perf_counter() - started)
            reports.append(report)
        self._health.recovered(STORAGE_FULL)
        return IngestReport.merged(reports)

    def close(self) -> None:
        pass


class KafkaSubmitter:
    """Put each record on the submissions topic; return once the broker has acknowledged
    all of them (refused with 503 if it could not: nothing is acknowledged, resend)."""

    def __init__(self, producer: SubmissionProducer, max_records: int) -> None:
        self._producer = producer
        self._max_records = max_records

    def submit(
        self, body: bytes, input_format: InputFormat, caller: Principal, encoding: str | None
    ) -> Queued:
        if input_format is InputFormat.CSV:
            raise SubmissionRefused(
                415,
                "in distributed mode send JSON or NDJSON; CSV exports go to the embedded runtime",
            )
        records = read_records(body, input_format, None, self._max_records)
        try:
            receipts = self._producer.send(
                records, f"http:{caller.name}", caller.site_id if caller.role == "site" else None
            )
        except Exception as error:  # the broker did not acknowledge: the site must resend
            raise SubmissionRefused(
                503, f"the event log is unavailable, resend: {error}"
            ) from error
        return Queued(self._producer.topic, tuple(receipts))

    def close(self) -> None:
        self._producer.close()
