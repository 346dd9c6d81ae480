"""End to end with the real servers: the runtime crosses a boundary; Prometheus scrapes it and
fires the deploy rule; Alertmanager delivers to a webhook; the direct Alertmanager channel of
the runtime delivers too."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import REPO
from realservers import (
    RunningServer,
    WebhookReceiver,
    prometheus_query,
    start_alertmanager,
    start_prometheus,
    wait_for,
)
from serve_process import ServeProcess, start_safety_stream
from trial_builder import CHEMO_CROSSES, crossing_trial

from safety_stream.events import encode_json

RULES = REPO / "deploy" / "prometheus" / "rules" / "safety-stream.yml"
METRICS_TOKEN = "metrics-token-for-the-end-to-end-test"


def alertmanager_config(webhook: str) -> str:
    return yaml.safe_dump(
        {
            "route": {
                "receiver": "test",
                "group_by": ["alertname", "rule", "source"],
                "group_wait": "0s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [{"name": "test", "webhook_configs": [{"url": webhook}]}],
        }
    )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[ServeProcess, RunningServer, WebhookReceiver]]:
    with (
        WebhookReceiver() as receiver,
        start_alertmanager(
            tmp_path / "am", alertmanager_config(receiver.url + "/am")
        ) as alertmanager,
    ):
        alerts = tmp_path / "alerts.yaml"
        alerts.write_text(
            yaml.safe_dump(
                {
                    "groups": [
                        {
                            "name": "dsmb",
                            "severities": ["critical"],
                            "channels": [{"type": "alertmanager", "url": alertmanager.url}],
                        }
                    ]
                }
            )
        )
        server = start_safety_stream(
            f"sqlite:///{tmp_path / 'e2e.db'}", tmp_path, alerts=alerts,
            env=os.environ | {"SAFETY_STREAM_METRICS_TOKEN": METRICS_TOKEN},
        )  # fmt: skip
        try:
            with start_prometheus(
                tmp_path / "prom", [f"127.0.0.1:{server.port}"], [RULES], alertmanager.url,
                bearer_token=METRICS_TOKEN,
            ) as prometheus:  # fmt: skip
                yield server, prometheus, receiver
        finally:
            server.stop()


def notified(receiver: WebhookReceiver, **labels: str) -> list[dict[str, Any]]:
    return [
        alert
        for request in receiver.received
        for alert in request.body.get("alerts", [])
        if all(alert["labels"].get(k) == v for k, v in labels.items())
    ]


def test_a_crossing_reaches_the_webhook_through_prometheus_and_directly(
    stack: tuple[ServeProcess, RunningServer, WebhookReceiver],
) -> None:
    server, prometheus, receiver = stack
    body = "\n".join(encode_json(e) for e in crossing_trial(CHEMO_CROSSES).events).encode()
    answer = httpx.post(
        f"{server.url}/v1/events",
        content=body,
        headers={
            "Authorization": f"Bearer {server.token}",
            "Content-Type": "application/x-ndjson",
        },
    )
    assert answer.status_code == 201
    rule = {"rule": "chemotherapy-related-g3"}
    # Prometheus path: scrape -> SafetyRuleCrossed -> Alertmanager -> webhook.
    wait_for(lambda: notified(receiver, alertname="SafetyRuleCrossed", **rule), timeout=90)
    (via_rule,) = notified(receiver, alertname="SafetyRuleCrossed", **rule)
    assert via_rule["status"] == "firing"
    assert via_rule["labels"]["severity"] == "critical"
    assert via_rule["labels"]["category"] == "safety"
    assert via_rule["labels"]["modality"] == "chemotherapy"
    # Direct channel: the runtime posts its own alert to Alertmanager's API v2.
    wait_for(lambda: notified(receiver, alertname="SafetyBoundaryCrossed", **rule), timeout=30)
    (direct,) = notified(receiver, alertname="SafetyBoundaryCrossed", **rule)
    assert direct["labels"]["source"] == "safety-stream"
    assert direct["labels"]["kind"] == "boundary.crossed"
    assert (
        f"{CHEMO_CROSSES} of {CHEMO_CROSSES} evaluable patients" in direct["annotations"]["summary"]
    )
    assert not any(f"P{i}" in str(direct["labels"]) for i in range(1, CHEMO_CROSSES + 1))
    # The Prometheus series the rule fired on, as queried from the live server.
    (state,) = prometheus_query(
        prometheus.url, 'safety_stream_rule_state{rule="chemotherapy-related-g3"}'
    )
    assert state["value"][1] == "2"
    # The runtime recorded the direct delivery as delivered.
    alerts = httpx.get(
        f"{server.url}/v1/alerts", headers={"Authorization": f"Bearer {server.token}"}
    ).json()
    crossed = [a for a in alerts if a["alert"]["kind"] == "boundary.crossed"]
    assert [d["state"] for a in crossed for d in a["deliveries"]] == ["delivered"]
