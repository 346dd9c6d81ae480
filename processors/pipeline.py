"""What a worker does with each batch, as plain (blocking) functions over the runtime.

The Faust agents in ``processors.app`` only move records between topics and these functions;
the functions call the same ingest, projector, monitor and outbox as the embedded runtime.

Guarantees (at-least-once delivery from Kafka, effectively-once effects):
- ``ingest_batch`` stores each submission record's offset in the transaction that stores
  its events and dead letters, so a redelivered record changes nothing;
- the projection and its derived events commit together with their position (and a
  projector that fell behind another is fenced off and reloads);
- what is published downstream (events, rejections, derived events, alerts) is read back from
  the audit store after a cursor, so a crash between commit and publish loses nothing;
  consumers deduplicate by the ids each message carries.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from safety_stream.alerts.dispatcher import utc_now
from safety_stream.events import EventBase
from safety_stream.governance import pause_in_log
from safety_stream.ingest import IngestReport, Offset, ingest
from safety_stream.kafka.producer import SITE_HEADER, SOURCE_HEADER
from safety_stream.runtime import Runtime
from safety_stream.ticking import tick
from safety_stream.validation.records import InputFormat, RawRecord

log = logging.getLogger(__name__)
Appended = tuple[int, EventBase, datetime]  # (position, event, stored at), as ingest reports


@dataclass(frozen=True, slots=True)
class Submission:
    """One message of the submissions topic."""

    topic: str
    partition: int
    offset: int
    value: bytes
    headers: dict[str, bytes] = field(default_factory=dict)

    @property
    def site_id(self) -> str | None:
        site = self.headers.get(SITE_HEADER)
        return site.decode("utf-8", "replace") if site else None

    @property
    def source(self) -> str:
        source = self.headers.get(SOURCE_HEADER)
        return source.decode("utf-8", "replace")[:200] if source else f"kafka:{self.topic}"


@dataclass(frozen=True, slots=True)
class Published:
    """A message to send: key, JSON value, and the cursor it moves its topic's publishing to."""

    key: str
    value: bytes
    cursor: int


def ingest_batch(runtime: Runtime, batch: Sequence[Submission]) -> list[IngestReport]:
    """Validate and store a batch in order: one transaction per run of consecutive records
    that share a site credential and source."""
    reports = []
    start = 0
    while start < len(batch):
        end = start + 1
        key = (batch[start].site_id, batch[start].source)
        while end < len(batch) and (batch[end].site_id, batch[end].source) == key:
            end += 1
        run = batch[start:end]
        started = time.perf_counter()
        report = ingest(
            runtime.store,
            [RawRecord(f"{m.topic}/{m.partition}@{m.offset}", m.value) for m in run],
            InputFormat.NDJSON,
            runtime.ctcae,
            source=key[1],
            site_id=key[0],
            offsets=[Offset(f"kafka:{m.topic}/{m.partition}", m.offset) for m in run],
            clock_skew=timedelta(seconds=runtime.settings.clock_skew_seconds),
            enrolment_paused=pause_in_log(runtime.store, runtime.plan.trial.id),
            trial_id=runtime.plan.trial.id,
        )
        runtime.metrics.append_seconds.observe(time.perf_counter() - started)
        runtime.metrics.count_report(report)
        log.debug(
            "offsets %d-%d of %s/%d: %d stored, %d rejected, %d taken before",
            run[0].offset, run[-1].offset, run[0].topic, run[0].partition,
            report.count("stored"), len(report.outcomes) - report.count("stored")
            - report.count("duplicate"), report.redelivered,
        )  # fmt: skip
        reports.append(report)
        start = end
    return reports


def project(runtime: Runtime, appended: Sequence[Appended] = (), upto: int | None = None) -> int:
    """Bring the projection and monitor up to the audit log's head, or to position ``upto``
    at least; returns events applied.

    ``appended``: events this process just stored, in position order, folded as they are
    (not read back and decoded again) when they continue the projection; anything else
    committed (by another worker, or before a restart) is read from the log: at once when it
    comes before them (they do not continue the projection then), when the projection is short
    of ``upto`` after them, and otherwise at the next call with nothing handed over (the
    heartbeat's, when this worker stores nothing more). Reading the log after following them
    would take the events that ingest is storing meanwhile, and that are handed over next.
    """
    projector = runtime.projector
    if not appended:
        return projector.catch_up()
    applied = projector.follow(appended)
    if upto is not None and projector.state.position < upto:
        applied += projector.catch_up()
    return applied


