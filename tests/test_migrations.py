"""The Alembic migrations create exactly the schema the models describe, on both backends."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from safety_stream.store.sql import SqlEventStore
from safety_stream.store.tables import Base


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrations_match_the_models(backend: str, request: pytest.FixtureRequest) -> None:
    store = SqlEventStore.open(request.getfixturevalue(f"{backend}_url"))  # migrates to head
    try:
        with store.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        store.close()
    assert differences == []
