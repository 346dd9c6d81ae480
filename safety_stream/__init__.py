"""safety-stream: an event-sourced adverse-event and safety-monitoring pipeline.

The domain core (``events``, ``ctcae``, ``validation``, ``plan``) is pure: it imports the
standard library and pydantic only. Adapters (storage, HTTP, Kafka, metrics) wrap it.
"""

__version__ = "0.1.0"
