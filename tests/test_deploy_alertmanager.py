"""deploy/alertmanager: config check, routing cases, and the real servers end to end.

The end-to-end tests run Debian's Prometheus and Alertmanager on 127.0.0.1. Alertmanager gets
the deploy config's routing tree and inhibit rules unchanged, with every receiver replaced by a
webhook to a local recorder (one path per receiver) and short grouping times.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import REPO
from realservers import (
    ALERTMANAGER,
    AMTOOL,
    PROMETHEUS,
    MetricsTarget,
    ReceivedRequest,
    RunningServer,
    WebhookReceiver,
    prometheus_query,
    require_binary,
    start_alertmanager,
    start_prometheus,
    wait_for,
)

CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
ROUTES = REPO / "deploy" / "alertmanager" / "routes-test.tsv"
RULES = REPO / "deploy" / "prometheus" / "rules" / "safety-stream.yml"

RECEIVERS = ("dsmb", "safety-officer", "operator")
DIRECT_ALERTS = {
    "SafetyBoundaryCrossed",
    "SafetyBoundaryApproached",
    "SafetyBoundaryCleared",
    "SafetySentinelRaised",
    "SafetyReportDue",
    "SafetyReportOverdue",
    "SafetyReportClosed",
}


@dataclass(frozen=True)
class RouteCase:
    name: str
    receivers: str
    labels: tuple[str, ...]


def route_cases() -> list[RouteCase]:
    """The cases of routes-test.tsv: name, receivers, labels; '#' lines and the header skipped."""
    cases = []
    lines = ROUTES.read_text(encoding="utf-8").splitlines()
    rows = [line for line in lines if line.strip() and not line.startswith("#")]
    assert rows[0].split("\t") == ["name", "receivers", "labels"], "header"
    for row in rows[1:]:
        name, receivers, labels = row.split("\t")
        cases.append(RouteCase(name, receivers, tuple(labels.split())))
    return cases


def run_tool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def amtool() -> str:
    return require_binary(AMTOOL)


# --- static checks ---------------------------------------------------------------------------


def test_config_is_valid(amtool: str) -> None:
    done = run_tool(amtool, "check-config", str(CONFIG.relative_to(REPO)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    assert "3 receivers" in done.stdout
    assert "2 inhibit rules" in done.stdout


@pytest.mark.parametrize("case", route_cases(), ids=lambda case: case.name)
def test_route(amtool: str, case: RouteCase) -> None:
    done = run_tool(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG.relative_to(REPO)}",
        f"--verify.receivers={case.receivers}",
        *case.labels,
    )
    assert done.returncode == 0, (
        f"{' '.join(case.labels)} routed to {done.stdout.strip()!r}, expected {case.receivers!r}"
        f"\n{done.stderr}"
    )
    assert done.stdout.strip() == case.receivers


def test_route_cases_cover_every_receiver_and_alert() -> None:
    cases = route_cases()
    reached = {receiver for case in cases for receiver in case.receivers.split(",")}
    assert reached == set(RECEIVERS)
    names = {
        label.split("=", 1)[1]
        for case in cases
        for label in case.labels
        if label.startswith("alertname=")
    }
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    prometheus_alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert prometheus_alerts <= names
    assert names >= DIRECT_ALERTS
    assert len({case.name for case in cases}) == len(cases), "duplicate case names"


def test_receivers_and_email_settings() -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    assert set(receivers) == set(RECEIVERS)
    for name in ("dsmb", "safety-officer"):
        (email,) = receivers[name]["email_configs"]
        assert email["require_tls"] is True
        assert email["to"].endswith("@example.org")
        assert len(receivers[name]["webhook_configs"]) == 1
    assert set(receivers["operator"]) == {"name", "webhook_configs"}
    assert config["route"]["receiver"] == "safety-officer"
    assert config["route"]["group_by"] == ["alertname", "rule"]


# --- real servers ----------------------------------------------------------------------------


def webhook_config(receiver_url: str) -> str:
    """The deploy config with webhook-only receivers at receiver_url/NAME and fast grouping."""
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    config.pop("global", None)
    config["receivers"] = [
        {
            "name": receiver["name"],
            "webhook_configs": [
                {"url": f"{receiver_url}/{receiver['name']}", "send_resolved": True}
            ],
        }
        for receiver in config["receivers"]
    ]

    def inherit_timing(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval", "repeat_interval"):
            route.pop(key, None)
        for child in route.get("routes", []):
            inherit_timing(child)

    inherit_timing(config["route"])
    config["route"].update(group_wait="0s", group_interval="1s", repeat_interval="1h")
    return yaml.safe_dump(config, sort_keys=False)


def request_alerts(request: ReceivedRequest) -> list[dict[str, Any]]:
    """The alerts of one Alertmanager webhook notification."""
    body = request.body
    return list(body["alerts"]) if isinstance(body, dict) else []


def notified(
    hooks: WebhookReceiver, receiver: str, alertname: str, rule: str
) -> list[dict[str, Any]]:
    """The firing alerts named `alertname` for `rule` that reached `receiver`'s webhook."""
    found = []
    for request in hooks.received:
        body = request.body
        if request.path != f"/{receiver}" or not isinstance(body, dict):
            continue
        assert body["receiver"] == receiver
        for alert in body["alerts"]:
            labels = alert["labels"]
            if (
                alert["status"] == "firing"
                and labels.get("alertname") == alertname
                and labels.get("rule") == rule
            ):
                found.append(alert)
    return found


