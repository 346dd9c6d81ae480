"""``safety-stream serve``: the embedded runtime (API + store + projections) in one process."""

from __future__ import annotations

import logging

import uvicorn

from safety_stream.api.app import create_app
from safety_stream.kafka.topics import ensure_topics
from safety_stream.runtime import build_distributed_api, build_runtime
from safety_stream.settings import Settings

log = logging.getLogger("safety_stream.serve")


def run(settings: Settings) -> int:
    if settings.kafka is not None:  # distributed: workers store, monitor and alert
        ensure_topics(settings.kafka)
        runtime = build_distributed_api(settings)
    else:
        runtime = build_runtime(settings)
    app = create_app(runtime)
    log.info(
        "serving on http://%s:%s (plan %s v%s)",
        settings.host,
        settings.port,
        runtime.plan.trial.id,
        runtime.plan.version,
    )
    if runtime.producer is None:
        runtime.dispatcher.start()
    try:
        # the board's live streams would hold a graceful shutdown open: give them 5 s
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="info",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        runtime.close()
    return 0
