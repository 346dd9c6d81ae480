"""The topic layout of the distributed runtime, created idempotently at start-up.

| topic (prefix ``safety-stream``) | key | partitions | what |
| --- | --- | --- | --- |
| ``.submissions`` | trial id | many | raw records as posted (one JSON event per message) |
| ``.events`` | patient id | many | accepted events in log order, with their log position |
| ``.rejected`` | site id | 1 | dead letters: the raw record, where from, every problem |
| ``.appended`` | trial id | 1 | "the audit log reached position N": wakes the monitor |
| ``.derived`` | rule id | 1 | boundary crossings, sentinels, report clocks |
| ``.alerts`` | rule id | 1 | alerts as planned, with their routed channels |

Submissions are keyed by trial: the stopping rules are a function of a trial's order of events,
and Kafka orders only within a partition. The monitor reads the audit store's global order, so
it runs once per store (single-partition topics); several workers share the submission
partitions and stand by for the monitor's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from safety_stream.kafka.config import KafkaSettings

log = logging.getLogger("safety_stream.kafka")

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


@dataclass(frozen=True)
class Topics:
    submissions: str
    events: str
    rejected: str
    appended: str
    derived: str
    alerts: str

    @classmethod
    def of(cls, settings: KafkaSettings) -> Topics:
        prefix = settings.topic_prefix
        return cls(
            *(
                f"{prefix}.{n}"
                for n in ("submissions", "events", "rejected", "appended", "derived", "alerts")
            )
        )


def topic_specs(settings: KafkaSettings) -> list[TopicSpec]:
    """Every topic with its partitions and retention (the audit store keeps everything)."""
    topics = Topics.of(settings)
    keep = {"retention.ms": str(30 * DAY_MS), "min.insync.replicas": "1"}
    if settings.replication >= 3:
        keep["min.insync.replicas"] = "2"
    return [
        TopicSpec(topics.submissions, settings.submission_partitions, keep),
        TopicSpec(topics.events, settings.event_partitions, keep),
        TopicSpec(topics.rejected, 1, keep),
        TopicSpec(topics.appended, 1, keep | {"retention.ms": str(DAY_MS)}),
        TopicSpec(topics.derived, 1, keep | {"retention.ms": "-1"}),
        TopicSpec(topics.alerts, 1, keep | {"retention.ms": "-1"}),
    ]


def ensure_topics(settings: KafkaSettings) -> list[str]:
    """Create the missing topics; returns the names created. Existing topics are checked:
    fewer partitions than configured is reported, never changed behind the operator's back."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(client_id="safety-stream-admin", **settings.client_options())
    try:
        existing = set(admin.list_topics())
        created = []
        for spec in topic_specs(settings):
            if spec.name in existing:
                continue
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            spec.name,
                            num_partitions=spec.partitions,
                            replication_factor=settings.replication,
                            topic_configs=spec.config,
                        )
                    ]
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:  # another worker created it meanwhile
                pass
        # only the topics that were there: a topic just created can be described with no
        # partitions yet (the broker's metadata lags its creation)
        found = [s for s in topic_specs(settings) if s.name in existing]
        described = admin.describe_topics([s.name for s in found]) if found else []
        counts = {d["name"]: len(d["partitions"]) for d in described}
        for spec in found:
            if counts.get(spec.name, spec.partitions) < spec.partitions:
                log.warning(
                    "topic %s has %d partitions, %d configured (add them with kafka-topics)",
                    spec.name,
                    counts[spec.name],
                    spec.partitions,
                )
        return created
    finally:
        admin.close()
