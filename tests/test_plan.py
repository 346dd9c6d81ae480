"""Monitoring plans: the shipped SPARKLE-L plan loads, and bad plans say exactly what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import REPO

from safety_stream.cli import main
from safety_stream.errors import PlanError
from safety_stream.plan import BayesianRule, PocockRule, load_plan, parse_plan

PLAN = REPO / "deploy" / "plans" / "sparkle-l.yaml"


def plan_text(**overrides: object) -> str:
    document = yaml.safe_load(PLAN.read_text())
    document.update(overrides)
    return yaml.safe_dump(document)


def test_the_sparkle_l_plan_has_the_rules_the_protocol_needs() -> None:
    plan = load_plan(PLAN)
    assert plan.trial.registration == "NCT06794086"
    kinds = {rule.id: rule.kind for rule in plan.rules}
    assert kinds == {
        "overall-related-g3": "bayesian",
        "radiotherapy-related-g3": "bayesian",
        "chemotherapy-related-g3": "pocock",
        "immunotherapy-related-g3": "bayesian",
        "rild": "pocock",
        "treatment-related-death": "sentinel",
        "immune-hepatitis-g4": "sentinel",
        "hys-law": "lab_sentinel",
        "immune-hepatitis-g3-lab": "lab_sentinel",
        "expedited-reports": "expedited_report",
    }
    thresholds = [r for r in plan.rules if isinstance(r, BayesianRule | PocockRule)]
    assert all(rule.illustrative for rule in thresholds), "placeholder thresholds must say so"
    assert plan.windows["post_sbrt_90d"].days == 90
    assert "rild" in plan.composites


def test_plan_version_is_a_content_hash() -> None:
    text = PLAN.read_text()
    first = parse_plan(text)
    assert parse_plan(text + "\n# a comment changes nothing\n").version == first.version
    changed = parse_plan(text.replace("theta: 0.10", "theta: 0.12"))
    assert changed.version != first.version
    assert len(first.version) == 12


def problems_of(text: str) -> list[str]:
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "plan.yaml")
    return caught.value.problems


def test_misspelt_terms_and_unknown_names_are_listed_together() -> None:
    document = yaml.safe_load(PLAN.read_text())
    document["rules"][6]["match"]["terms"][0] = "Alanine aminotransferase increase"
    document["rules"][0]["population"]["window"] = "on_study_6_month"
    document["rules"][4]["counts"]["composites"] = ["rild", "vod"]
    document["rules"][1]["counts"]["socs"] = ["Liver disorders"]
    document["rules"][2]["id"] = "overall-related-g3"
    problems = problems_of(yaml.safe_dump(document))
    assert problems == [
        "(plan): rule id 'overall-related-g3' is used more than once; "
        "rule 'overall-related-g3': unknown window 'on_study_6_month'; "
        "rule 'radiotherapy-related-g3': 'Liver disorders' is not a CTCAE v5.0 system organ "
        "class; rule 'rild': unknown composite 'vod'; rule 'immune-hepatitis-g4': "
        "'Alanine aminotransferase increase' is not a CTCAE v5.0 term "
        "(did you mean 'Alanine aminotransferase increased'?)"
    ]


def test_field_errors_name_their_location() -> None:
    document = yaml.safe_load(PLAN.read_text())
    document["rules"][0]["theta"] = 1.5
    document["rules"][2]["p1"] = 0.3
    problems = problems_of(yaml.safe_dump(document))
    assert "rules.0.bayesian.theta: Input should be less than 1" in problems
    assert "rules.2.pocock: p1 (0.3) must be above p0 (0.45)" in problems


def test_yaml_syntax_errors_are_reported() -> None:
    assert problems_of("rules: [unclosed")[0].startswith("not valid YAML")


def test_plan_check_lists_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "check", str(PLAN)]) == 0
    out = capsys.readouterr().out
    for rule in load_plan(PLAN).rules:
        assert rule.id in out
    assert "[ILLUSTRATIVE thresholds]" in out


def test_plan_check_fails_on_a_bad_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(plan_text(plan_format=2))
    assert main(["plan", "check", str(bad)]) == 2  # bad input
    err = capsys.readouterr().err
    prefix = f"safety-stream plan check: {bad}: invalid monitoring plan: "
    assert err == prefix + "plan_format: Input should be 1\n"


def test_a_bayesian_prior_that_alone_would_stop_is_refused() -> None:
    document = yaml.safe_load(PLAN.read_text())
    rule = document["rules"][1]
    rule.update(prior=[1, 1], theta=0.10, cutoff=0.80, min_n=1)  # P(p > 0.1 | 0 of 1) = 0.81
    (problem,) = problems_of(yaml.safe_dump(document))
    assert problem.startswith("rules.1.bayesian: with no counted patient among 1, P(p > 0.1)")
    assert "0.810 > cutoff 0.8" in problem
    rule["min_n"] = 2  # P(p > 0.1 | 0 of 2) = 0.729: fine
    assert parse_plan(yaml.safe_dump(document)).rules[1].id == "radiotherapy-related-g3"


def test_a_rule_that_can_never_stop_is_refused() -> None:
    document = yaml.safe_load(PLAN.read_text())
    document["rules"][0].update(theta=0.95, cutoff=0.99, min_n=1, max_n=10)  # 10 of 10: not enough
    (problem,) = problems_of(yaml.safe_dump(document))
    assert "the rule can never stop" in problem
    document = yaml.safe_load(PLAN.read_text())
    document["rules"][2].update(alpha=0.001, max_n=3, p0=0.5)  # no boundary fits alpha
    (problem,) = problems_of(yaml.safe_dump(document))
    assert "the rule can never stop" in problem


def test_plan_check_warns_of_low_power_and_an_expected_rate_above_the_unacceptable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = yaml.safe_load(PLAN.read_text())
    overall = document["rules"][0]
    overall.update(theta=0.5, cutoff=0.9, prior=[1, 1], min_n=5, expected_rate=0.6)
    del overall["unacceptable_rate"]  # then theta is the unacceptable rate
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(document))
    assert main(["plan", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "WARNING: the expected rate 0.60 is not below the unacceptable rate 0.50" in out
    assert "WARNING: P(stop) at the unacceptable rate 0.50 is only 0.326 (< 0.5)" in out
    overall.update(theta=0.5, cutoff=0.6, expected_rate=0.3)  # a sensitive rule: no warning
    path.write_text(yaml.safe_dump(document))
    assert main(["plan", "check", str(path)]) == 0
    out = capsys.readouterr().out.split("radiotherapy-related-g3")[0]
    assert "WARNING" not in out
