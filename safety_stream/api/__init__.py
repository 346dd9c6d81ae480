"""The HTTP API of the embedded runtime."""
