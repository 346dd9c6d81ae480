"""The dispatcher: plans, escalates and delivers alerts in a background thread.

One pass (``run_once``) plans new alerts from the derived events, escalates unacknowledged
critical ones, and sends every due delivery, recording each outcome. The thread runs passes
when woken (after ingest stored something) or when the next retry falls due.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from safety_stream.alerts.channels import Delivery, DeliveryError, Sender, sender_for
from safety_stream.alerts.outbox import Outbox
from safety_stream.projections.documents import DerivedSource

log = logging.getLogger("safety_stream.alerts")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class PassResult:
    planned: int = 0
    escalated: int = 0
    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class Dispatcher:
    def __init__(
        self,
        outbox: Outbox,
        source: DerivedSource,
        trial_id: str,
        clock: Callable[[], datetime] = utc_now,
        on_outcome: Callable[[str, str], None] | None = None,
        senders: dict[str, Sender] | None = None,
    ) -> None:
        self.outbox = outbox
        self.source = source
        self.trial_id = trial_id
        self.clock = clock
        self.on_outcome = on_outcome or (lambda channel_type, outcome: None)
        config = outbox.config
        self.senders = senders or {
            key: sender_for(channel, config) for key, channel in config.channels().items()
        }
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> PassResult:
        now = self.clock()
        result = PassResult(
            planned=self.outbox.plan(self.source, now), escalated=self.outbox.escalate(now)
        )
        for claimed in self.outbox.claim(now):
            delivery = Delivery(
                claimed.delivery_id,
                claimed.alert,
                claimed.reason,
                self.trial_id,
                self.outbox.config.board_url,
            )
            sender = self.senders.get(claimed.channel)
            try:
                if sender is None:
                    raise DeliveryError(f"channel {claimed.channel} is no longer configured")
                sender.send(delivery)
            except Exception as error:  # any failure is retried; none may kill the thread
                again = self.outbox.failed(claimed, self.clock(), str(error))
                result.failed += 1
                result.errors.append(str(error))
                self.on_outcome(claimed.channel_type, "failed")
                log.warning(
                    "alert %s via %s failed (attempt %d), retry at %s: %s",
                    claimed.derived_id, claimed.channel, claimed.attempts,
                    f"{again:%H:%M:%S}", error,
                )  # fmt: skip
            else:
                self.outbox.delivered(claimed, self.clock())
                result.delivered += 1
                self.on_outcome(claimed.channel_type, "delivered")
        return result

    # -- background thread ------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def _seconds_to_next(self) -> float:
        due = self.outbox.next_due()
        if due is None:
            return 1.0
        return max(0.0, min(1.0, (due - self.clock()).total_seconds()))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # a wake during this pass makes the wait below return at once
            try:
                self.run_once()
                wait = self._seconds_to_next()
            except Exception:  # the database may be briefly unavailable: try again
                log.exception("alert dispatch pass failed")
                wait = 1.0
            self._wake.wait(wait)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="alert-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
