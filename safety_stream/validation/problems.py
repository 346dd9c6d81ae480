"""What a site is told when a record is wrong: where, which field, why, and what is allowed.

Pydantic's structural errors are translated into the same ``Problem`` shape as the domain
checks, so every error a site sees reads alike whatever layer found it.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from safety_stream.events import EVENT_TYPES, Modality
from safety_stream.events.base import LINE_PATTERN, TEXT_PATTERN
from safety_stream.validation.codes import schema_code


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one record.

    ``path`` is the dotted field path ("attribution.radiotherapy"), empty for the whole record;
    ``code`` is a stable machine-readable name: a ``ProblemCode``, or ``schema.<type>`` for a
    structural error (``schema_code``); ``allowed`` says what would have been accepted.
    """

    path: str
    message: str
    code: str
    allowed: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (the code as plain text, whether it was given as a ProblemCode)."""
        return {**asdict(self), "code": str(self.code)}

    def __str__(self) -> str:
        where = self.path or "(record)"
        text = f"{where}: {self.message}"
        return f"{text} (allowed: {self.allowed})" if self.allowed else text


_MODALITY_TAGS = frozenset(m.value for m in Modality)


def _clean_loc(loc: tuple[int | str, ...]) -> list[int | str]:
    """Drop the union tags pydantic puts in locations ('ae.reported', 'radiotherapy')."""
    parts = list(loc)
    if parts and parts[0] in EVENT_TYPES:
        parts = parts[1:]
    if len(parts) >= 2 and parts[0] == "treatment" and parts[1] in _MODALITY_TAGS:
        del parts[1]
    return parts


def _field_names(event_type: str | None, parts: list[int | str]) -> list[str] | None:
    """The fields a model at ``parts`` accepts, for 'extra field' errors."""
    model: type[BaseModel] | None = EVENT_TYPES.get(event_type or "")
    for part in parts:
        if model is None:
            return None
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    return list(model.model_fields) if model else None


CONTROL_FREE = {
    LINE_PATTERN: "printable text on one line",
    TEXT_PATTERN: "printable text (tabs and line breaks allowed)",
}
_ALLOWED_FROM_CTX = {
    "greater_than_equal": lambda c: f">= {c['ge']}",
    "greater_than": lambda c: f"> {c['gt']}",
    "less_than_equal": lambda c: f"<= {c['le']}",
    "less_than": lambda c: f"< {c['lt']}",
    "string_pattern_mismatch": lambda c: f"text matching {c['pattern']}",
    "string_too_long": lambda c: f"at most {c['max_length']} characters",
    "string_too_short": lambda c: f"at least {c['min_length']} characters",
    "too_short": lambda c: f"at least {c['min_length']} item(s)",
    "enum": lambda c: str(c["expected"]),
    "literal_error": lambda c: str(c["expected"]),
    "union_tag_invalid": lambda c: _data_event_tags(str(c["expected_tags"])),
}
# recorded by the DSMB's and the server's own paths, never posted as data: not offered
_NOT_FOR_SITES = ("'dsmb.decision'", "'clock.ticked'", "'alert.triaged'")


def _data_event_tags(expected: str) -> str:
    return ", ".join(t for t in expected.split(", ") if t not in _NOT_FOR_SITES)


_ALLOWED_BY_TYPE = {
    "uuid_parsing": "a UUID such as 3f0e8d0c-5b4e-4f4e-9a7c-1d2e3f4a5b6c",
    "uuid_type": "a UUID string",
    "timezone_aware": "an ISO 8601 time with a UTC offset, e.g. 2026-03-01T08:00:00Z",
    "datetime_from_date_parsing": "an ISO 8601 time with a UTC offset, e.g. 2026-03-01T08:00:00Z",
    "datetime_parsing": "an ISO 8601 time with a UTC offset, e.g. 2026-03-01T08:00:00Z",
    "date_from_datetime_parsing": "an ISO 8601 date, e.g. 2026-03-01",
    "date_parsing": "an ISO 8601 date, e.g. 2026-03-01",
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "missing": None,
    "json_invalid": "one JSON object per record",
    "model_type": "a JSON object",
    "model_attributes_type": "a JSON object",
    "union_tag_not_found": None,
}


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def problems_from_validation_error(error: ValidationError) -> list[Problem]:
    """Translate a pydantic error into problems, one per failing field."""
    problems = []
    for detail in error.errors(include_url=False):
        kind = detail["type"]
        loc = detail["loc"]
        event_type = str(loc[0]) if loc and loc[0] in EVENT_TYPES else None
        parts = _clean_loc(loc)
        path = ".".join(str(p) for p in parts)
        message = detail["msg"].removeprefix("Value error, ")
        ctx = detail.get("ctx") or {}
        allowed: str | None
        if kind in _ALLOWED_FROM_CTX and ctx:
            allowed = _ALLOWED_FROM_CTX[kind](ctx)
        else:
            allowed = _ALLOWED_BY_TYPE.get(kind)
        if kind == "string_pattern_mismatch" and ctx.get("pattern") in CONTROL_FREE:
            message = "contains a control character (such as NUL, escape or a line break)"
            allowed = CONTROL_FREE[ctx["pattern"]]
        if kind == "too_short":
            message = f"needs at least {ctx['min_length']} item(s), got {ctx['actual_length']}"
        if kind in ("enum", "literal_error"):
            message = f"{_short(detail.get('input'))} is not an allowed value"
        if kind in ("union_tag_not_found", "union_tag_invalid"):
            path = path + ".modality" if path else "event_type"
            if kind == "union_tag_invalid":
                tag = str(ctx.get("tag"))
                message = f"unknown {'modality' if parts else 'event type'} {tag!r}"
                close = difflib.get_close_matches(tag, list(EVENT_TYPES), n=1)
                if close and not parts:
                    message += f"; did you mean {close[0]!r}?"
            else:
                message = "Field required (it names the event type)"
                allowed = (
                    ", ".join(sorted(EVENT_TYPES))
                    if not parts
                    else ", ".join(sorted(_MODALITY_TAGS))
                )
        elif kind == "extra_forbidden":
            fields = _field_names(event_type, parts[:-1])
            message = "Unknown field; events must not carry fields outside their schema"
            allowed = ", ".join(fields) if fields else None
        problems.append(
            Problem(path=path, message=message, code=schema_code(kind), allowed=allowed)
        )
    return problems