@pytest.fixture
def hooks() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def alertmanager(tmp_path: Path, hooks: WebhookReceiver) -> Iterator[RunningServer]:
    require_binary(ALERTMANAGER)
    with start_alertmanager(tmp_path / "alertmanager", webhook_config(hooks.url)) as server:
        yield server


EXPOSITION = """\
# HELP safety_stream_rule_state State of each stopping rule: 0 inside, 1 approached, 2 crossed.
# TYPE safety_stream_rule_state gauge
safety_stream_rule_state{rule="overall-related-g3",modality="any",kind="bayesian"} 2
safety_stream_rule_state{rule="chemotherapy-related-g3",modality="chemotherapy",kind="pocock"} 1
safety_stream_rule_state{rule="rild",modality="radiotherapy",kind="pocock"} 0
safety_stream_rule_state{rule="treatment-related-death",modality="any",kind="sentinel"} 0
# HELP safety_stream_sentinel_raised AEs that raised each sentinel rule
# TYPE safety_stream_sentinel_raised gauge
safety_stream_sentinel_raised{rule="treatment-related-death"} 0
# HELP safety_stream_projection_lag_events Events committed to the log but not yet projected
# TYPE safety_stream_projection_lag_events gauge
safety_stream_projection_lag_events 0
"""


def test_prometheus_alert_reaches_the_dsmb_and_the_safety_officer(
    tmp_path: Path, hooks: WebhookReceiver, alertmanager: RunningServer
) -> None:
    require_binary(PROMETHEUS)
    with (
        MetricsTarget(EXPOSITION) as target,
        start_prometheus(
            tmp_path / "prometheus", [target.address], [RULES], alertmanager.url
        ) as prometheus,
    ):

        def crossed_at_both() -> bool:
            return all(
                notified(hooks, receiver, "SafetyRuleCrossed", "overall-related-g3")
                for receiver in ("dsmb", "safety-officer")
            )

        try:
            wait_for(
                crossed_at_both, timeout=60, what="SafetyRuleCrossed at dsmb and safety-officer"
            )
        except TimeoutError as error:
            alerts = prometheus_query(prometheus.url, "ALERTS")
            raise AssertionError(
                f"{error}\nPrometheus ALERTS: {alerts}\nwebhooks: {hooks.received}\n"
                f"Prometheus:\n{prometheus.log_tail()}\nAlertmanager:\n{alertmanager.log_tail()}"
            ) from None

        for receiver in ("dsmb", "safety-officer"):
            alert = notified(hooks, receiver, "SafetyRuleCrossed", "overall-related-g3")[0]
            assert alert["labels"] == {
                "alertname": "SafetyRuleCrossed",
                "severity": "critical",
                "category": "safety",
                "rule": "overall-related-g3",
                "modality": "any",
                "kind": "bayesian",
                "job": "safety-stream",
                "instance": target.address,
            }
            assert alert["annotations"]["summary"] == (
                "Stopping rule overall-related-g3 has crossed its boundary"
            )
            assert (
                "bayesian stopping rule overall-related-g3 (modality any)"
                in (alert["annotations"]["description"])
            )

        # the warning goes to the safety officer only
        wait_for(
            lambda: notified(
                hooks, "safety-officer", "SafetyRuleApproached", "chemotherapy-related-g3"
            ),
            timeout=30,
            what="SafetyRuleApproached at safety-officer",
        )
        assert not notified(hooks, "dsmb", "SafetyRuleApproached", "chemotherapy-related-g3")
        assert not [request for request in hooks.received if request.path == "/operator"]

        firing = prometheus_query(prometheus.url, 'ALERTS{alertstate="firing"}')
        assert sorted((a["metric"]["alertname"], a["metric"]["rule"]) for a in firing) == [
            ("SafetyRuleApproached", "chemotherapy-related-g3"),
            ("SafetyRuleCrossed", "overall-related-g3"),
        ]


