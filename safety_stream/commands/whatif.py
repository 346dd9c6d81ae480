"""``safety-stream whatif --plan NEW.yaml``: when alerts would have fired under another plan."""

from __future__ import annotations

import json
from pathlib import Path

from safety_stream.events.derived import DerivedEvent
from safety_stream.monitoring.whatif import alerts_by_rule, derived_under
from safety_stream.plan import load_plan
from safety_stream.runtime import load_plan_or_default
from safety_stream.store.opening import open_store


def _line(item: DerivedEvent) -> str:
    return f"{item.occurred_at:%Y-%m-%d %H:%M} (position {item.caused_by}) {item.kind}"


def run(db: str, new_path: Path, current_path: Path | None, as_json: bool) -> int:
    plans = [load_plan_or_default(current_path), load_plan(new_path)]
    store = open_store(db, create=False)
    try:
        derived = derived_under(store, plans)
    finally:
        store.close()
    labels = ["current", "new"]
    alerts = [alerts_by_rule(found) for found in derived]
    rules = sorted(set(alerts[0]) | set(alerts[1]) | {r.id for p in plans for r in p.rules})
    if as_json:
        document = {
            "plans": {label: plan.version for label, plan in zip(labels, plans, strict=True)},
            "rules": {
                rule: {
                    label: [item.model_dump(mode="json") for item in by_rule.get(rule, [])]
                    for label, by_rule in zip(labels, alerts, strict=True)
                }
                for rule in rules
            },
        }
        print(json.dumps(document, indent=2))
        return 0
    print(f"current plan {plans[0].version}, new plan {plans[1].version} ({new_path})")
    for rule in rules:
        print(f"{rule}:")
        for label, by_rule in zip(labels, alerts, strict=True):
            fired = by_rule.get(rule, [])
            in_plan = any(r.id == rule for r in plans[labels.index(label)].rules)
            if not in_plan:
                print(f"  {label:<8} (no such rule)")
            elif not fired:
                print(f"  {label:<8} never")
            for item in fired:
                print(f"  {label:<8} {_line(item)}: {item.summary}")
    return 0
