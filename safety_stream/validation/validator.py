"""Validate a stream of records end to end: read, parse, check, cross-check.

``validate_records`` yields one ``RecordResult`` per event (a CSV row may hold two), never
stopping at an error. The same pipeline serves ``safety-stream validate`` (no outside
references) and ingest (references resolved against the store).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any, Protocol
from uuid import UUID

from pydantic import ValidationError

from safety_stream.ctcae import CtcaeDictionary
from safety_stream.events import (
    Event,
    EventBase,
    decode_object,
    decode_submitted,
    encode_json,
)
from safety_stream.events.hashing import payload_hash
from safety_stream.validation.checks import DEFAULT_CLOCK_SKEW, check_event, future_problems
from safety_stream.validation.codes import ProblemCode
from safety_stream.validation.edc_csv import column_path, read_edc_csv
from safety_stream.validation.problems import Problem, problems_from_validation_error
from safety_stream.validation.records import (
    InputFormat,
    RawRecord,
    read_json_document,
    read_ndjson,
)
from safety_stream.validation.references import ReferenceChecker, ReferenceSource


@dataclass(slots=True)
class RecordResult:
    """The verdict on one event: accepted (``event``), or rejected with its problems."""

    location: str
    raw: bytes
    event: EventBase | None
    problems: list[Problem]
    unresolved: list[str]
    duplicate_of: str | None = None  # where the event it resends is: "line 1", "position 42"
    duplicate_position: int | None = None  # the store position of a resent stored event

    @property
    def valid(self) -> bool:
        return not self.problems


def read_records(
    stream: IO[bytes], input_format: InputFormat, encoding: str | None = None
) -> Iterator[RawRecord]:
    """Records of an input; ``encoding`` applies to CSV (JSON is UTF-8 by definition)."""
    if input_format is InputFormat.NDJSON:
        return read_ndjson(stream)
    if input_format is InputFormat.JSON:
        return read_json_document(stream)
    return read_edc_csv(stream, encoding)


class StoredLookup(Protocol):
    def stored_hash(self, event_id: UUID) -> tuple[int, str] | None:
        """(position, payload hash) of an event id already in the store, else None."""
        ...


class Validator:
    """Parses and checks records one by one, remembering accepted ones for references.

    With ``stored`` (on ingest), an event whose id is already in the store is recognised as a
    resend (a duplicate, if its canonical payload is identical) before any other check, so a
    retried post never fails for being "already enrolled" and never counts twice.
    """

    def __init__(
        self,
        ctcae: CtcaeDictionary,
        outside: ReferenceSource | None = None,
        stored: StoredLookup | None = None,
        gate: Callable[[EventBase], list[Problem]] | None = None,
        received_at: datetime | None = None,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
        *,
        one_site: bool = False,
    ) -> None:
        """``received_at``: the server's receipt time on ingest; no time of an event may lie
        after it (beyond ``clock_skew``). None (offline validation, dry runs): not checked.
        ``one_site``: the caller writes for one site (see ``ReferenceChecker``)."""
        self._ctcae = ctcae
        self._stored = stored
        self._gate = gate  # e.g. "this credential writes only its own site's events"
        self._latest = None if received_at is None else received_at + clock_skew
        self._received_at = received_at
        self._one_site = one_site  # a site's credential: never told where others' events are
        self.references = ReferenceChecker(ctcae, outside, one_site=one_site)

    def validate(
        self, records: Iterable[RawRecord], csv_paths: bool = False
    ) -> Iterator[RecordResult]:
        for record in records:
            if not record.parsed:
                if record.problems:
                    yield RecordResult(record.location, record.raw, None, record.problems, [])
                else:
                    yield self._one(record.location, record.raw, None, from_json=True)
            elif csv_paths:
                yield from self._csv_row(record)
            elif record.raw:  # an element of a JSON document: its text, parsed strictly
                yield self._one(record.location, record.raw, None, from_json=True)
            else:  # a value built in process (the simulator's dry runs), not sent
                yield self._one(record.location, record.raw, record.value, from_json=False)

    def _csv_row(self, record: RawRecord) -> Iterator[RecordResult]:
        """The events of one CSV row, all or nothing: if any is rejected, so are the others
        (a resolution must not be stored without its AE, nor an AE without its row's end)."""
        mapped: list[dict[str, Any]] = record.value
        results: list[RecordResult] = []
        for index, value in enumerate(mapped):
            if index == 0:
                location, prior = record.location, record.problems
            else:
                location = f"{record.location} ({value['event_type']})"
                prior = [] if results[0].valid else [_REPORT_REJECTED]
            result = self._one(location, record.raw, value, from_json=False, prior=prior)
            mapped_columns = {p.path for p in prior or ()}
            result.problems = [
                Problem(column_path(p.path, value["event_type"]), p.message, p.code, p.allowed)
                for p in result.problems
                # a column the mapping already faulted would only be faulted again, less clearly
                if p in (prior or ()) or column_path(p.path).split(" ")[0] not in mapped_columns
            ]
            results.append(result)
        if not all(result.valid for result in results):
            for result in results:
                if result.valid and result.duplicate_of is None:
                    assert result.event is not None
                    self.references.forget(result.event)
                    result.event = None
                    result.problems = [_ROW_REJECTED]
        yield from results

    def _one(
        self,
        location: str,
        raw: bytes,
        value: Any,
        *,
        from_json: bool,
        prior: list[Problem] | None = None,
    ) -> RecordResult:
        try:
            event: Event = decode_submitted(raw) if from_json else decode_object(value)
        except ValidationError as error:
            problems = problems_from_validation_error(error)
            return RecordResult(location, raw, None, (prior or []) + problems, [])
        if self._gate is not None:
            refused = self._gate(event)
            if refused:  # decided before anything else is looked up for this caller
                return RecordResult(location, raw, None, (prior or []) + refused, [])
        if self._stored is not None and not prior:
            resent = self._resend_of_stored(location, raw, event)
            if resent is not None:
                return resent
        problems = check_event(event, self._ctcae)
        if self._latest is not None and (
            event.occurred_at > self._latest or event.recorded_at > self._latest
        ):
            # _latest is set only together with _received_at (checked above for _latest)
            problems += future_problems(event, self._received_at, self._latest)  # type: ignore[arg-type]
        if prior:
            problems[:0] = prior
        references = self.references.check(event, location, raw, admit=not problems)
        if references.problems:
            problems.extend(references.problems)
        if problems:
            return RecordResult(location, raw, None, problems, references.unresolved)
        return RecordResult(
            location, raw, event, problems, references.unresolved, references.duplicate_of
        )

    def _resend_of_stored(self, location: str, raw: bytes, event: Event) -> RecordResult | None:
        assert self._stored is not None
        hit = self._stored.stored_hash(event.event_id)
        if hit is None:
            return None
        position, digest = hit
        if payload_hash(encode_json(event)) == digest:
            return RecordResult(
                location, raw, event, [], [], f"position {position}", duplicate_position=position
            )
        problem = Problem(
            path="event_id",
            message="event_id is already stored for a different event"
            + ("" if self._one_site else f" (position {position})"),
            code=ProblemCode.STORE_EVENT_ID_CONFLICT,
            allowed="a new UUID for a new event, or the identical event to resend it",
        )
        return RecordResult(location, raw, None, [problem], [])


_ROW_REJECTED = Problem(
    path="",
    message="another event of this row was rejected (see its problems): nothing of the row "
    "is stored until the whole row is valid",
    code=ProblemCode.CSV_ROW_REJECTED,
    allowed="a row whose every field is valid",
)
_REPORT_REJECTED = Problem(
    path="",
    message="the AE reported on this row was rejected, so its resolution cannot be accepted",
    code=ProblemCode.CSV_REPORT_REJECTED,
    allowed="fix the row's AE fields first",
)
