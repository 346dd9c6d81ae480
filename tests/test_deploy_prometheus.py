"""deploy/prometheus: the scrape config and the alerting rules, checked and tested by promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO
from realservers import PROMTOOL, require_binary

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "rules" / "safety-stream.yml"
RULE_TESTS = PROMETHEUS_DIR / "tests" / "safety-stream-rules.test.yml"

EXPECTED_ALERTS = {
    "SafetyRuleCrossed": ("critical", "safety"),
    "SafetyRuleApproached": ("warning", "safety"),
    "SafetySentinelRaised": ("critical", "safety"),
    "SafetyReportOverdue": ("critical", "safety"),
    "SafetyReportPastDue": ("critical", "safety"),
    "SafetyPipelineStalled": ("critical", "pipeline"),
    "SafetyEventsQuarantined": ("critical", "integrity"),
    "SafetyIngestRejectingTooMuch": ("warning", "pipeline"),
    "SafetyAlertDeliveryFailing": ("warning", "pipeline"),
    "SafetyStreamDown": ("critical", "pipeline"),
}


def run_tool(*argv: str) -> str:
    """Run a command from the repository root; fail the test with its output unless it exits 0."""
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{output}"
    return output


def alerting_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_binary(PROMTOOL)


def test_config_is_valid_and_loads_the_rule_files(promtool: str, tmp_path: Path) -> None:
    # check config also checks every rule file that rule_files matches, relative to the config,
    # and that the token file exists: the operator writes it beside the config
    deployed = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS_DIR, deployed)
    (deployed / "metrics.token").write_text("a-metrics-token-of-some-length\n")
    output = run_tool(promtool, "check", "config", str(deployed / "prometheus.yml"))
    assert "1 rule files found" in output
    assert "safety-stream.yml" in output


def test_config_scrapes_the_runtime_and_alerts_to_alertmanager() -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert config["global"] == {"scrape_interval": "15s", "evaluation_interval": "15s"}
    assert config["rule_files"] == ["rules/*.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "safety-stream"
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8080"]}]
    # /metrics takes a bearer token (SAFETY_STREAM_METRICS_TOKEN on the server side)
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "metrics.token"}
    (alertmanager,) = config["alerting"]["alertmanagers"]
    assert alertmanager["static_configs"] == [{"targets": ["127.0.0.1:9093"]}]


def test_rules_are_valid(promtool: str) -> None:
    output = run_tool(promtool, "check", "rules", str(RULES.relative_to(REPO)))
    assert f"{len(EXPECTED_ALERTS)} rules found" in output


def test_rule_unit_tests_pass(promtool: str) -> None:
    output = run_tool(promtool, "test", "rules", str(RULE_TESTS.relative_to(REPO)))
    assert "SUCCESS" in output


def test_every_alert_has_its_severity_category_and_annotations() -> None:
    rules = alerting_rules()
    assert {
        rule["alert"]: (rule["labels"]["severity"], rule["labels"]["category"]) for rule in rules
    } == EXPECTED_ALERTS
    for rule in rules:
        assert set(rule["annotations"]) == {"summary", "description"}, rule["alert"]
        assert set(rule["labels"]) == {"severity", "category"}, rule["alert"]


def test_templates_use_only_aggregate_labels() -> None:
    # no metric carries a patient, AE or site identifier; templates must not reach for one
    # either, nor run their own queries
    allowed = {"rule", "modality", "kind", "channel", "instance", "job"}
    for rule in alerting_rules():
        for text in rule["annotations"].values():
            used = set(re.findall(r"\$labels\.(\w+)", text))
            assert used <= allowed, (rule["alert"], used - allowed)
            assert not re.search(r"\{\{[^}]*\bquery\b", text), rule["alert"]


def test_unit_tests_cover_every_alert_firing_and_not_firing() -> None:
    document = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    assert [str((RULE_TESTS.parent / path).resolve()) for path in document["rule_files"]] == [
        str(RULES.resolve())
    ]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in document["tests"]:
        for check in case.get("alert_rule_test", []):
            expected = check.get("exp_alerts") or []
            (firing if expected else quiet).add(check["alertname"])
            for alert in expected:
                assert {"summary", "description"} <= set(alert["exp_annotations"]), check
                assert alert["exp_labels"]["severity"] == EXPECTED_ALERTS[check["alertname"]][0]
    assert firing == set(EXPECTED_ALERTS), "alerts without a firing case"
    assert quiet == set(EXPECTED_ALERTS), "alerts without a non-firing case"


def test_rule_alerts_keep_the_labels_of_their_series() -> None:
    # as safety_stream.metrics_state labels them: stopping rules by rule, modality and kind;
    # sentinels by rule
    kept = {
        "SafetyRuleCrossed": {"rule", "modality", "kind"},
        "SafetyRuleApproached": {"rule", "modality", "kind"},
        "SafetySentinelRaised": {"rule"},
    }
    document = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    seen = set()
    for case in document["tests"]:
        for check in case.get("alert_rule_test", []):
            for alert in check.get("exp_alerts") or []:
                if check["alertname"] in kept:
                    assert kept[check["alertname"]] <= set(alert["exp_labels"]), check
                    seen.add(check["alertname"])
    assert seen == set(kept)
