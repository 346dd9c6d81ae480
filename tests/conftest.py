"""Shared test helpers: repository paths and example events."""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "schemas" / "examples"
CTCAE_XLSX = REPO / "schemas" / "ctcae" / "CTCAE_v5.0_2017-11-27.xlsx"


def example(name: str) -> dict[str, Any]:
    """A fresh copy of a valid example event, by file stem (e.g. 'ae.reported')."""
    data: dict[str, Any] = json.loads((EXAMPLES / "valid" / f"{name}.json").read_text())
    return copy.deepcopy(data)


# --- servers and stores ---------------------------------------------------------------------

PG_URL_VARIABLE = "SAFETY_STREAM_TEST_PG_URL"


def require_server(what: str, variable: str) -> str:
    """The server URL from the environment; under CI a missing server fails, never skips."""
    url = os.environ.get(variable)
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required under CI: set {variable} (.ci/run starts one)")
    pytest.skip(f"{what} not available: set {variable} (bash .ci/run starts one)")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    admin_url = require_server("PostgreSQL", PG_URL_VARIABLE)
    admin = create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    name = f"t_{uuid.uuid4().hex[:16]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"
