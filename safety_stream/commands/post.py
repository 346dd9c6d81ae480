"""``safety-stream post FILE|-``: a site posts events to the ingest API (with retries), or
produces them to Kafka (``--kafka``), and ``safety-stream topics create``."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from safety_stream.client import InputError, PostError, PostSummary, SiteClient, post_path
from safety_stream.errors import SafetyStreamError, UsageError
from safety_stream.kafka.config import KafkaSettings
from safety_stream.validation.records import (
    InputFormat,
    RawRecord,
    read_json_document,
    read_ndjson,
    sniff_format,
)


def run(
    url: str, token: str, paths: list[str], batch_size: int, encoding: str | None = None
) -> int:
    """Post each file in turn. Exit 0 when every record was stored or was a duplicate, 1 when
    the server rejected some (listed), and an error (nothing more sent) when a request could
    not be answered as the ingest API answers: what was stored before it is printed."""
    try:
        client = SiteClient(url, token, on_retry=_show_retry)
    except ValueError as error:
        raise UsageError(str(error)) from None
    summary = PostSummary()
    try:
        for path in paths:
            try:
                post_path(client, path, batch_size, encoding=encoding, summary=summary)
            except InputError as error:
                raise UsageError(f"{error}; nothing of {path} was sent") from None
            except OSError as error:
                raise UsageError(f"{path}: cannot read: {error.strerror or error}") from None
    except (PostError, UsageError) as error:
        _print_summary(summary, "before the failure: ")
        if isinstance(error, UsageError):
            raise
        raise PostFailed(str(error)) from None
    finally:
        client.close()
    _print_summary(summary)
    return 1 if summary.rejected else 0


class PostFailed(SafetyStreamError):
    """A request was not answered as the ingest API answers (exit status 1)."""


def _show_retry(attempt: int, attempts: int, reason: str, delay: float) -> None:
    print(
        f"safety-stream post: {reason}; retrying in {delay:.1f} s "
        f"(attempt {attempt + 1} of {attempts})",
        file=sys.stderr,
        flush=True,
    )


def _print_summary(summary: PostSummary, prefix: str = "") -> None:
    for problem in summary.problems:
        allowed = f" (allowed: {problem['allowed']})" if problem.get("allowed") else ""
        where = problem.get("path") or "(record)"
        print(f"{problem['location']}: {where}: {problem['message']}{allowed}")
    if summary.queued:
        print(f"{prefix}queued {summary.queued} on the event log (workers validate and store them)")
    if prefix and not summary.attempts:
        return
    print(
        f"{prefix}stored {summary.stored}, duplicates {summary.duplicates}, "
        f"rejected {summary.rejected} ({summary.attempts} request(s))"
    )


def run_kafka(kafka: KafkaSettings, paths: list[str], batch_size: int) -> int:
    """Produce files' records straight to the submissions topic (JSON or NDJSON)."""
    from safety_stream.kafka.producer import SubmissionProducer

    records: list[RawRecord] = []
    for path in paths:
        try:
            data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        except OSError as error:
            raise UsageError(f"{path}: cannot read: {error.strerror or error}") from None
        name = None if path == "-" else path
        input_format = sniff_format(data[:4096], name)
        if input_format is InputFormat.CSV:
            raise UsageError(f"{path}: CSV exports go to the API (safety-stream post --url)")
        reader = read_ndjson if input_format is InputFormat.NDJSON else read_json_document
        records.extend(reader(io.BytesIO(data)))
    producer = SubmissionProducer(kafka, client_id="safety-stream-post")
    queued = 0
    try:
        for start in range(0, len(records), batch_size):
            queued += len(producer.send(records[start : start + batch_size], "kafka:post"))
    except Exception as error:  # not acknowledged: the same ids can be sent again safely
        raise PostFailed(
            f"the broker did not acknowledge after {queued} record(s): {error} "
            "(resending the same files is safe)"
        ) from None
    finally:
        producer.close()
    print(f"queued {queued} record(s) on {producer.topic}; workers validate and store them")
    return 0


def create_topics(kafka: KafkaSettings | None) -> int:
    from safety_stream.kafka.topics import ensure_topics, topic_specs

    if kafka is None:
        raise UsageError("give --kafka HOST:PORT")
    created = set(ensure_topics(kafka))
    for spec in topic_specs(kafka):
        state = "created" if spec.name in created else "exists"
        print(f"{spec.name}\t{spec.partitions} partition(s)\t{state}")
    return 0
