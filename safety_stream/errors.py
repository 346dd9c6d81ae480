"""The project's errors. Each carries what a user needs to fix the cause.

SafetyStreamError         exit status 1 at the command line: a check failed, a server is down
 +-- UsageError           exit status 2: bad usage or input (an option, a path, a file's text)
 +-- PlanError            a monitoring plan failed validation (every problem listed); exit 2
"""

from __future__ import annotations

from pathlib import Path


class SafetyStreamError(Exception):
    """Base of every error safety-stream raises on purpose."""

    exit_code = 1


class UsageError(SafetyStreamError):
    """The user gave something that cannot work: the message says what and how to fix it."""

    exit_code = 2


class PlanError(SafetyStreamError):
    """A monitoring plan is not valid; ``problems`` lists each with its location in the file."""

    exit_code = 2

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid monitoring plan:\n  " + "\n  ".join(problems))


def read_user_text(path: Path, what: str) -> str:
    """A UTF-8 text file the user named (``what``: e.g. "--plan"), or a UsageError saying why
    it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"{what} {path}: {error.strerror or error}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UsageError(
            f"{what} {path} is not UTF-8 text: byte 0x{data[error.start]:02x} on line {line} "
            "(save it as UTF-8)"
        ) from None
