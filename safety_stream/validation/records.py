"""Reading raw records out of NDJSON, JSON and CSV input, never trusting the bytes.

Readers yield one ``RawRecord`` per record with its location (line, item or row). A record the
reader cannot even split out (over-long line, invalid UTF-8, truncated JSON) is yielded with
its problem instead of raising, so one bad record never hides the rest of the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import IO, Any

from safety_stream.validation.codes import ProblemCode
from safety_stream.validation.problems import Problem

MAX_RECORD_BYTES = 1 << 20
"""Largest single record accepted (1 MiB); real events are well under 4 KiB."""

MAX_DOCUMENT_BYTES = 256 << 20
"""Largest JSON document (array) read whole; larger exports should use NDJSON."""


class InputFormat(StrEnum):
    NDJSON = "ndjson"
    JSON = "json"
    CSV = "csv"


@dataclass(slots=True)
class RawRecord:
    """One record as read: raw JSON bytes, or an already-split value, or read problems."""

    location: str
    raw: bytes
    value: Any = None
    problems: list[Problem] | None = None
    parsed: bool = False  # value holds a decoded JSON value / CSV mapping


def _too_long(location: str, size: int) -> RawRecord:
    return RawRecord(
        location,
        b"",
        problems=[
            Problem(
                path="",
                message=f"record is longer than {MAX_RECORD_BYTES} bytes ({size}+ bytes)",
                code=ProblemCode.INPUT_RECORD_TOO_LARGE,
                allowed=f"records up to {MAX_RECORD_BYTES} bytes",
            )
        ],
    )


def read_ndjson(stream: IO[bytes], block_size: int = 1 << 20) -> Iterator[RawRecord]:
    """One JSON object per line; blank lines are skipped; memory stays bounded per line.

    Reads in blocks and splits them, which is several times faster than ``readline``.
    """
    number = 0
    pending = b""
    discarding = 0  # > 0 while skipping the rest of an over-long line (its size so far)
    while True:
        block = stream.read(block_size)
        if not block:
            break
        lines = (pending + block).split(b"\n") if pending else block.split(b"\n")
        pending = lines.pop()
        for line in lines:
            number += 1
            if discarding:
                yield _too_long(f"line {number}", discarding + len(line))
                discarding = 0
            elif len(line) > MAX_RECORD_BYTES:
                yield _too_long(f"line {number}", len(line))
            elif line and not line.isspace():
                yield RawRecord(f"line {number}", line)
        if discarding or len(pending) > MAX_RECORD_BYTES:
            discarding += len(pending)
            pending = b""
    if discarding:
        yield _too_long(f"line {number + 1}", discarding)
    elif pending and not pending.isspace():
        yield RawRecord(f"line {number + 1}", pending)


def decode_text(
    data: bytes, where: str, encoding: str | None = None, hint: str = ""
) -> tuple[str, Problem | None]:
    """``data`` as text: UTF-8 (with or without a byte-order mark) unless ``encoding`` is named;
    ``hint`` is added to the message when undecodable bytes look like another 8-bit encoding."""
    codec = encoding or "utf-8-sig"
    try:
        return data.decode(codec), None
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        byte = data[error.start]
        named = encoding or "UTF-8"
        suffix = hint if encoding is None and byte >= 0x80 else ""
        problem = Problem(
            path="",
            message=f"{where} is not valid {named}: byte 0x{byte:02x} on line {line}{suffix}",
            code=ProblemCode.INPUT_ENCODING,
            allowed="UTF-8 text" + (", or the text's real encoding named" if hint else ""),
        )
        return data.decode(codec, errors="replace"), problem


def known_encoding(name: str) -> str:
    """``name`` if Python knows the codec, else ValueError naming some that are known."""
    import codecs

    try:
        return codecs.lookup(name).name
    except LookupError:
        raise ValueError(
            f"unknown encoding {name!r} (e.g. utf-8, cp1252, latin-1, utf-16)"
        ) from None


def read_json_document(stream: IO[bytes]) -> Iterator[RawRecord]:
    """A JSON array of objects, one object, or several concatenated objects.

    Elements are decoded one at a time, so the elements before a truncation or syntax error
    are still checked; the error itself is reported with its line and column.
    """
    data = stream.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        yield RawRecord(
            "document",
            b"",
            problems=[
                Problem(
                    path="",
                    message=f"JSON document is larger than {MAX_DOCUMENT_BYTES} bytes",
                    code=ProblemCode.INPUT_DOCUMENT_TOO_LARGE,
                    allowed="a smaller document, or NDJSON (one event per line) for large files",
                )
            ],
        )
        return
    text, encoding_problem = decode_text(data, "the document")
    if encoding_problem:
        yield RawRecord("document", data[:200], problems=[encoding_problem])
        return
    decoder = json.JSONDecoder()
    position = _skip_ws(text, 0)
    in_array = position < len(text) and text[position] == "["
    if in_array:
        position = _skip_ws(text, position + 1)
    index, line, counted_to = 0, 1, 0
    while position < len(text):
        if in_array and text[position] == "]":
            return
        line += text.count("\n", counted_to, position)  # incremental: O(n) over the document
        counted_to = position
        location = f"item {index} (line {line})" if in_array else f"line {line}"
        try:
            value, end = decoder.raw_decode(text, position)
        except (RecursionError, ValueError) as error:
            if not isinstance(error, json.JSONDecodeError):  # nesting or a number too large
                yield RawRecord(location, text[position : position + 200].encode(),
                                problems=[_unreadable(error)])  # fmt: skip
                return
            yield RawRecord(
                location,
                text[position : position + 200].encode(),
                problems=[
                    Problem(
                        path="",
                        message=f"invalid JSON at line {error.lineno} column {error.colno}: "
                        f"{error.msg}",
                        code=ProblemCode.INPUT_JSON_INVALID,
                        allowed="a complete JSON object per event",
                    )
                ],
            )
            return
        yield RawRecord(location, text[position:end].encode(), value=value, parsed=True)
        index += 1
        position = _skip_ws(text, end)
        if in_array and position < len(text) and text[position] == ",":
            position = _skip_ws(text, position + 1)
    if in_array:
        line = text.count("\n") + 1
        yield RawRecord(
            "document",
            b"",
            problems=[
                Problem(
                    path="",
                    message=f"JSON array is not closed (input ends at line {line})",
                    code=ProblemCode.INPUT_JSON_TRUNCATED,
                    allowed="a complete JSON array ending with ']'",
                )
            ],
        )


def _unreadable(error: RecursionError | ValueError) -> Problem:
    """Input JSON cannot express an event with: nesting thousands deep, numbers thousands of
    digits long (Python's int conversion limit)."""
    if isinstance(error, RecursionError):
        return Problem(
            path="",
            message="JSON nested too deeply to read",
            code=ProblemCode.INPUT_JSON_TOO_DEEP,
            allowed="an event object (events nest a few levels deep)",
        )
    return Problem(
        path="",
        message="JSON number too long to read",
        code=ProblemCode.INPUT_NUMBER_TOO_LONG,
        allowed="numbers of at most a few digits, as events have",
    )


def _skip_ws(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def sniff_format(head: bytes, name: str | None) -> InputFormat:
    """By file suffix first, else by the first non-blank byte."""
    lowered = (name or "").lower()
    if lowered.endswith((".ndjson", ".jsonl")):
        return InputFormat.NDJSON
    if lowered.endswith(".json"):
        return InputFormat.JSON
    if lowered.endswith(".csv"):
        return InputFormat.CSV
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"["):
        return InputFormat.JSON
    if stripped.startswith(b"{"):
        first_line = stripped.split(b"\n", 1)[0]
        try:
            json.loads(first_line)
        except ValueError:
            return InputFormat.JSON  # a pretty-printed object spans lines
        return InputFormat.NDJSON
    return InputFormat.CSV
