"""Schema migrations with Alembic, run from the packaged scripts (no alembic.ini needed).

Migrating is an explicit step: ``safety-stream db upgrade`` (or ``serve`` / ``worker`` /
the demo, once as they start, through ``open_store(url, create=True)``) calls ``upgrade``;
opening a store otherwise never writes and refuses a schema behind this version's
(``require_current``).

Several processes may start on one fresh database at once (compose starts the API and two
workers): each takes the migration lock first, a PostgreSQL session advisory lock or, for
SQLite, an exclusive lock on a file beside the database, so one migrates and the others find
the schema at head and do nothing.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, text

from safety_stream.errors import SafetyStreamError, UsageError

log = logging.getLogger("safety_stream.store")

MIGRATION_LOCK_KEY = 0x5AFE_5E0A_0001  # pg_advisory_lock key: one per database


def scripts_config() -> Config:
    """The packaged migration scripts (enough to read revisions; no database)."""
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("safety_stream.store") / "migrations")
    )
    return config


def alembic_config(engine: Engine) -> Config:
    config = scripts_config()
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


class StoreUnavailable(SafetyStreamError):
    """The store exists (or should) but cannot be used now: server down, schema behind."""


def upgrade_hint(shown: str) -> str:
    return f"`safety-stream db upgrade --db {shown}`"


def head_revision() -> str:
    """The newest schema revision this version of safety-stream knows."""
    head = ScriptDirectory.from_config(scripts_config()).get_current_head()
    assert head is not None
    return head


def known_revision(revision: str) -> bool:
    """Whether ``revision`` is one of this version's (a newer program's is not)."""
    try:
        return ScriptDirectory.from_config(scripts_config()).get_revision(revision) is not None
    except CommandError:
        return False


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision; None when it holds no safety-stream schema. Reads only
    (no table is created)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def require_current(engine: Engine, shown: str) -> None:
    """Refuse a database whose schema is not this version's head (nothing is written):
    UsageError when it holds no safety-stream store, StoreUnavailable when it is behind (or
    from a newer version); each message names what to run."""
    revision = current_revision(engine)
    head = head_revision()
    if revision == head:
        return
    if revision is None:
        raise UsageError(
            f"--db: {shown} holds no safety-stream event log "
            f"(check the URL; {upgrade_hint(shown)} creates one)"
        )
    if not known_revision(revision):
        raise StoreUnavailable(
            f"--db: the store's schema is at revision {revision}, which this version of "
            f"safety-stream (head {head}) does not know: it was written by a newer version "
            "(run that version)"
        )
    raise StoreUnavailable(
        f"--db: the store's schema is at revision {revision}, this version needs {head} "
        f"(upgrade it with {upgrade_hint(shown)})"
    )


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the database to ``revision`` under the migration lock (idempotent; safe when
    several processes start together): its revision before and after (equal when there was
    nothing to do, e.g. another process migrated it first)."""
    with migration_lock(engine):
        before = current_revision(engine)
        if before is not None and not known_revision(before):
            raise StoreUnavailable(
                f"the store's schema is at revision {before}, which this version of "
                f"safety-stream (head {head_revision()}) does not know: it was written by a "
                "newer version (run that version; nothing was changed)"
            )
        command.upgrade(alembic_config(engine), revision)
        after = current_revision(engine)
    shown = engine.url.render_as_string(hide_password=True)
    if before != after:
        log.info("store %s: schema %s -> %s", shown, before or "(new store)", after)
    else:
        log.info("store %s: schema at %s, nothing to migrate", shown, after)
    return before, after
