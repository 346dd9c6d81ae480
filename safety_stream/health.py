"""What keeps this process from doing its job right now, for ``/healthz`` and operators.

Failures are raised and cleared by what meets them (the event store when a write hits a full
disk, the projector when a save fails) and read by the health endpoint; a stored event the
monitor had to set aside is the monitor's (``Monitor.quarantined``), not a failure of now.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass
class Health:
    """Current failures by kind ("storage_full", "projection_save"), each with what it said."""

    _failing: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def failed(self, kind: str, message: str) -> None:
        with self._lock:
            since = self._failing.get(kind, (datetime.now(UTC), ""))[0]
            self._failing[kind] = (since, message)

    def recovered(self, kind: str) -> None:
        with self._lock:
            self._failing.pop(kind, None)

    def failures(self) -> list[str]:
        with self._lock:
            return [
                f"{kind} since {since.isoformat(timespec='seconds')}: {message}"
                for kind, (since, message) in sorted(self._failing.items())
            ]
