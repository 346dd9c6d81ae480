"""``safety-stream serve``: the embedded runtime (API + store + projections) in one process."""

from __future__ import annotations

import logging

import uvicorn

from safety_stream.api.app import create_app
from safety_stream.runtime import build_runtime
from safety_stream.settings import Settings

log = logging.getLogger("safety_stream.serve")


def run(settings: Settings) -> int:
    runtime = build_runtime(settings)
    app = create_app(runtime)
    log.info(
        "serving on http://%s:%s (plan %s v%s)",
        settings.host,
        settings.port,
        runtime.plan.trial.id,
        runtime.plan.version,
    )
    runtime.dispatcher.start()
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False)
    finally:
        runtime.close()
    return 0
