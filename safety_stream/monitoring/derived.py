"""Moved to :mod:`safety_stream.events.derived` (projections and the store need it, and neither
may import the monitor). This re-export stays while work in flight (issue 18) still imports the
old path; new code imports ``safety_stream.events.derived``."""

from safety_stream.events.derived import (
    DERIVED_JSON,
    NAMESPACE,
    SEVERITY,
    DerivedEvent,
    DerivedKind,
    Severity,
    derive,
)

__all__ = [
    "DERIVED_JSON",
    "NAMESPACE",
    "SEVERITY",
    "DerivedEvent",
    "DerivedKind",
    "Severity",
    "derive",
]
