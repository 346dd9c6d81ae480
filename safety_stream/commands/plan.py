"""``safety-stream plan check PLAN.yaml``: validate a monitoring plan and summarise its rules."""

from __future__ import annotations

import sys
from pathlib import Path

from safety_stream.errors import PlanError
from safety_stream.plan import MonitoringPlan, load_plan


def describe(plan: MonitoringPlan) -> list[str]:
    lines = [
        f"plan for {plan.trial.id} ({plan.trial.registration}), version {plan.version}",
        f"planned enrolment {plan.trial.planned_enrolment}; related = "
        f"{plan.related_means_at_least.value} or stronger",
        "windows: "
        + ", ".join(
            f"{name} ({w.days} d after {w.anchor.replace('_', ' ')}"
            + (f" of {w.modality.value})" if w.modality else ")")
            for name, w in plan.windows.items()
        ),
        "composites: " + ", ".join(plan.composites) if plan.composites else "composites: none",
        f"{len(plan.rules)} rules:",
    ]
    for rule in plan.rules:
        flag = "  [ILLUSTRATIVE thresholds]" if rule.illustrative else ""
        lines.append(f"  {rule.id:<28} {rule.kind:<17} {rule.title}{flag}")
    return lines


def run(path: Path) -> int:
    try:
        plan = load_plan(path)
    except PlanError as error:
        print(error, file=sys.stderr)
        return 1
    except OSError as error:
        print(f"{path}: cannot read: {error.strerror or error}", file=sys.stderr)
        return 2
    print("\n".join(describe(plan)))
    return 0
