"""Simulated sites posting through the real site client (HTTP), in accelerated time or flat out.

Each site has its own ``SiteClient`` (its own bearer token, retries that keep event ids) and
posts its own records in the order it would send them. In accelerated time a tick of
``tick_seconds`` covers ``days_per_second * tick_seconds`` simulated days: every site posts what
it would have sent in that stretch as one NDJSON batch, the sites in parallel. Flat out
(``days_per_second=None``) every site posts batches of ``batch_size`` back to back: the load
generator.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from safety_stream.client import PostSummary, SiteClient
from safety_stream.simulate.generator import SimulatedRecord


@dataclass
class PostingStats:
    """What the simulated sites sent and what the server answered."""

    records: int = 0
    requests: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    seconds: float = 0.0
    simulated_until: datetime | None = None
    by_site: dict[str, int] = field(default_factory=dict)

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    def add(self, site: str, sent: int, summary: PostSummary) -> None:
        self.records += sent
        self.requests += summary.attempts
        self.stored += summary.stored
        self.duplicates += summary.duplicates
        self.rejected += summary.rejected
        self.by_site[site] = self.by_site.get(site, 0) + sent


TickCallback = Callable[[datetime, PostingStats], None]


class SimulatedSites:
    """One site client per site; ``tokens`` maps site id to that site's bearer token."""

    def __init__(
        self, url: str, tokens: dict[str, str], client: Callable[..., SiteClient] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self.stop = threading.Event()
        if client is None:  # a retry's backoff ends early when the run is stopped

            def client(url: str, token: str) -> SiteClient:
                return SiteClient(url, token, sleep=self._pause)

        self.clients = {site: client(url, token) for site, token in tokens.items()}

    def _pause(self, seconds: float) -> None:
        self.stop.wait(seconds)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def _post(self, site: str, records: Sequence[SimulatedRecord], stats: PostingStats) -> None:
        if not records:
            return
        summary = self.clients[site].post_lines([r.body for r in records])
        with self._lock:
            stats.add(site, len(records), summary)

    def _check_tokens(self, records: Sequence[SimulatedRecord]) -> None:
        missing = sorted({r.site_id for r in records} - set(self.clients))
        if missing:
            raise ValueError(f"no token for site(s) {', '.join(missing)}")

    def run(
        self,
        records: Sequence[SimulatedRecord],
        days_per_second: float | None = None,
        *,
        batch_size: int = 500,
        tick_seconds: float = 0.25,
        on_tick: TickCallback | None = None,
    ) -> PostingStats:
        """Post every record; returns the tallies (``stop`` ends it early, between ticks).
        The first site whose posting fails stops the others; its error is raised."""
        if days_per_second is not None and days_per_second <= 0:
            raise ValueError(f"days per second must be > 0, got {days_per_second}")
        self._check_tokens(records)
        stats = PostingStats()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, len(self.clients))) as pool:
            if days_per_second is None:
                self._flat_out(records, batch_size, stats, pool)
            else:
                self._accelerated(records, days_per_second, tick_seconds, stats, pool, on_tick)
        stats.seconds = time.perf_counter() - started
        return stats

    def _flat_out(
        self,
        records: Sequence[SimulatedRecord],
        batch_size: int,
        stats: PostingStats,
        pool: ThreadPoolExecutor,
    ) -> None:
        by_site: dict[str, list[SimulatedRecord]] = defaultdict(list)
        for record in records:
            by_site[record.site_id].append(record)

        def site_loop(site: str, mine: list[SimulatedRecord]) -> None:
            try:
                for start in range(0, len(mine), batch_size):
                    if self.stop.is_set():
                        return
                    self._post(site, mine[start : start + batch_size], stats)
            except BaseException:
                self.stop.set()  # the other sites stop too
                raise

        for future in [pool.submit(site_loop, s, m) for s, m in by_site.items()]:
            future.result()
        if records:
            stats.simulated_until = records[-1].sent_at

    def _accelerated(
        self,
        records: Sequence[SimulatedRecord],
        days_per_second: float,
        tick_seconds: float,
        stats: PostingStats,
        pool: ThreadPoolExecutor,
        on_tick: TickCallback | None,
    ) -> None:
        if not records:
            return
        clock = records[0].sent_at
        step = timedelta(days=days_per_second * tick_seconds)
        index = 0
        while index < len(records) and not self.stop.is_set():
            tick_started = time.perf_counter()
            clock += step
            due: dict[str, list[SimulatedRecord]] = defaultdict(list)
            while index < len(records) and records[index].sent_at <= clock:
                due[records[index].site_id].append(records[index])
                index += 1
            for future in [pool.submit(self._post, s, batch, stats) for s, batch in due.items()]:
                future.result()
            stats.simulated_until = min(clock, records[-1].sent_at)
            if on_tick is not None:
                on_tick(stats.simulated_until, stats)
            self.stop.wait(max(0.0, tick_seconds - (time.perf_counter() - tick_started)))
