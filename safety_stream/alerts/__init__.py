"""DSMB alerts: routing, rendering, the transactional outbox and the delivery channels."""
