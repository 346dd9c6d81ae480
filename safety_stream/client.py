"""The site producer client: posts events with retries that can never double-count.

Files are sent in batches; every event keeps its ``event_id`` across retries (CSV rows get ids
derived from the row, see ``validation.edc_csv``), so a retry after a lost response stores
nothing twice: the server answers "duplicate" for what it already has.
"""

from __future__ import annotations

import csv
import io
import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from safety_stream.validation.records import InputFormat, read_ndjson, sniff_format

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class PostError(Exception):
    """The server could not be reached or kept failing after every retry."""


@dataclass
class PostSummary:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    queued: int = 0  # distributed mode: on the event log, validated and stored by workers
    attempts: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)


class SiteClient:
    """A site's connection to the ingest API."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        retries: int = 8,
        backoff: float = 0.2,
        max_backoff: float = 10.0,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )
        self._retries, self._backoff, self._max_backoff = retries, backoff, max_backoff
        self._sleep = sleep

    def close(self) -> None:
        self._http.close()

    def post_batch(self, body: bytes, content_type: str) -> tuple[int, dict[str, Any], int]:
        """POST one body, retrying connection failures and 5xx/429 with jittered backoff.

        Returns (status, JSON body, attempts). The same bytes are resent on every attempt.
        """
        for attempt in range(1, self._retries + 2):
            try:
                response = self._http.post(
                    "/v1/events", content=body, headers={"Content-Type": content_type}
                )
            except httpx.TransportError as error:
                if attempt > self._retries:
                    raise PostError(f"gave up after {attempt} attempts: {error}") from error
            else:
                if response.status_code not in RETRY_STATUSES:
                    try:
                        document = response.json()
                    except ValueError:
                        document = {"detail": response.text}
                    return response.status_code, document, attempt
                if attempt > self._retries:
                    raise PostError(
                        f"gave up after {attempt} attempts: HTTP {response.status_code}"
                    )
            delay = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
            self._sleep(delay * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")

    def post_events(self, events: list[dict[str, Any]]) -> PostSummary:
        """Post already-built event objects as one NDJSON batch."""
        return self.post_lines([json.dumps(e).encode() for e in events])

    def post_lines(self, lines: Sequence[bytes]) -> PostSummary:
        """Post already-encoded records (one JSON document each) as one NDJSON batch."""
        summary = PostSummary()
        body = b"".join(line + b"\n" for line in lines)
        self._add(summary, *self.post_batch(body, "application/x-ndjson"))
        return summary

    def post_file(self, stream: IO[bytes], name: str | None, batch_size: int = 500) -> PostSummary:
        """Post an NDJSON, JSON or EDC CSV file in batches of ``batch_size`` events."""
        summary = PostSummary()
        for body, content_type in _batches(stream, name, batch_size):
            self._add(summary, *self.post_batch(body, content_type))
        return summary

    @staticmethod
    def _add(summary: PostSummary, status: int, document: dict[str, Any], attempts: int) -> None:
        summary.attempts += attempts
        if status in (401, 403, 413, 415) and "results" not in document:
            raise PostError(f"HTTP {status}: {document.get('detail')}")
        summary.stored += document.get("stored", 0)
        summary.duplicates += document.get("duplicates", 0)
        summary.rejected += document.get("rejected", 0)
        summary.queued += document.get("queued", 0)
        for result in document.get("results", []):
            for problem in result.get("problems", []):
                summary.problems.append({"location": result["location"], **problem})


def _batches(stream: IO[bytes], name: str | None, batch_size: int) -> Iterator[tuple[bytes, str]]:
    """(body, content type) chunks of up to ``batch_size`` records, each record as read."""
    head = stream.peek(4096)[:4096] if hasattr(stream, "peek") else b""
    input_format = sniff_format(head, name)
    if input_format is InputFormat.JSON:  # one document: the server reports on every item
        yield stream.read(), "application/json"
    elif input_format is InputFormat.CSV:  # header + rows, so errors name the export columns
        text = stream.read().decode("utf-8-sig", errors="surrogateescape")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        for start in range(1, max(len(rows), 2), batch_size):
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows(
                [rows[0], *rows[start : start + batch_size]]
            )
            yield out.getvalue().encode("utf-8", errors="surrogateescape"), "text/csv"
    else:
        lines = [record.raw for record in read_ndjson(stream) if record.raw]
        for start in range(0, len(lines), batch_size):
            yield b"\n".join(lines[start : start + batch_size]) + b"\n", "application/x-ndjson"


def post_path(client: SiteClient, path: str, batch_size: int = 500) -> PostSummary:
    if path == "-":
        import sys

        return client.post_file(sys.stdin.buffer, None, batch_size)
    with Path(path).open("rb") as stream:
        return client.post_file(stream, path, batch_size)
