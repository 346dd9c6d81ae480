"""Opening a store named by a user's ``--db``: every way it can be wrong is a clear error.

``open_store(url, create=False)`` is for commands that read (``verify``, ``rejected``,
``alerts``, ``whatif``, ``report``, ``replay``): they never create a database, and refuse one
whose schema is behind instead of migrating it. ``create=True`` (``serve``, ``worker``,
``sites add``, ``migrate``) creates the database if needed and migrates it to the newest schema.
"""

from __future__ import annotations

from pathlib import Path

from safety_stream.errors import SafetyStreamError, UsageError
from safety_stream.store.sql import SqlEventStore

DIALECTS = ("sqlite", "postgresql")
URL_FORMS = "sqlite:///FILE (a file here), sqlite:////abs/path/FILE or postgresql://user@host/db"


class StoreUnavailable(SafetyStreamError):
    """The store exists (or should) but cannot be used now: server down, schema behind."""


def parse_store_url(url: str) -> tuple[str, str | None]:
    """(URL shown without its password, SQLite file path or None) of a ``--db`` value."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if "://" not in url:
        raise UsageError(
            f"--db {url!r} is not a store URL (use {URL_FORMS}; for this file: sqlite:///{url})"
        )
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError(f"--db {url!r} is not a store URL (use {URL_FORMS})") from None
    dialect = parsed.get_backend_name()
    if dialect not in DIALECTS:
        raise UsageError(f"--db: {dialect} is not supported (use {URL_FORMS})")
    shown = parsed.render_as_string(hide_password=True)
    database = parsed.database
    if dialect == "sqlite" and database not in (None, "", ":memory:"):
        return shown, str(database)
    return shown, None


def open_store(url: str, *, create: bool) -> SqlEventStore:
    """The store at ``url``; UsageError / StoreUnavailable say what is wrong and what to do."""
    from sqlalchemy.exc import SQLAlchemyError

    shown, sqlite_file = parse_store_url(url)
    if sqlite_file is not None:
        path = Path(sqlite_file)
        if not path.parent.is_dir():
            raise UsageError(f"--db: directory {path.parent} does not exist (create it first)")
        if not create and not path.is_file():
            raise UsageError(
                f"--db: no store at {path} (check the path; "
                "`safety-stream serve --db URL` or `safety-stream migrate --db URL` creates one)"
            )
    try:
        if create:
            return SqlEventStore.open(url)
        return _open_current(url, shown)
    except SQLAlchemyError as error:
        raise StoreUnavailable(f"--db: cannot use {shown}: {_reason(error)}") from None


def _open_current(url: str, shown: str) -> SqlEventStore:
    """An existing store at the newest schema, never written to."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from safety_stream.store.engine import make_engine
    from safety_stream.store.migrate import alembic_config

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
        head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    except BaseException:
        engine.dispose()
        raise
    if revision != head:
        engine.dispose()
        if revision is None:
            raise UsageError(f"--db: {shown} holds no safety-stream event log")
        raise StoreUnavailable(
            f"--db: the store's schema is at revision {revision}, this version needs {head} "
            f"(upgrade it with `safety-stream migrate --db {shown}`)"
        )
    return SqlEventStore(engine)


def _reason(error: Exception) -> str:
    """The driver's first line, without SQL or parameters (they may quote patient ids)."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()[0] if str(original).strip() else ""
    hint = ""
    if "connection refused" in text.lower() or "could not connect" in text.lower():
        hint = " (is the database server running?)"
    return f"{type(original).__name__}: {text[:200]}{hint}"
