"""From the POST that crosses a boundary to the alert delivered, p50 / p99 over repeated runs.

    python benchmarks/alert_delivery.py [--probes 30]

Starts a real Alertmanager (Debian's, group_wait 0s, group_interval 1s), an SMTP server
(aiosmtpd, in this process), a webhook receiver, and ``safety-stream serve`` (SQLite) with a
plan whose chemotherapy rule crosses at one counted patient. Critical alerts go by webhook and
e-mail; every alert goes to Alertmanager (so a clearing resolves the crossing there). Each
probe POSTs one grade 3 AE (the rule crosses) and times its arrival at (a) the webhook,
(b) the SMTP server and (c) Alertmanager's webhook receiver; then it retracts the AE (the rule
clears) and waits for Alertmanager to send the resolution. The baseline is GET /healthz.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from alert_latency import event, plan_file, setup
from http_ingest import print_latencies, start_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from realservers import WebhookReceiver, free_port, start_alertmanager

AE_FIELDS: dict[str, Any] = {
    "ctcae_version": "5.0", "ctcae_term": "Neutrophil count decreased",
    "meddra_code": 10029366, "grade": 3, "onset_date": "2026-01-05", "seriousness": [],
    "expectedness": "expected", "immune_related": False, "action_taken": "dose_reduced",
    "attribution": {"radiotherapy": "unrelated", "chemotherapy": "definite",
                    "immunotherapy": "unrelated"},
}  # fmt: skip


class Inbox:
    """An SMTP handler that counts accepted messages and wakes a waiter."""

    def __init__(self) -> None:
        self.count = 0
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.arrived:
            self.count += 1
            self.arrived.notify_all()
        return "250 OK"

    def wait_for(self, n: int, timeout: float = 30) -> None:
        with self.arrived:
            if not self.arrived.wait_for(lambda: self.count >= n, timeout):
                raise TimeoutError(f"{self.count} of {n} e-mails")


def firing_crossings(receiver: WebhookReceiver) -> int:
    return sum(
        1
        for request in receiver.received
        if request.path == "/am"
        for alert in request.body["alerts"]
        if alert["status"] == "firing" and alert["labels"]["alertname"] == "SafetyBoundaryCrossed"
    )


def resolved_crossings(receiver: WebhookReceiver) -> int:
    return sum(
        1
        for request in receiver.received
        if request.path == "/am"
        for alert in request.body["alerts"]
        if alert["status"] == "resolved" and alert["labels"]["alertname"] == "SafetyBoundaryCrossed"
    )


def wait(predicate: Any, timeout: float = 30) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("gave up waiting")
        time.sleep(0.0005)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--probes", type=int, default=30)
    args = parser.parse_args()
    inbox = Inbox()
    smtp_port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    with tempfile.TemporaryDirectory() as tmp, WebhookReceiver() as receiver:
        directory = Path(tmp)
        am_config = {
            "route": {"receiver": "bench", "group_by": ["..."], "group_wait": "0s",
                      "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "bench", "webhook_configs": [{"url": receiver.url + "/am"}]}],
        }  # fmt: skip
        with start_alertmanager(directory / "am", yaml.safe_dump(am_config)) as alertmanager:
            alerts = directory / "alerts.yaml"
            alerts.write_text(yaml.safe_dump({
                "smtp": {"host": "127.0.0.1", "port": smtp_port, "starttls": False},
                "groups": [
                    {"name": "dsmb", "severities": ["critical"], "channels": [
                        {"type": "webhook", "url": receiver.url + "/dsmb"},
                        {"type": "email", "to": ["dsmb@example.org"]}]},
                    {"name": "am", "channels": [{"type": "alertmanager", "url": alertmanager.url}]},
                ],
            }))  # fmt: skip
            server, url, token = start_server(
                f"sqlite:///{directory / 'bench.db'}", directory, plan_file(directory), alerts
            )
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            try:
                run(url, headers, receiver, inbox, args.probes)
            finally:
                server.terminate()
                server.wait(30)
    smtp.stop()


def run(
    url: str, headers: dict[str, str], receiver: WebhookReceiver, inbox: Inbox, probes: int
) -> None:
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        assert http.post("/v1/events", content=json.dumps(setup())).status_code == 201
        baseline: list[float] = []
        for _ in range(probes):
            sent = time.perf_counter()
            http.get("/healthz").raise_for_status()
            baseline.append(time.perf_counter() - sent)
        webhook: list[float] = []
        email: list[float] = []
        alertmanager: list[float] = []
        for probe in range(1, probes + 1):
            ae = event("ae.reported", **AE_FIELDS)
            sent = time.perf_counter()
            assert http.post("/v1/events", content=json.dumps(ae)).status_code == 201
            done: dict[str, float] = {}
            while len(done) < 3:
                now = time.perf_counter() - sent
                hooks = sum(r.path == "/dsmb" for r in receiver.received)
                if "webhook" not in done and hooks >= probe:
                    done["webhook"] = now
                if "email" not in done and inbox.count >= probe:
                    done["email"] = now
                if "am" not in done and firing_crossings(receiver) >= probe:
                    done["am"] = now
                if now > 60:
                    raise TimeoutError(f"probe {probe}: only {sorted(done)} arrived")
                time.sleep(0.0005)
            webhook.append(done["webhook"])
            email.append(done["email"])
            alertmanager.append(done["am"])
            retraction = event("ae.retracted", ae_id=ae["event_id"], reason="benchmark")
            assert http.post("/v1/events", content=json.dumps(retraction)).is_success
            wait(lambda probe=probe: resolved_crossings(receiver) >= probe, timeout=60)
    print(f"{probes} crossings, each from a single POST (SQLite; Alertmanager group_interval 1s)")
    print_latencies(baseline, ("POST -> webhook", webhook))
    print_latencies(baseline, ("POST -> e-mail (SMTP)", email))
    print_latencies(baseline, ("POST -> Alertmanager hook", alertmanager))
    print(f"first crossing (a new Alertmanager group, group_wait 0s): POST -> Alertmanager hook"
          f" {alertmanager[0] * 1000:.1f} ms; later ones wait for the group_interval")  # fmt: skip


if __name__ == "__main__":
    main()