def post_alerts(url: str, *label_sets: dict[str, str]) -> None:
    alerts = [
        {"labels": labels, "annotations": {"summary": labels["alertname"]}} for labels in label_sets
    ]
    response = httpx.post(f"{url}/api/v2/alerts", json=alerts, timeout=10)
    assert response.status_code == 200, response.text


def alert_states(url: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Alertmanager's view of each alert, by (alertname, rule, trial or modality)."""
    response = httpx.get(f"{url}/api/v2/alerts", timeout=10)
    response.raise_for_status()
    states = {}
    for alert in response.json():
        labels = alert["labels"]
        key = (labels["alertname"], labels["rule"], labels.get("trial", labels.get("modality", "")))
        states[key] = alert["status"]
    return states


def test_crossed_inhibits_approached_of_the_same_rule_only(
    hooks: WebhookReceiver, alertmanager: RunningServer
) -> None:
    def safety_alert(alertname: str, severity: str, rule: str, **scope: str) -> dict[str, str]:
        labels = {"alertname": alertname, "severity": severity, "category": "safety"}
        return {**labels, "rule": rule, "source": "safety-stream", **scope}

    crossed = [
        safety_alert("SafetyRuleCrossed", "critical", "r1", modality="any"),
        safety_alert("SafetyBoundaryCrossed", "critical", "r3", trial="T1"),
    ]
    approached = [
        safety_alert("SafetyRuleApproached", "warning", "r1", modality="any"),  # inhibited
        safety_alert("SafetyRuleApproached", "warning", "r2", modality="any"),
        safety_alert("SafetyBoundaryApproached", "warning", "r3", trial="T1"),  # inhibited
        safety_alert("SafetyBoundaryApproached", "warning", "r3", trial="T2"),
    ]
    # the crossings first, and delivered, so the inhibitor knows them before the approaches
    post_alerts(alertmanager.url, *crossed)
    wait_for(
        lambda: (
            notified(hooks, "dsmb", "SafetyRuleCrossed", "r1")
            and notified(hooks, "dsmb", "SafetyBoundaryCrossed", "r3")
        ),
        timeout=30,
        what="the crossings at the dsmb webhook",
    )
    post_alerts(alertmanager.url, *approached)

    def settled() -> dict[tuple[str, str, str], dict[str, Any]]:
        states = alert_states(alertmanager.url)
        return states if len(states) == len(crossed) + len(approached) else {}

    states = wait_for(settled, timeout=30, what="all alerts in Alertmanager")
    assert states[("SafetyRuleApproached", "r1", "any")]["state"] == "suppressed"
    assert states[("SafetyRuleApproached", "r1", "any")]["inhibitedBy"]
    assert states[("SafetyRuleApproached", "r2", "any")]["state"] == "active"
    assert states[("SafetyBoundaryApproached", "r3", "T1")]["state"] == "suppressed"
    assert states[("SafetyBoundaryApproached", "r3", "T2")]["state"] == "active"

    # the uninhibited approaches are delivered; the inhibited ones never are
    def delivered() -> bool:
        approaches = [
            alert
            for request in hooks.received
            if request.path == "/safety-officer"
            for alert in request_alerts(request)
            if alert["labels"]["alertname"] in ("SafetyRuleApproached", "SafetyBoundaryApproached")
        ]
        keys = {(a["labels"]["rule"], a["labels"].get("trial", "")) for a in approaches}
        return {("r2", ""), ("r3", "T2")} <= keys

    wait_for(delivered, timeout=30, what="the uninhibited approaches at safety-officer")
    # a few group intervals more, for anything that should not arrive
    time.sleep(3)
    inhibited = [
        (request.path, alert["labels"])
        for request in hooks.received
        for alert in request_alerts(request)
        if (alert["labels"]["alertname"], alert["labels"]["rule"], alert["labels"].get("trial"))
        in {("SafetyRuleApproached", "r1", None), ("SafetyBoundaryApproached", "r3", "T1")}
    ]
    assert inhibited == [], "inhibited alerts were delivered"
