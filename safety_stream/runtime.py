"""The composition root of the embedded runtime: builds every concrete part from settings."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from prometheus_client import CollectorRegistry

from safety_stream.auth import Credentials, InMemoryCredentials, SqlCredentials
from safety_stream.ctcae import CtcaeDictionary, ctcae_dictionary
from safety_stream.metrics import IngestMetrics
from safety_stream.monitoring.monitor import Monitor
from safety_stream.plan import MonitoringPlan, load_plan, parse_plan
from safety_stream.projections.projector import Projector
from safety_stream.projections.repositories import (
    DerivedSource,
    InMemoryProjectionRepository,
    SqlProjectionRepository,
)
from safety_stream.settings import Settings
from safety_stream.store.base import EventStore
from safety_stream.store.memory import InMemoryEventStore
from safety_stream.store.sql import SqlEventStore


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
    metrics: IngestMetrics
    monitor: Monitor
    derived: DerivedSource

    def close(self) -> None:
        if isinstance(self.store, SqlEventStore):
            self.store.close()


def load_plan_or_default(path: Path | None) -> MonitoringPlan:
    return load_plan(path) if path is not None else default_plan()


def _assemble(
    settings: Settings,
    store: EventStore,
    repository: SqlProjectionRepository | InMemoryProjectionRepository,
    credentials: Credentials,
) -> Runtime:
    plan = load_plan_or_default(settings.plan)
    monitor = Monitor(plan)
    projector = Projector(store, repository, monitor)
    projector.catch_up()  # whatever was committed before a crash or restart
    registry = CollectorRegistry()
    return Runtime(
        settings=settings,
        store=store,
        projector=projector,
        credentials=credentials,
        plan=plan,
        ctcae=ctcae_dictionary(),
        registry=registry,
        metrics=IngestMetrics(registry),
        monitor=monitor,
        derived=repository,
    )


def build_runtime(settings: Settings) -> Runtime:
    """SQL store (SQLite or PostgreSQL) with its projection, credentials and metrics."""
    store = SqlEventStore.open(settings.db)
    repository = SqlProjectionRepository(store.engine)
    return _assemble(settings, store, repository, SqlCredentials(store.engine))


def build_memory_runtime(settings: Settings | None = None) -> Runtime:
    """Everything in memory (unit tests)."""
    return _assemble(
        settings or Settings(),
        InMemoryEventStore(),
        InMemoryProjectionRepository(),
        InMemoryCredentials(),
    )
