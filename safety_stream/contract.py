"""The language-neutral wire contract: one JSON Schema per event type and version.

Generated from the pydantic models (``safety-stream schemas export``) into ``schemas/json/``;
a test fails when the committed files drift from the models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safety_stream.events import EVENT_MODELS, wire_name

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def event_schema(model: type[Any]) -> dict[str, Any]:
    """The validation-mode JSON Schema of one event model, with a stable ``$id``."""
    name = wire_name(model)
    version = model.model_fields["schema_version"].annotation.__args__[0]
    body = model.model_json_schema(mode="validation")
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"urn:safety-stream:event:{name}:v{version}",
        **body,
        "title": f"{name} v{version}",
    }


def rendered_schemas() -> dict[str, str]:
    """File name -> file text for every event schema (deterministic output)."""
    files = {}
    for model in EVENT_MODELS:
        schema = event_schema(model)
        version = schema["properties"]["schema_version"]["const"]
        files[f"{wire_name(model)}.v{version}.schema.json"] = (
            json.dumps(schema, indent=2, sort_keys=True) + "\n"
        )
    return files


def drift(directory: Path) -> list[str]:
    """Names of schema files that are missing, stale or unexpected in ``directory``."""
    expected = rendered_schemas()
    present = {p.name for p in directory.glob("*.schema.json")} if directory.is_dir() else set()
    stale = [
        name
        for name, text in expected.items()
        if name not in present or (directory / name).read_text(encoding="utf-8") != text
    ]
    return sorted(stale + sorted(present - set(expected)))


def export(directory: Path) -> list[str]:
    """Write every schema into ``directory`` (removing unexpected ones); returns names written."""
    directory.mkdir(parents=True, exist_ok=True)
    expected = rendered_schemas()
    for stale in directory.glob("*.schema.json"):
        if stale.name not in expected:
            stale.unlink()
    for name, text in expected.items():
        (directory / name).write_text(text, encoding="utf-8")
    return sorted(expected)
