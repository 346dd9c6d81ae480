"""``safety-stream post FILE|-``: a site posts events to the ingest API (with retries), or
produces them to Kafka (``--kafka``), and ``safety-stream topics create``."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from safety_stream.client import PostError, SiteClient, post_path
from safety_stream.kafka.config import KafkaSettings
from safety_stream.validation.records import (
    InputFormat,
    read_json_document,
    read_ndjson,
    sniff_format,
)


def run(url: str, token: str, path: str, batch_size: int) -> int:
    client = SiteClient(url, token)
    try:
        summary = post_path(client, path, batch_size)
    except PostError as error:
        print(f"post failed: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"{path}: cannot read: {error.strerror or error}", file=sys.stderr)
        return 2
    finally:
        client.close()
    for problem in summary.problems:
        allowed = f" (allowed: {problem['allowed']})" if problem.get("allowed") else ""
        where = problem.get("path") or "(record)"
        print(f"{problem['location']}: {where}: {problem['message']}{allowed}")
    if summary.queued:
        print(f"queued {summary.queued} on the event log (workers validate and store them)")
    print(
        f"stored {summary.stored}, duplicates {summary.duplicates}, rejected {summary.rejected} "
        f"({summary.attempts} request(s))"
    )
    return 1 if summary.rejected else 0


def run_kafka(kafka: KafkaSettings, path: str, batch_size: int) -> int:
    """Produce a file's records straight to the submissions topic (JSON or NDJSON)."""
    from safety_stream.kafka.producer import SubmissionProducer

    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as error:
        print(f"{path}: cannot read: {error.strerror or error}", file=sys.stderr)
        return 2
    name = None if path == "-" else path
    input_format = sniff_format(data[:4096], name)
    if input_format is InputFormat.CSV:
        print(f"{path}: CSV exports go to the API (safety-stream post --url)", file=sys.stderr)
        return 2
    reader = read_ndjson if input_format is InputFormat.NDJSON else read_json_document
    records = list(reader(io.BytesIO(data)))
    producer = SubmissionProducer(kafka, client_id="safety-stream-post")
    queued = 0
    try:
        for start in range(0, len(records), batch_size):
            queued += len(producer.send(records[start : start + batch_size], "kafka:post"))
    except Exception as error:  # not acknowledged: the same ids can be sent again safely
        print(f"post failed after {queued} record(s): {error}", file=sys.stderr)
        return 2
    finally:
        producer.close()
    print(f"queued {queued} record(s) on {producer.topic}; workers validate and store them")
    return 0


def create_topics(kafka: KafkaSettings | None) -> int:
    from safety_stream.kafka.topics import ensure_topics, topic_specs

    if kafka is None:
        print("topics: give --kafka HOST:PORT", file=sys.stderr)
        return 2
    created = set(ensure_topics(kafka))
    for spec in topic_specs(kafka):
        state = "created" if spec.name in created else "exists"
        print(f"{spec.name}\t{spec.partitions} partition(s)\t{state}")
    return 0
