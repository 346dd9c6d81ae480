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

from safety_stream.validation.edc_csv import sniff_delimiter
from safety_stream.validation.records import InputFormat, decode_text, read_ndjson, sniff_format

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
VERDICT_STATUSES = frozenset({200, 201, 202, 403, 409, 422})
"""The ingest API's documented answers to a submission (with per-record ``results``)."""


class InputError(ValueError):
    """A file to post cannot be read as what it claims to be; nothing of it was sent."""


class PostError(Exception):
    """The server could not be reached, kept failing after every retry, or did not answer as
    the ingest API does: nothing in the batch can be taken as submitted."""


def ingest_base_url(url: str) -> str:
    """The server's base URL from what a site typed: ``localhost:8080`` gains ``http://``,
    a trailing ``/v1`` or ``/v1/events`` is dropped (the client adds it); anything that is
    not an http(s) URL with a host is a ValueError naming the expected form."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parsed: httpx.URL | None = httpx.URL(text)
    except (httpx.InvalidURL, ValueError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(
            f"--url {url!r} is not the server's address (expected e.g. http://127.0.0.1:8080)"
        )
    path = parsed.path.rstrip("/")
    for suffix in ("/v1/events", "/v1"):
        path = path.removesuffix(suffix)
    return str(parsed.copy_with(path=path or "/", query=None, fragment=None)).rstrip("/")


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
        on_retry: Callable[[int, int, str, float], None] | None = None,
    ) -> None:
        """``on_retry(attempt, attempts, reason, delay)`` is told of every retry (progress)."""
        self.base_url = ingest_base_url(base_url)
        self._on_retry = on_retry
        self._http = httpx.Client(
            base_url=self.base_url,
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
        attempts = self._retries + 1
        target = f"{self.base_url}/v1/events"
        for attempt in range(1, attempts + 1):
            try:
                response = self._http.post(
                    "/v1/events", content=body, headers={"Content-Type": content_type}
                )
            except httpx.TransportError as error:
                reason = _transport_reason(error)
                if attempt == attempts:
                    raise PostError(
                        f"{target}: {reason}; gave up after {attempt} attempts"
                    ) from error
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response.status_code, _verdict(response, target), attempt
                reason = f"HTTP {response.status_code}{_detail(response)}"
                if attempt == attempts:
                    raise PostError(f"{target}: {reason}; gave up after {attempt} attempts")
            delay = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
            delay *= 0.5 + random.random() / 2
            if self._on_retry is not None:
                self._on_retry(attempt, attempts, reason, delay)
            self._sleep(delay)
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

    def post_file(
        self,
        stream: IO[bytes],
        name: str | None,
        batch_size: int = 500,
        *,
        encoding: str | None = None,
        summary: PostSummary | None = None,
    ) -> PostSummary:
        """Post an NDJSON, JSON or EDC CSV file in batches of ``batch_size`` events, adding
        to ``summary`` as each batch is answered (so a failure later leaves it telling what
        was submitted before). ``encoding`` is a CSV file's, when not UTF-8."""
        summary = summary if summary is not None else PostSummary()
        for body, content_type in _batches(stream, name, batch_size, encoding):
            self._add(summary, *self.post_batch(body, content_type))
        return summary

    @staticmethod
    def _add(summary: PostSummary, status: int, document: dict[str, Any], attempts: int) -> None:
        summary.attempts += attempts
        summary.stored += document.get("stored", 0)
        summary.duplicates += document.get("duplicates", 0)
        summary.rejected += document.get("rejected", 0)
        summary.queued += document.get("queued", 0)
        for result in document.get("results", []):
            for problem in result.get("problems", []):
                summary.problems.append({"location": result["location"], **problem})


def _detail(response: httpx.Response) -> str:
    """``: <detail>`` of an error answer, short, from JSON ``detail`` or the text body."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = response.text
    text = " ".join(str(detail or "").split())
    return f": {text[:200]}" if text else ""


def _verdict(response: httpx.Response, target: str) -> dict[str, Any]:
    """The ingest API's JSON verdict on a batch, or PostError for any other answer (a wrong
    URL's 404, a proxy's 405 or HTML page, a refused credential, a body over the limit)."""
    status = response.status_code
    try:
        document = response.json()
    except ValueError:
        document = None
    if status in VERDICT_STATUSES and isinstance(document, dict) and "results" in document:
        return document
    hint = ""
    if status in (404, 405):
        hint = " (is --url the safety-stream server's base URL, e.g. http://127.0.0.1:8080?)"
    elif status == 401:
        hint = " (check --token: the site's bearer token from `safety-stream sites add`)"
    raise PostError(f"{target}: HTTP {status}{_detail(response)}{hint}; nothing was submitted")


def _transport_reason(error: httpx.TransportError) -> str:
    if isinstance(error, httpx.ConnectError):
        return f"cannot connect ({error})"
    if isinstance(error, httpx.TimeoutException):
        return "no answer in time (the server may have stored the batch; resending is safe)"
    return f"{type(error).__name__}: {error}"


_CSV_HINT = (
    "; Excel and Windows exports are often cp1252: give --encoding cp1252 (or the export's "
    "encoding), or export the file as UTF-8"
)


def _batches(
    stream: IO[bytes], name: str | None, batch_size: int, encoding: str | None = None
) -> Iterator[tuple[bytes, str]]:
    """(body, content type) chunks of up to ``batch_size`` records, each record as read.

    A CSV export is read whole and checked first: text that is not in its encoding is refused
    before anything is sent (else the batches before the bad byte would be stored and the rest
    not); its rows are re-sent as UTF-8, comma-separated, header first in every batch.
    """
    head = stream.peek(4096)[:4096] if hasattr(stream, "peek") else b""
    input_format = sniff_format(head, name)
    if input_format is InputFormat.JSON:  # one document: the server reports on every item
        yield stream.read(), "application/json"
    elif input_format is InputFormat.CSV:  # header + rows, so errors name the export columns
        text, problem = decode_text(stream.read(), name or "the CSV input", encoding, _CSV_HINT)
        if problem is not None:
            raise InputError(problem.message)
        delimiter = sniff_delimiter(text.split("\n", 1)[0])
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        for start in range(1, max(len(rows), 2), batch_size):
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows(
                [rows[0], *rows[start : start + batch_size]]
            )
            yield out.getvalue().encode("utf-8"), "text/csv; charset=utf-8"
    else:
        lines = [record.raw for record in read_ndjson(stream) if record.raw]
        for start in range(0, len(lines), batch_size):
            yield b"\n".join(lines[start : start + batch_size]) + b"\n", "application/x-ndjson"


def post_path(
    client: SiteClient,
    path: str,
    batch_size: int = 500,
    *,
    encoding: str | None = None,
    summary: PostSummary | None = None,
) -> PostSummary:
    if path == "-":
        import sys

        return client.post_file(
            sys.stdin.buffer, None, batch_size, encoding=encoding, summary=summary
        )
    with Path(path).open("rb") as stream:
        return client.post_file(stream, path, batch_size, encoding=encoding, summary=summary)
