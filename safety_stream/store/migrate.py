"""Schema migrations with Alembic, run from the packaged scripts (no alembic.ini needed).

Several processes may start on one fresh database at once (compose starts the API and two
workers): each takes the migration lock first, a PostgreSQL session advisory lock or, for
SQLite, an exclusive lock on a file beside the database, so one migrates and the others find
the schema at head and do nothing.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

MIGRATION_LOCK_KEY = 0x5AFE_5E0A_0001  # pg_advisory_lock key: one per database


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("safety_stream.store") / "migrations")
    )
    config.attributes["engine"] = engine
    return config


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Held by one migrating process at a time per database."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
                connection.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield  # a private in-memory database: nobody else can migrate it
        return
    with open(Path(database).with_name(Path(database).name + "-migrate-lock"), "a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` under the migration lock (idempotent; safe when
    several processes start together)."""
    with migration_lock(engine):
        command.upgrade(alembic_config(engine), revision)