def save_when_idle(runtime: Runtime, idle_wake: bool) -> bool:
    """After a round that took an idle wake-up (an intake that stored records has nothing more
    waiting), save what was folded and not saved yet, if the projection has caught up with the
    log; whether it saved.

    The API and the board read the projection the workers save, so the end of a burst shows
    there at once rather than when the checkpoint interval next falls due (up to its 2 s plus
    a heartbeat). An intake sends one idle wake-up per burst, so this saves at most once per
    burst of each worker; under load the checkpoint interval holds.
    """
    projector = runtime.projector
    if not idle_wake or projector.unsaved == 0:
        return False
    return projector.state.position >= runtime.store.head() and projector.checkpoint()


def tick_when_due(runtime: Runtime) -> bool:
    """``tick`` when a timer of the monitor has fallen due by the server's clock; whether a
    clock.ticked was recorded. Not due (nearly always): the log is not read (tick's own
    catch-up would take the events that ingest is storing meanwhile, and that are handed over
    next)."""
    due = runtime.monitor.next_due()
    if due is None or due > runtime.store.now():
        return False
    return tick(runtime)


HEARTBEAT_WAKE = b'{"head":null}'  # names no head: the monitor reads the log
IDLE_WAKE = b'{"head":null,"idle":true}'  # an intake that stored records has nothing waiting


def idle_wake_in(wakes: Sequence[Any]) -> bool:
    """Whether an intake's idle wake-up is among ``wakes``."""
    return any(bytes(wake) == IDLE_WAKE for wake in wakes)


def wakes_head(wakes: Sequence[Any]) -> int | None:
    """The furthest log head that wake-ups on the appended topic name; None (read the log)
    when one names none (a heartbeat, an idle wake-up)."""
    heads = []
    for wake in wakes:
        try:
            head = json.loads(wake)["head"]
        except (ValueError, TypeError, KeyError):
            return None
        if not isinstance(head, int):
            return None
        heads.append(head)
    return max(heads, default=None)


def events_after(runtime: Runtime, cursor: int, limit: int = 2000) -> list[Published]:
    """Stored events after log position ``cursor``, keyed by patient.

    The stored canonical JSON is sent as it is, read with the store's ``payloads`` (position
    and text only): ~8 us per event with the key parsed out of the text, against ~27 us for a
    full ``read`` of each row (development machine, 14,000 events)."""
    return [
        Published(
            json.loads(payload)["patient_id"],
            f'{{"position":{position},"event":{payload}}}'.encode(),
            position,
        )
        for position, payload, _stored_at in runtime.store.payloads(after=cursor, limit=limit)
    ]


def rejections_after(runtime: Runtime, cursor: int, limit: int = 2000) -> list[Published]:
    """Dead letters kept after id ``cursor``: the raw record, where from, every problem."""
    out = []
    for rejection in runtime.store.rejections(limit=limit, after=cursor):
        document: dict[str, Any] = {
            "id": rejection.id,
            "received_at": rejection.received_at.isoformat(),
            "source": rejection.source,
            "site_id": rejection.site_id,
            "location": rejection.location,
            "raw": rejection.raw.decode("utf-8", "replace"),
            "problems": rejection.problems,
        }
        out.append(
            Published(
                rejection.site_id or "",
                json.dumps(document, separators=(",", ":")).encode(),
                rejection.id,
            )
        )
    return out


def derived_after(runtime: Runtime, cursor: int) -> list[Published]:
    """Derived events stored after number ``cursor`` (boundaries, sentinels, clocks)."""
    return [
        Published(item.event.rule_id, item.event.model_dump_json().encode(), item.number)
        for item in runtime.derived.derived_events(after=cursor)
    ]


def alerts_after(runtime: Runtime, cursor: int) -> list[Published]:
    """Alerts planned after number ``cursor``, with the channels they are routed to."""
    runtime.outbox.plan(runtime.derived, utc_now())  # the dispatcher thread delivers them
    runtime.dispatcher.wake()
    out = []
    for view in runtime.outbox.alerts(after=cursor):
        document = json.loads(view.alert.model_dump_json())
        document["channels"] = sorted({d.channel for d in view.deliveries})
        out.append(
            Published(
                view.alert.rule_id,
                json.dumps(document, separators=(",", ":")).encode(),
                view.number,
            )
        )
    return out
