"""The application layer: what the entry points (API, board, metrics, workers) call.

``reads``: a consistent, role-scoped read of the trial (one place decides what a principal
may see); ``submissions``: how a submission is handled, chosen once at start-up (embedded:
ingest and project here; distributed: onto the Kafka submissions topic).
"""
