"""The command line's one error policy.

Every error a user can cause is one line on stderr, ``safety-stream COMMAND: what is wrong
(what to do)``, with exit status 2 for bad usage or input and 1 when a check failed or a
server could not be used. A traceback is shown only with ``--debug`` (or
``SAFETY_STREAM_DEBUG=1``); an unexpected error says so and asks for one. A pipe closed
early (``... | head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

from safety_stream.errors import SafetyStreamError

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left
EXIT_INTERRUPTED = 130


class CliParser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (the usage itself is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def run_reporting_errors(command: Callable[[], int], prog: str, debug: bool) -> int:
    """Run ``command``; turn what it raises into the policy above."""
    try:
        status = command()
        sys.stdout.flush()  # a closed pipe shows up here for buffered output
        return status
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # every error ends here: the user sees one line, not a traceback
        if debug:
            traceback.print_exc()
        message, status = describe(error)
        if not debug and status == EXIT_FAILED and not _expected(error):
            message += " (an unexpected error: rerun with --debug and report the traceback)"
        with contextlib.suppress(BrokenPipeError):
            print(f"{prog}: {message}", file=sys.stderr)
        return status


def describe(error: Exception) -> tuple[str, int]:
    """One line saying what went wrong, and the exit status it deserves."""
    from pydantic import ValidationError

    if isinstance(error, SafetyStreamError):
        return _one_line(str(error)), error.exit_code
    if isinstance(error, ValidationError):  # settings from SAFETY_STREAM_* variables
        details = "; ".join(
            f"{'.'.join(str(p) for p in d['loc']) or 'value'}: {d['msg']}"
            for d in error.errors(include_url=False)
        )
        return f"invalid setting: {details}", EXIT_USAGE
    if isinstance(error, ModuleNotFoundError) and _extra_of(error.name) is not None:
        extra = _extra_of(error.name)
        return (
            f"this command needs the optional {extra} support ({error.name} is not installed): "
            f"pip install 'safety-stream[{extra}]'",
            EXIT_USAGE,
        )
    if isinstance(error, FileNotFoundError | IsADirectoryError | NotADirectoryError):
        return f"{error.filename}: {error.strerror}", EXIT_USAGE
    if isinstance(error, PermissionError):
        return f"{error.filename}: {error.strerror}", EXIT_USAGE
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or error}", EXIT_FAILED
    if isinstance(error, UnicodeDecodeError):
        return f"input is not {error.encoding} text: {error.reason}", EXIT_USAGE
    return f"{type(error).__name__}: {_one_line(str(error))}", EXIT_FAILED


# top-level modules of the optional extras (pyproject.toml) -> the extra that installs them
EXTRAS = {
    "faust": "kafka",
    "kafka": "kafka",
    "aiokafka": "kafka",
    "psycopg": "postgres",
    "grafana_client": "grafana",
    "grafana_foundation_sdk": "grafana",
    "pyreadstat": "export",
    "pandas": "export",
}


def _extra_of(module: str | None) -> str | None:
    return EXTRAS.get((module or "").split(".")[0])


def _expected(error: Exception) -> bool:
    return isinstance(error, SafetyStreamError | OSError)


def _one_line(text: str) -> str:
    """Several lines as one: "head:\n  a\n  b" becomes "head: a; b"."""
    out = ""
    for line in (line.strip() for line in text.strip().splitlines()):
        if line:
            out += line if not out else (" " if out.endswith(":") else "; ") + line
    return out


def _silence_stdout() -> None:
    """Python would complain about the closed pipe again when flushing at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
