"""The application layer: what the entry points (API, board, metrics, workers) call.

``reads``: a consistent, role-scoped read of the trial (one place decides what a principal
may see); ``read_models``: one read model per concept the API, board and report render (an AE,
a dead letter); ``submissions``: how a submission is handled, chosen once at start-up (embedded:
ingest and project here; distributed: onto the Kafka submissions topic).
"""
