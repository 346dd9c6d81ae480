"""Ingest over HTTP against a real ``safety-stream serve`` (SQLite), and POST-to-projection latency.

    python benchmarks/http_ingest.py [--events 20000] [--batch 500] [--probes 300]

Starts the server in a child process on a free port with a fresh database, then:
  throughput  a site client posts the events as NDJSON batches; events/s over the whole run
  latency     one AE report at a time: the time from sending the POST until a GET of the
              patient's AE history shows it (p50 / p99); the baseline is the round trip of
              GET /healthz on the same connection, so the ratio shows what ingest adds
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from safety_stream.client import SiteClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from serve_process import start_safety_stream

from safety_stream.synthetic import make_events


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_latencies(baseline: list[float], measured: tuple[str, list[float]]) -> None:
    """p50 / p99 of the baseline round trips and of the measured ones, and the p50 ratio."""
    base50 = statistics.median(baseline)
    for name, values in (("GET /healthz (baseline)", baseline), measured):
        p50, p99 = statistics.median(values), quantile(values, 0.99)
        print(f"{name:<28} p50 {p50 * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms"
              f"  p50 ratio {p50 / base50:.1f}")  # fmt: skip


def start_server(
    db: str, workdir: Path, plan: Path | None = None, alerts: Path | None = None
) -> tuple[subprocess.Popen[bytes], str, str]:
    server = start_safety_stream(db, workdir, plan, alerts)
    return server.process, server.url, server.token


def probe_report(template: dict[str, object]) -> dict[str, object]:
    """A new AE report for an already enrolled patient (from the synthetic stream)."""
    return {**template, "event_id": str(uuid.uuid4())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--probes", type=int, default=300)
    args = parser.parse_args()
    events = make_events(args.events)
    with tempfile.TemporaryDirectory() as tmp:
        server, url, token = start_server(f"sqlite:///{Path(tmp) / 'bench.db'}", Path(tmp))
        try:
            client = SiteClient(url, token)
            started = time.perf_counter()
            for start in range(0, len(events), args.batch):
                summary = client.post_events(events[start : start + args.batch])
                assert summary.stored == len(events[start : start + args.batch]), summary
            seconds = time.perf_counter() - started
            print(f"{len(events)} events in batches of {args.batch}")
            print(f"{'batch ingest over HTTP':<28} {len(events) / seconds:>9,.0f} events/s")

            template = next(e for e in events if e["event_type"] == "ae.reported")
            history = f"{url}/v1/patients/{template['patient_id']}/adverse-events"
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            baseline, latency = [], []
            with httpx.Client(headers=headers, timeout=30) as http:
                for _ in range(args.probes):
                    sent = time.perf_counter()
                    http.get(f"{url}/healthz").raise_for_status()
                    baseline.append(time.perf_counter() - sent)
                for _ in range(args.probes):
                    report = probe_report(template)
                    sent = time.perf_counter()
                    posted = http.post(f"{url}/v1/events", content=json.dumps(report))
                    assert posted.status_code == 201, posted.text
                    while str(report["event_id"]) not in http.get(history).text:
                        pass  # the API projects before it acknowledges: this never loops
                    latency.append(time.perf_counter() - sent)
            print_latencies(baseline, ("POST -> projected", latency))
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
