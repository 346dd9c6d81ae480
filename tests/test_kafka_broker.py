"""The development Kafka broker (deploy/kafka/kafka.sh, jars from Maven Central) serves
kafka-python: topics created, an idempotent acks=all producer, a consumer group reading back."""

from __future__ import annotations

import uuid

from conftest import require_server
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

KAFKA_VARIABLE = "SAFETY_STREAM_TEST_KAFKA"


def test_the_broker_stores_and_serves_keyed_records_in_order_per_key() -> None:
    bootstrap = require_server("Kafka", KAFKA_VARIABLE)
    topic = f"probe-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    sent = [(f"patient-{i % 4}".encode(), f"{i}".encode()) for i in range(40)]
    for key, value in sent:
        producer.send(topic, key=key, value=value)
    producer.flush(timeout=30)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
    )
    received = []
    for record in consumer:
        received.append((record.key, record.value, record.partition))
        if len(received) == len(sent):
            break
    consumer.close()
    assert sorted((k, v) for k, v, _ in received) == sorted(sent)
    by_key: dict[bytes, list[int]] = {}
    partitions: dict[bytes, set[int]] = {}
    for key, value, partition in received:
        by_key.setdefault(key, []).append(int(value))
        partitions.setdefault(key, set()).add(partition)
    assert all(values == sorted(values) for values in by_key.values())  # order kept per key
    assert all(len(p) == 1 for p in partitions.values())  # one partition per key
