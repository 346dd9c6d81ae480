"""Who may read what outside /v1: the operators' endpoints (the API's and the workers')."""

from __future__ import annotations

import hmac

from safety_stream.runtime import Runtime

READER_ROLES = frozenset({"safety_officer", "dsmb", "admin"})


def metrics_refusal(runtime: Runtime, token: str | None) -> tuple[int, str] | None:
    """None when ``token`` may read /metrics (the metrics token, or a reader's), else the
    status and message to refuse with (the API and the workers' web pages share this)."""
    expected = runtime.settings.metrics_token
    if (
        token is not None
        and expected is not None
        and hmac.compare_digest(token.encode(), expected.get_secret_value().encode())
    ):
        return None
    caller = runtime.credentials.authenticate(token) if token else None
    if caller is None:
        return 401, "/metrics needs the metrics token or a reader's bearer token"
    if caller.role not in READER_ROLES:
        return 403, f"role {caller.role} cannot read /metrics"
    return None
