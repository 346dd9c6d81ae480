"""Rule evaluation cost per event with 20 rules active.

    python benchmarks/monitor_cost.py [--events 100000]

Folds the same synthetic events twice in one process: once into the projection only
(baseline), once into the projection with the monitor observing every event under a plan of
20 rules (the 8 SPARKLE-L rules plus 12 more counting rules over other windows and modalities).
Prints events/s for both, the monitor's own cost per event and the ratio.
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

import yaml

from safety_stream.events import decode_object
from safety_stream.monitoring.monitor import Monitor
from safety_stream.plan import MonitoringPlan, parse_plan
from safety_stream.projections.state import TrialState, apply
from safety_stream.runtime import default_plan
from safety_stream.synthetic import make_events


def twenty_rule_plan() -> MonitoringPlan:
    document: dict[str, Any] = default_plan().model_dump(mode="json")
    windows = list(document["windows"])
    extra = []
    for index in range(12):
        modality = ["radiotherapy", "chemotherapy", "immunotherapy"][index % 3]
        rule: dict[str, Any] = {
            "id": f"extra-{index}",
            "title": f"extra rule {index}",
            "illustrative": True,
            "population": {"exposed_to": modality, "window": windows[index % len(windows)]},
            "counts": {"min_grade": 2 + index % 3, "related_to": [modality]},
            "max_n": 200,
        }
        if index % 2:
            rule |= {"kind": "pocock", "p0": 0.2, "p1": 0.4, "alpha": 0.1}
        else:
            rule |= {"kind": "bayesian", "prior": [1, 1], "theta": 0.3, "cutoff": 0.9}
        extra.append(rule)
    document["rules"] += extra
    plan = parse_plan(yaml.safe_dump(document))
    assert len(plan.rules) == 20
    return plan


def fold(events: list[Any], monitor: Monitor | None) -> tuple[float, int]:
    state = TrialState()
    gc.collect()
    started = time.perf_counter()
    derived = 0
    for position, event in enumerate(events, start=1):
        apply(state, event, position)
        if monitor is not None:
            derived += len(monitor.observe(state, event, position))
    return time.perf_counter() - started, derived


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    events = [decode_object(e) for e in make_events(args.events)]
    plan = twenty_rule_plan()
    Monitor(plan)  # boundary tables are computed once per plan, outside the timing
    gc.freeze()
    base, _ = fold(events, None)
    with_monitor, derived = fold(events, Monitor(plan))
    per_event = (with_monitor - base) / len(events) * 1e6
    print(f"{len(events):,} events, plan of {len(plan.rules)} rules, {derived:,} derived events")
    print(f"{'projection only (baseline)':<32} {len(events) / base:>10,.0f} events/s  ratio 1.00")
    print(f"{'projection + monitor':<32} {len(events) / with_monitor:>10,.0f} events/s  ratio "
          f"{base / with_monitor:.2f}")  # fmt: skip
    print(f"monitor cost: {per_event:.1f} us per event ({per_event / len(plan.rules):.2f} us per "
          f"rule per event)")  # fmt: skip


if __name__ == "__main__":
    main()
