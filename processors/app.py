"""The Faust app: topics, agents and the worker's /metrics page.

Submissions come in through ``processors.intake`` (a plain aiokafka consumer that hands over
whole fetches and commits their offsets after the store commit); the rest are Faust agents,
each at concurrency 1 (faust's concurrency > 1 can commit past an unfinished message, faust
#606; its exactly_once mode duplicates on rebalance, #323/#517, so the app runs at_least_once
and every sink is idempotent, see ``processors.pipeline``):

- ingest (the intake's ``store``) submissions -> validate + append to the audit store (dead
  letters kept) -> a wake-up on ``appended`` (and, in the worker that runs the monitor, the
  events just stored are handed to it in memory, so that it folds them without reading them
  back);
- ``monitor`` appended -> project + monitor (derived events commit with the projection) ->
  publish new events, dead letters and derived events;
- ``notify``  derived -> plan alerts in the outbox (the dispatcher thread delivers them) ->
  publish them on ``alerts``.

The ``published`` table (changelogged to Kafka) holds how far each output topic has been
published; a worker that takes over resumes from it and republishes at most what was in flight.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from processors import gaps, pipeline
from processors.intake import Intake
from processors.publishing import send_batched
from safety_stream.access import metrics_refusal
from safety_stream.kafka.config import KafkaSettings
from safety_stream.kafka.topics import Topics
from safety_stream.runtime import Runtime

log = logging.getLogger("processors")
T = TypeVar("T")
BATCH = 500  # records per ingest transaction at most
WITHIN = 0.01  # seconds to wait for a batch to fill
HEARTBEAT = 2.0  # seconds between wake-ups of the monitor when nothing arrives
HANDED_MAX = 50_000  # events handed from ingest to the monitor at most (beyond: read the log)


def _raw_topic(app: faust.App, name: str, partitions: int | None = None) -> Any:
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )


async def _retrying(what: str, function: Callable[..., T], *args: Any) -> T:
    """Run a blocking step in a thread until it succeeds: a batch is never skipped, and a
    failing database is waited out.

    Faust acknowledges a ``take()`` batch (monitor, notify) when the agent leaves it, even when
    it leaves by cancellation (shutdown, rebalance). So a running step is finished before the
    cancellation goes on, and if the step has not succeeded the process exits at once, leaving
    the offsets uncommitted: the records come again after the restart (and are skipped if
    stored). The intake commits a batch's offsets only after its step returned, so there the
    same rule only keeps one behaviour for every step.
    """
    delay = 0.5
    while True:
        step = asyncio.ensure_future(asyncio.to_thread(function, *args))
        try:
            return await asyncio.shield(step)
        except asyncio.CancelledError:
            await asyncio.wait([step])
            if step.exception() is None:
                raise
            _exit_unacknowledged(what)
        except Exception as error:
            # the error's text may quote SQL parameters (patient ids): details at debug only
            log.error("%s failed (%s); retrying in %.1f s", what, type(error).__name__, delay)
            log.debug("%s failure", what, exc_info=True)
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            _exit_unacknowledged(what)
        delay = min(delay * 2, 30.0)


def _exit_unacknowledged(what: str) -> NoReturn:
    log.critical("stopped while %s had not succeeded: exiting without committing offsets", what)
    logging.shutdown()
    os._exit(75)


class Handed:
    """Events the ingest agent stored, handed to the monitor agent of the same worker (which
    folds them as they are when they continue its projection, else reads the log)."""

    def __init__(self) -> None:
        self._events: list[pipeline.Appended] = []

    def give(self, stored: list[pipeline.Appended]) -> None:
        if len(self._events) + len(stored) > HANDED_MAX:  # the monitor lags: it reads the log
            self._events.clear()
        self._events += stored

    def take(self) -> list[pipeline.Appended]:
        taken, self._events = self._events, []
        return taken


@dataclass(frozen=True)
class WorkerApp:
    app: faust.App
    agents: dict[str, Any]  # monitor, notify (tests drive them with test_context())
    intake: Intake  # the submissions consumer (tests call its store with batches)


def create_app(
    runtime: Runtime,
    kafka: KafkaSettings,
    web_host: str = "127.0.0.1",
    web_port: int = 6066,
    data_dir: Path = Path("safety-stream-worker"),
) -> WorkerApp:
    topics = Topics.of(kafka)
    app = _faust_app(kafka, web_host, web_port, data_dir)
    appended = _raw_topic(app, topics.appended)
    outputs = {
        "events": _raw_topic(app, topics.events),
        "rejected": _raw_topic(app, topics.rejected),
        "derived": _raw_topic(app, topics.derived),
        "alerts": _raw_topic(app, topics.alerts),
    }
    published = app.Table("published", default=int, partitions=1, use_partitioner=True)
    ingester = gaps.Ingester(runtime, kafka)
    handed = Handed()

    async def publish(role: str, read: Callable[[Runtime, int], list[pipeline.Published]]) -> int:
        """Send what the store holds after the role's cursor; the cursor moves only after
        the broker acknowledged every message."""
        sent = 0
        while True:
            items = await _retrying(f"reading {role}", read, runtime, published[role])
            if not items:
                return sent
            await _send_all(app, outputs[role].get_topic_name(), items)
            published[role] = items[-1].cursor
            sent += len(items)

    async def store(batch: list[pipeline.Submission]) -> None:
        """Validate and store a batch, then wake the monitor (and hand it the events)."""
        # one step: records a previous owner of the partition left out are read again and
        # go first
        reports = await _retrying("ingest", ingester, batch)
        stored = [a for report in reports for a in report.appended]
        if _holds(app, topics.appended):
            handed.give(stored)
        head = stored[-1][0] if stored else await _retrying("log head", runtime.store.head)
        await appended.send(key=b"log", value=json.dumps({"head": head}).encode())

    # when nothing more is waiting, the intake wakes the monitor (whichever worker runs it),
    # which saves its projection once it has caught up (below)
    idle = partial(appended.send, key=b"log", value=pipeline.IDLE_WAKE)
    intake = Intake(kafka, topics.submissions, f"{app.conf.id}-submissions", store, BATCH, idle)

    @app.task  # type: ignore[untyped-decorator]
    async def ingest() -> None:
        await intake.run()

    @app.agent(appended, concurrency=1)
    async def monitor(stream: Any) -> None:
        async for wakes in stream.take(BATCH, within=WITHIN):
            upto = pipeline.wakes_head(wakes)
            await _retrying("projection", pipeline.project, runtime, handed.take(), upto)
            # a window that ended or a deadline that passed with no new data: a clock.ticked
            # in the log, as the embedded runtime records it (the heartbeat wakes this agent)
            await _retrying("clock tick", pipeline.tick_when_due, runtime)
            idle = pipeline.idle_wake_in(wakes)
            await _retrying("saving the projection", pipeline.save_when_idle, runtime, idle)
            await publish("events", pipeline.events_after)
            await publish("rejected", pipeline.rejections_after)
            await publish("derived", pipeline.derived_after)

    @app.agent(outputs["derived"], concurrency=1)
    async def notify(stream: Any) -> None:
        async for _derived in stream.take(BATCH, within=WITHIN):
            await publish("alerts", pipeline.alerts_after)

    @app.timer(interval=HEARTBEAT)  # type: ignore[untyped-decorator]
    async def heartbeat() -> None:
        """Wake the monitor now and then, so that a log written by a worker that crashed
        before its wake-up (or before publishing) is projected and published anyway."""
        await appended.send(key=b"log", value=pipeline.HEARTBEAT_WAKE)

    _add_pages(app, runtime, intake)
    return WorkerApp(app, {"monitor": monitor, "notify": notify}, intake)


async def _send_all(app: faust.App, topic: str, items: list[pipeline.Published]) -> None:
    """Send ``items`` (in order within each key's partition) and return once the broker
    acknowledged every one (acks=all): in whole batches to the aiokafka producer the app
    started (``processors.publishing``), not through Faust's ``Topic.send`` or its producer's
    ``send``, which wrap every message on its own."""
    faust_producer: Any = app.producer  # the aiokafka driver's, typed as the abstract one
    producer = faust_producer._ensure_producer()  # the AIOKafkaProducer it started
    await send_batched(producer, topic, [(item.key.encode(), item.value) for item in items])


def _faust_app(kafka: KafkaSettings, web_host: str, web_port: int, data_dir: Path) -> faust.App:
    broker, credentials = kafka.faust_broker()
    return faust.App(
        f"{kafka.topic_prefix}-workers",
        broker=broker,
        broker_credentials=credentials,
        store="memory://",
        datadir=str(data_dir),
        autodiscover=False,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        topic_replication_factor=kafka.replication,
        topic_partitions=1,
        producer_acks=-1,
        web_enabled=True,
        web_host=web_host,
        web_port=web_port,
        web_bind=web_host,
    )


def _add_pages(app: faust.App, runtime: Runtime, intake: Intake) -> None:
    """The worker's /metrics and /healthz on its web port."""

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        refused = await asyncio.to_thread(
            metrics_refusal, runtime, token.strip() if scheme.lower() == "bearer" else None
        )
        if refused is not None:
            return web.json({"detail": refused[1]}, status=refused[0])
        body = await asyncio.to_thread(generate_latest, runtime.registry)
        return web.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def health(web: Any, request: Any) -> Any:
        """Status and this worker's partitions; never the log position (it moves whenever
        any site posts); a failing projection save makes it 503."""
        operations = runtime.reads.operational()
        failure = operations.save_failure
        return web.json(
            {
                "status": "unhealthy" if failure else "ok",
                "problems": [failure] if failure else [],
                "quarantined": operations.quarantined,
                "assigned": sorted(_assigned(app) + intake.assignment()),
            },
            status=503 if failure else 200,
        )


def _holds(app: faust.App, topic: str) -> bool:
    """Whether this worker holds the (single-partition) topic now."""
    return f"{topic}/0" in _assigned(app)


def _assigned(app: faust.App) -> list[str]:
    """The topic partitions this worker holds now ("topic/partition"), for operators and for
    tests that must wait until a consumer group has settled."""
    consumer = app._consumer  # not app.consumer: reading this must not create the consumer
    if consumer is None:
        return []
    try:
        held = consumer.assignment()
    except Exception:  # the consumer is not running yet (or any more)
        return []
    return sorted(f"{tp.topic}/{tp.partition}" for tp in held)
