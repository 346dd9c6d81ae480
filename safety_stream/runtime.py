"""The composition root of the embedded runtime: builds every concrete part from settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path

from prometheus_client import CollectorRegistry

from safety_stream.alerts.config import AlertConfig, default_config, load_alert_config
from safety_stream.alerts.dispatcher import Dispatcher
from safety_stream.alerts.outbox import Outbox
from safety_stream.application.reads import Reads
from safety_stream.application.review import ReviewReads
from safety_stream.application.review_marks import ReviewMarksService
from safety_stream.application.submissions import EmbeddedSubmitter, KafkaSubmitter, Submitter
from safety_stream.application.triage import AlertTriageService
from safety_stream.auth import Credentials
from safety_stream.ctcae import CtcaeDictionary, ctcae_dictionary
from safety_stream.health import Health
from safety_stream.kafka.producer import SubmissionProducer
from safety_stream.metrics import PipelineMetrics
from safety_stream.metrics_state import SafetyStateCollector
from safety_stream.monitoring.monitor import Monitor
from safety_stream.plan import MonitoringPlan, load_plan, parse_plan
from safety_stream.projections.documents import DerivedSource
from safety_stream.projections.projector import Changes, Projector
from safety_stream.review.marks import ReviewMarks
from safety_stream.settings import Settings
from safety_stream.store.base import EventStore
from safety_stream.store.credentials_memory import InMemoryCredentials
from safety_stream.store.credentials_sql import SqlCredentials
from safety_stream.store.marks_memory import InMemoryReviewMarks
from safety_stream.store.marks_sql import SqlReviewMarks
from safety_stream.store.memory import InMemoryEventStore
from safety_stream.store.opening import open_store
from safety_stream.store.outbox_memory import InMemoryOutbox
from safety_stream.store.outbox_sql import SqlOutbox
from safety_stream.store.projection_memory import InMemoryProjectionRepository
from safety_stream.store.projection_sql import SqlProjectionRepository
from safety_stream.store.sql import SqlEventStore

log = logging.getLogger(__name__)


def default_plan() -> MonitoringPlan:
    """The packaged SPARKLE-L plan."""
    resource = resources.files("safety_stream") / "data" / "plans" / "sparkle-l.yaml"
    return parse_plan(resource.read_text(encoding="utf-8"), "sparkle-l.yaml")


@dataclass
class Runtime:
    settings: Settings
    store: EventStore
    projector: Projector
    credentials: Credentials
    plan: MonitoringPlan
    ctcae: CtcaeDictionary
    registry: CollectorRegistry
    metrics: PipelineMetrics
    monitor: Monitor
    derived: DerivedSource
    outbox: Outbox
    dispatcher: Dispatcher
    reads: Reads  # what the entry points read, scoped to the caller
    submitter: Submitter  # embedded: ingest here; distributed: onto the Kafka topic
    review: ReviewReads  # the review workspace's dataset (listings, profiles, DMC tables)
    triage: AlertTriageService  # alerts' triage steps (events in the log) and their states
    marks: ReviewMarksService  # readers' "reviewed up to here" marks on AEs and alerts
    health: Health = field(default_factory=Health)

    def close(self) -> None:
        self.dispatcher.stop()
        try:  # what was folded since the last checkpoint (lost, it is folded again at start)
            self.projector.checkpoint()
        except Exception as error:
            log.error("projection checkpoint at shutdown failed: %s", type(error).__name__)
        self.submitter.close()
        if isinstance(self.store, SqlEventStore):
            self.store.close()


def load_plan_or_default(path: Path | None) -> MonitoringPlan:
    return load_plan(path) if path is not None else default_plan()


def load_alerts_or_default(path: Path | None) -> AlertConfig:
    return load_alert_config(path) if path is not None else default_config()


def _assemble(
    settings: Settings,
    store: EventStore,
    repository: SqlProjectionRepository | InMemoryProjectionRepository,
    credentials: Credentials,
    outbox: Outbox,
    follower: bool = False,
    producer: SubmissionProducer | None = None,
    marks: ReviewMarks | None = None,
) -> Runtime:
    """``producer``: the distributed runtime's API, whose POSTs go to Kafka."""
    plan = load_plan_or_default(settings.plan)
    monitor = Monitor(plan)
    projector = Projector(store, repository, monitor, persist=not follower)
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    dispatcher = Dispatcher(outbox, repository, plan.trial.id, on_outcome=metrics.delivery)

    def committed(changes: Changes) -> None:
        for derived in changes.derived:
            metrics.derived.labels(kind=derived.kind).inc()
        if changes.derived:
            dispatcher.wake()

    projector.listeners.append(committed)
    projector.catch_up()  # whatever was committed before a crash or restart
    reads = Reads(projector, monitor, plan, store)
    registry.register(SafetyStateCollector(reads, outbox.counts))
    health = Health()
    ctcae = ctcae_dictionary()
    submitter: Submitter = (
        KafkaSubmitter(producer, settings.max_records)
        if producer is not None
        else EmbeddedSubmitter(store, projector, monitor, plan, ctcae, settings, metrics, health)
    )
    reviewed = ReviewMarksService(marks or InMemoryReviewMarks(), store)
    return Runtime(
        settings=settings,
        store=store,
        projector=projector,
        credentials=credentials,
        plan=plan,
        ctcae=ctcae,
        registry=registry,
        metrics=metrics,
        monitor=monitor,
        derived=repository,
        outbox=outbox,
        dispatcher=dispatcher,
        reads=reads,
        submitter=submitter,
        review=ReviewReads(store),
        triage=AlertTriageService(store, ctcae, projector, outbox, plan.trial.id, reviewed),
        marks=reviewed,
        health=health,
    )


def build_runtime(settings: Settings) -> Runtime:
    """SQL store (SQLite or PostgreSQL) with its projection, credentials and metrics."""
    store = open_store(settings.db, create=True)
    repository = SqlProjectionRepository(store.engine)
    outbox = SqlOutbox(store.engine, load_alerts_or_default(settings.alerts))
    credentials = SqlCredentials(store.engine)
    marks = SqlReviewMarks(store.engine)
    return _assemble(settings, store, repository, credentials, outbox, marks=marks)


def build_distributed_api(settings: Settings) -> Runtime:
    """The API of the distributed runtime: POSTs go to Kafka; reads follow the audit store
    that the workers write (its projection is kept in memory, never saved from here)."""
    assert settings.kafka is not None
    store = open_store(settings.db, create=True)
    repository = SqlProjectionRepository(store.engine)
    outbox = SqlOutbox(store.engine, load_alerts_or_default(settings.alerts))
    producer = SubmissionProducer(settings.kafka, client_id="safety-stream-api")
    credentials = SqlCredentials(store.engine)
    marks = SqlReviewMarks(store.engine)
    return _assemble(settings, store, repository, credentials, outbox, True, producer, marks)


def build_memory_runtime(
    settings: Settings | None = None, clock: Callable[[], datetime] | None = None
) -> Runtime:
    """Everything in memory (unit tests); ``clock``: the server's time (default: now)."""
    settings = settings or Settings()
    return _assemble(
        settings,
        InMemoryEventStore() if clock is None else InMemoryEventStore(clock=clock),
        InMemoryProjectionRepository(),
        InMemoryCredentials(),
        InMemoryOutbox(load_alerts_or_default(settings.alerts)),
    )
