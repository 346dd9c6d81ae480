"""Creating engines: SQLite tuned for a durable single-writer log, PostgreSQL by URL.

SQLite runs in WAL mode with ``synchronous=FULL``: a transaction is on disk before the commit
returns, so an acknowledged event survives a power cut, not only a process crash. (NORMAL would
be faster per commit, but in WAL mode it may lose the last commits on power loss; ingest
batches many events per commit, which keeps FULL affordable.) Write transactions start with
``BEGIN IMMEDIATE``, taking the write lock up front, so two writers never deadlock on upgrade.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection

WRITE_OPTION = "safety_stream_write"


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it takes the write lock at BEGIN (IMMEDIATE),
    so reading first and writing after can never fail to upgrade while another thread writes."""
    options = {WRITE_OPTION: True}
    with engine.connect().execution_options(**options) as connection, connection.begin():
        yield connection


SQLITE_FULL = 13  # sqlite3 result code: "database or disk is full"
POSTGRES_DISK_FULL = "53100"  # SQLSTATE disk_full


def is_storage_full(error: BaseException) -> bool:
    """Whether ``error`` (or one it was raised from) says the database's disk is full."""
    seen: BaseException | None = error
    while seen is not None:
        if getattr(seen, "sqlite_errorcode", None) == SQLITE_FULL:
            return True
        if getattr(seen, "sqlstate", None) == POSTGRES_DISK_FULL:
            return True
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return False


def default_url(path: str = "safety-stream.db") -> str:
    return f"sqlite:///{path}"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets its pragmas and explicit transaction control."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        if ":memory:" not in url and url != "sqlite://":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        # 64 MiB of page cache per connection (the default is 2 MiB): the event-id index takes
        # random UUIDs, so once it outgrows the cache every append would read pages from disk.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
