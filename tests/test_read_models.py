"""One read model per concept: the API's, the board's and the report's renderings of an AE and
of a dead letter are derived from it by field name, so each renders only fields it has."""

from __future__ import annotations

import dataclasses

from safety_stream.api.schemas import AeOut, RejectionOut
from safety_stream.application.read_models import AeRead, DeadLetterRead
from safety_stream.report.listings import SaeRow


def names(model: type) -> set[str]:
    return {f.name for f in dataclasses.fields(model)}


def test_every_rendering_of_an_ae_takes_its_fields_from_the_read_model() -> None:
    assert set(AeOut.model_fields) <= names(AeRead)
    assert set(SaeRow.model_fields) - names(AeRead) == {"related_to", "expedited"}


def test_the_api_renders_every_field_of_a_dead_letter() -> None:
    assert set(RejectionOut.model_fields) == names(DeadLetterRead)
