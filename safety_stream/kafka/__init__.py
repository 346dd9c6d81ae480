"""Kafka adapters shared by the API, the site client and the workers: connection settings
(TLS, SASL), the topic layout, and the producer of raw submissions."""
