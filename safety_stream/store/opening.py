"""Opening a store named by a user's ``--db``: every way it can be wrong is a clear error.

Migrating is a life-cycle step of its own. ``upgrade_store(url)`` (``safety-stream db
upgrade``) creates the database if needed and brings its schema to this version's under the
migration lock. ``open_store(url, create=True)`` is that step followed by opening: ``serve``,
``worker`` and the demo call it once as they start (and ``sites add`` / ``readers add``, which
set a new store up). ``open_store(url, create=False)``, like ``SqlEventStore.open``, never
writes: the read commands (``verify``, ``rejected``, ``alerts``, ``whatif``, ``report``,
``replay``) refuse a missing store and one whose schema is behind, naming ``safety-stream db
upgrade --db URL``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safety_stream.errors import UsageError
from safety_stream.store.memory import Clock, utc_now
from safety_stream.store.migrate import StoreUnavailable, upgrade_hint
from safety_stream.store.sql import SqlEventStore

DIALECTS = ("sqlite", "postgresql")
URL_FORMS = "sqlite:///FILE (a file here), sqlite:////abs/path/FILE or postgresql://user@host/db"

__all__ = ["StoreUnavailable", "open_store", "parse_store_url", "schema_status", "upgrade_store"]


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


def _check_location(url: str, *, must_exist: bool) -> tuple[str, str | None]:
    """(URL shown without its password, SQLite file or None); UsageError for a bad URL, a
    missing directory, or (``must_exist``) a missing SQLite file. Nothing is created."""
    shown, sqlite_file = parse_store_url(url)
    if sqlite_file is not None:
        path = Path(sqlite_file)
        if not path.parent.is_dir():
            raise UsageError(f"--db: directory {path.parent} does not exist (create it first)")
        if must_exist and not path.is_file():
            raise UsageError(
                f"--db: no store at {path} (check the path; {upgrade_hint(shown)} creates one)"
            )
    return shown, sqlite_file


@dataclass(frozen=True)
class Upgrade:
    """What ``upgrade_store`` did: the schema revision before (None: a new store) and after."""

    shown: str
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def describe(self) -> str:
        if not self.changed:
            return f"{self.shown}: schema at {self.after} (head), nothing to do"
        return f"{self.shown}: schema {self.before or '(new store)'} -> {self.after}"


def upgrade_store(url: str) -> Upgrade:
    """Create the store at ``url`` if needed and bring its schema to this version's, under the
    migration lock (idempotent; safe when several processes start together)."""
    from sqlalchemy.exc import SQLAlchemyError

    from safety_stream.store.engine import make_engine
    from safety_stream.store.migrate import upgrade

    shown, _ = _check_location(url, must_exist=False)
    engine = make_engine(url)
    try:
        before, after = upgrade(engine)
    except SQLAlchemyError as error:
        raise StoreUnavailable(f"--db: cannot use {shown}: {_reason(error)}") from None
    finally:
        engine.dispose()
    return Upgrade(shown, before, after)


def open_store(url: str, *, create: bool, clock: Clock = utc_now) -> SqlEventStore:
    """The store at ``url``; UsageError / StoreUnavailable say what is wrong and what to do.

    ``create=True``: the explicit upgrade step, then open (``SqlEventStore.create``); for a
    process's start (``serve``, ``worker``, the demo), once. ``create=False``: open without
    writing anything; a missing store or a schema behind this version's is refused."""
    from sqlalchemy.exc import SQLAlchemyError

    shown, _ = _check_location(url, must_exist=not create)
    try:
        if create:
            return SqlEventStore.create(url, clock)
        return SqlEventStore.open(url, clock)
    except SQLAlchemyError as error:
        raise StoreUnavailable(f"--db: cannot use {shown}: {_reason(error)}") from None


@dataclass(frozen=True)
class SchemaStatus:
    """``safety-stream db status``: the store's revision (None: none there), this version's
    head, and whether the store exists at all."""

    shown: str
    exists: bool
    revision: str | None
    head: str
    known: bool  # the revision is one of this version's (not a newer program's)

    @property
    def current(self) -> bool:
        return self.revision == self.head


def schema_status(url: str) -> SchemaStatus:
    """Where the store's schema stands; reads only (a missing SQLite file is not created)."""
    from sqlalchemy.exc import SQLAlchemyError

    from safety_stream.store.engine import make_engine
    from safety_stream.store.migrate import current_revision, head_revision, known_revision

    shown, sqlite_file = parse_store_url(url)
    head = head_revision()
    if sqlite_file is not None and not Path(sqlite_file).is_file():
        return SchemaStatus(shown, False, None, head, True)
    engine = make_engine(url)
    try:
        revision = current_revision(engine)
    except SQLAlchemyError as error:
        raise StoreUnavailable(f"--db: cannot use {shown}: {_reason(error)}") from None
    finally:
        engine.dispose()
    known = revision is None or known_revision(revision)
    return SchemaStatus(shown, True, revision, head, known)


def _reason(error: Exception) -> str:
    """The driver's first line, without SQL or parameters (they may quote patient ids)."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()[0] if str(original).strip() else ""
    hint = ""
    if "connection refused" in text.lower() or "could not connect" in text.lower():
        hint = " (is the database server running?)"
    return f"{type(original).__name__}: {text[:200]}{hint}"
