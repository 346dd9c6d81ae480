"""The project's errors. Each carries what a user needs to fix the cause.

SafetyStreamError
 +-- PlanError            a monitoring plan failed validation (every problem listed)
"""

from __future__ import annotations


class SafetyStreamError(Exception):
    """Base of every error safety-stream raises on purpose."""


class PlanError(SafetyStreamError):
    """A monitoring plan is not valid; ``problems`` lists each with its location in the file."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid monitoring plan:\n  " + "\n  ".join(problems))
