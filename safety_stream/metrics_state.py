"""Gauges of the trial's state, computed at scrape time from the projection and the monitor.

A custom collector takes one trial-wide read snapshot per scrape (the application's reads:
the projector's lock once), so the numbers on a dashboard are always those of one consistent
position. Labels are modality, grade, site,
window, rule, kind and state: small closed sets from the plan and the CTCAE, never a patient.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from safety_stream.application.reads import EVERYTHING, Reads, ReadSnapshot
from safety_stream.events import ATTRIBUTION_RANK, Attribution, Modality
from safety_stream.monitoring.status import RuleStatus
from safety_stream.plan import Population
from safety_stream.projections.toxicity import modality_table

STATE_VALUES = {"ok": 0, "approached": 1, "crossed": 2, "beyond_planned_n": 3}
NAN = float("nan")


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


class SafetyStateCollector(Collector):
    def __init__(
        self,
        reads: Reads,
        alert_counts: Callable[[], dict[tuple[str, str], int]] | None = None,
    ) -> None:
        self.reads = reads
        self.alert_counts = alert_counts

    def collect(self) -> Iterator[Any]:
        head = self.reads.log_head()
        snapshot = self.reads.snapshot(EVERYTHING)
        yield from self._positions(head, snapshot)
        yield from self._toxicity(snapshot)
        yield from self._rules(snapshot)
        if self.alert_counts is not None:
            yield from self._alerts(self.alert_counts())

    def _positions(self, head: int, snapshot: ReadSnapshot) -> Iterator[GaugeMetricFamily]:
        monitor = snapshot.monitor
        assert snapshot.position is not None and monitor is not None and monitor.clock is not None
        projected = snapshot.position
        for name, text, value in (
            ("safety_stream_log_position", "Position of the last event in the log", head),
            ("safety_stream_projection_position", "Last log position projected", projected),
            (
                "safety_stream_projection_lag_events",
                "Events committed to the log but not yet projected and monitored",
                max(0, head - projected),
            ),
            (
                "safety_stream_quarantined_events",
                "Stored events the fold could not process (monitoring went on without them)",
                len(monitor.quarantined),
            ),
            (
                "safety_stream_monitor_clock_timestamp_seconds",
                "The monitoring clock: the latest recorded_at the log has reached",
                monitor.clock.timestamp(),
            ),
        ):
            gauge = _gauge(name, text, [])
            gauge.add_metric([], value)
            yield gauge

    def _toxicity(self, snapshot: ReadSnapshot) -> Iterator[GaugeMetricFamily]:
        state = snapshot.trial_state()
        plan = snapshot.plan
        assert snapshot.monitor is not None and snapshot.monitor.clock is not None
        clock = snapshot.monitor.clock
        threshold = ATTRIBUTION_RANK[plan.related_means_at_least]
        aes = _gauge(
            "safety_stream_adverse_events",
            "Current (not retracted) AEs related to a modality, by current grade and site",
            ["modality", "grade", "site"],
        )
        exposed = _gauge("safety_stream_patients_exposed", "Patients exposed", ["modality"])
        evaluable = _gauge(
            "safety_stream_patients_evaluable",
            "Patients evaluable for a follow-up window of the plan",
            ["modality", "window"],
        )
        severe = _gauge(
            "safety_stream_patients_related_grade3",
            "Exposed patients with a related grade >= 3 AE",
            ["modality"],
        )
        rate = _gauge(
            "safety_stream_related_grade3_rate",
            "Share of exposed patients with a related grade >= 3 AE",
            ["modality"],
        )
        low = _gauge(
            "safety_stream_related_grade3_rate_ci95_low", "Clopper-Pearson 95% lower", ["modality"]
        )
        high = _gauge(
            "safety_stream_related_grade3_rate_ci95_high", "Clopper-Pearson 95% upper", ["modality"]
        )
        site_exposed = _gauge(
            "safety_stream_site_patients_exposed",
            "Patients exposed, per site",
            ["modality", "site"],
        )
        site_severe = _gauge(
            "safety_stream_site_patients_related_grade3",
            "Exposed patients with a related grade >= 3 AE, per site",
            ["modality", "site"],
        )
        for modality in Modality:
            counts: Counter[tuple[str, str]] = Counter(
                (str(ae.worst), ae.site_id)
                for ae in state.aes.values()
                if ae.status != "retracted"
                and ATTRIBUTION_RANK[Attribution(ae.attribution[modality.value])] >= threshold
            )
            for (grade, site), count in sorted(counts.items()):
                aes.add_metric([modality.value, grade, site], count)
            table = modality_table(
                state, modality, clock, plan.related_means_at_least, plan.windows,
            )  # fmt: skip
            label = [modality.value]
            exposed.add_metric(label, table.exposed)
            severe.add_metric(label, table.grade3_or_worse.count)
            share = table.grade3_or_worse.rate
            rate.add_metric(label, NAN if share is None else share)
            low.add_metric(label, table.grade3_or_worse.ci95_low)
            high.add_metric(label, table.grade3_or_worse.ci95_high)
            for row in table.evaluable:
                evaluable.add_metric([modality.value, row.window], row.evaluable)
            for by_site in table.by_site:
                key = [modality.value, by_site.site_id]
                site_exposed.add_metric(key, by_site.exposed)
                site_severe.add_metric(key, by_site.grade3_or_worse.count)
        yield from (aes, exposed, evaluable, severe, rate, low, high, site_exposed, site_severe)

    def _rules(self, snapshot: ReadSnapshot) -> Iterator[GaugeMetricFamily]:
        assert snapshot.monitor is not None
        statuses: Sequence[RuleStatus] = snapshot.monitor.rules
        labels = ["rule", "modality"]
        state = _gauge(
            "safety_stream_rule_state",
            "Rule state: 0 ok, 1 approached (one patient from the boundary), 2 crossed",
            ["rule", "modality", "kind"],
        )
        families = {
            key: _gauge(f"safety_stream_rule_{name}", text, labels)
            for key, name, text in (
                ("x", "counted_patients", "Patients counted by the rule (x)"),
                ("n", "evaluable_patients", "Patients evaluable for the rule (n)"),
                ("boundary", "boundary_patients", "Counted patients that stop at the current n"),
                ("margin", "margin_patients", "Boundary minus counted patients"),
                ("max_n", "max_patients", "Planned maximum n of the rule"),
                (
                    "posterior_probability",
                    "posterior_probability",
                    "Bayesian rules: posterior P(rate > theta)",
                ),
            )
        }
        sentinel = _gauge(
            "safety_stream_sentinel_raised", "AEs that raised each sentinel rule", ["rule"]
        )
        clocks = _gauge(
            "safety_stream_report_clocks", "Expedited-report clocks by state", ["state"]
        )
        next_due = _gauge(
            "safety_stream_report_clock_next_due_timestamp_seconds",
            "Earliest due time of an open expedited-report clock (absent when none is open)",
            [],
        )
        rules = {r.id: r for r in snapshot.plan.rules}
        for status in statuses:
            population: Population | None = getattr(rules[status.rule_id], "population", None)
            modality = str(population.exposed_to) if population is not None else "any"
            state.add_metric([status.rule_id, modality, status.kind], STATE_VALUES[status.status])
            if status.kind == "sentinel":
                sentinel.add_metric([status.rule_id], status.raised or 0)
            elif status.kind == "expedited_report":
                tally = Counter(c.state for c in status.clocks or [])
                for name in ("open", "overdue", "closed"):
                    clocks.add_metric([name], tally[name])
                open_dues = [c.due for c in status.clocks or [] if c.state == "open"]
                if open_dues:
                    next_due.add_metric([], min(open_dues).timestamp())
            else:
                values = status.model_dump()
                for key, family in families.items():
                    value = values[key]
                    family.add_metric(
                        [status.rule_id, modality], NAN if value is None else float(value)
                    )
        yield state
        yield from families.values()
        yield from (sentinel, clocks, next_due)

    def _alerts(self, counts: dict[tuple[str, str], int]) -> Iterator[GaugeMetricFamily]:
        gauge = _gauge(
            "safety_stream_alerts",
            "Alerts raised, by severity and acknowledgement",
            ["severity", "state"],
        )
        for severity in ("critical", "warning", "info"):
            for state in ("unacknowledged", "acknowledged"):
                gauge.add_metric([severity, state], counts.get((severity, state), 0))
        yield gauge
