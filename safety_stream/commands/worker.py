"""``safety-stream worker``: one Faust worker of the distributed runtime.

Creates the topics if missing, opens the audit store (PostgreSQL in production), and runs the
agents of ``processors.app`` until SIGTERM/SIGINT. Serves /metrics and /healthz on
``--web-port``. Run several against the same Kafka and store: they share the partitions.
"""

from __future__ import annotations

import logging
from pathlib import Path

from safety_stream.kafka.topics import ensure_topics
from safety_stream.runtime import build_runtime
from safety_stream.settings import Settings

log = logging.getLogger("safety_stream.worker")


def run(settings: Settings, web_host: str, web_port: int, data_dir: Path) -> int:
    import faust

    from processors.app import create_app

    if settings.kafka is None:
        print("worker: give --kafka HOST:PORT (or SAFETY_STREAM_KAFKA__BOOTSTRAP)")
        return 2
    created = ensure_topics(settings.kafka)
    if created:
        log.info("created topics %s", ", ".join(created))
    runtime = build_runtime(settings)
    app = create_app(runtime, settings.kafka, web_host, web_port, data_dir).app
    runtime.dispatcher.start()
    log.info(
        "worker for %s plan v%s; store at position %d; metrics on http://%s:%d/metrics",
        runtime.plan.trial.id,
        runtime.plan.version,
        runtime.projector.state.position,
        web_host,
        web_port,
    )
    worker = faust.Worker(app, loglevel="INFO", quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    finally:
        runtime.close()
    return 0
