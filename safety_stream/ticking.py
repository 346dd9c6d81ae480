"""Time passing on the server, recorded in the log.

The monitor's clock is the server's receipt time of the events it folds. With no new data, a
follow-up window can still end and a report deadline can still pass: when the earliest of the
monitor's timers has fallen due by the server's clock, ``tick`` appends a ``clock.ticked``
event (through ingest, like every event: validated and hash-chained) and projects it, so the
window completes or the report turns overdue now, and a replay of the log sees the same.
``Ticker`` does it every few seconds in ``serve``, and writes a signed checkpoint of the hash
chain's head every ``checkpoint_seconds`` when a checkpoint key is configured.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from safety_stream.events import CLOCK_STREAM, SERVER_SITE, ClockTicked, encode_json
from safety_stream.ingest import ingest
from safety_stream.runtime import Runtime
from safety_stream.store.checkpoint import write_configured_checkpoint
from safety_stream.validation.records import InputFormat, RawRecord

log = logging.getLogger(__name__)


def tick(runtime: Runtime) -> bool:
    """Record that the server's clock passed a timer that fell due; whether it did."""
    runtime.projector.catch_up()
    due = runtime.monitor.next_due()
    now = runtime.store.now()
    if due is None or due > now:
        return False
    stamp = now.isoformat()
    event = ClockTicked.model_validate(
        {
            "event_type": "clock.ticked", "schema_version": 1, "event_id": str(uuid.uuid4()),
            "trial_id": runtime.plan.trial.id, "site_id": SERVER_SITE, "patient_id": CLOCK_STREAM,
            "reporter": "server", "occurred_at": stamp, "recorded_at": stamp,
            "due_at": due.isoformat(),
        }
    )  # fmt: skip
    record = RawRecord("clock", encode_json(event).encode())
    report = ingest(
        runtime.store, [record], InputFormat.NDJSON, runtime.ctcae, "server:clock", None,
        may_tick=True,
    )  # fmt: skip
    runtime.projector.follow(report.appended)
    return bool(report.appended)


class Ticker:
    """Calls ``tick`` every ``seconds`` in a daemon thread until ``stop``."""

    def __init__(self, runtime: Runtime, seconds: float) -> None:
        self._runtime = runtime
        self._seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clock-ticker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        checkpointed = float("-inf")
        while not self._stop.wait(self._seconds):
            try:
                while tick(self._runtime):  # several timers may have fallen due
                    pass
            except Exception:  # a failed tick is retried on the next one
                log.exception("clock tick failed")
            every = self._runtime.settings.checkpoint_seconds
            if time.monotonic() - checkpointed >= every:
                checkpointed = time.monotonic()
                try:  # no key configured: nothing is written
                    write_configured_checkpoint(self._runtime.store, self._runtime.settings)
                except Exception as error:  # kept as evidence; say so and go on
                    log.error("checkpoint not written: %s", error)
