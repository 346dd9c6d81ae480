"""Creating engines: SQLite tuned for a durable single-writer log, PostgreSQL by URL.

SQLite runs in WAL mode with ``synchronous=FULL``: a transaction is on disk before the commit
returns, so an acknowledged event survives a power cut, not only a process crash. (NORMAL would
be faster per commit, but in WAL mode it may lose the last commits on power loss; ingest
batches many events per commit, which keeps FULL affordable.) Write transactions start with
``BEGIN IMMEDIATE``, taking the write lock up front, so two writers never deadlock on upgrade.
"""

from __future__ import annotations

import errno
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url

WRITE_OPTION = "safety_stream_write"


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it takes the write lock at BEGIN (IMMEDIATE),
    so reading first and writing after can never fail to upgrade while another thread writes."""
    options = {WRITE_OPTION: True}
    with engine.connect().execution_options(**options) as connection, connection.begin():
        yield connection


class FairLock:
    """A lock granted in the order it was asked for.

    ``threading.Lock`` (and SQLite's busy handler, which polls) let a thread that releases and
    asks again at once take the lock over and over while another waits: a long submission
    committed in parts would starve a one-event POST. Here each writer takes a ticket.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._issued = 0
        self._serving = 0
        self._abandoned: set[int] = set()  # turns whose waiter gave up (interrupted)

    def __enter__(self) -> None:
        with self._condition:
            ticket = self._issued
            self._issued += 1
            try:
                while ticket != self._serving:
                    self._condition.wait()
            except BaseException:  # interrupted while waiting: the turn passes to the next
                self._abandoned.add(ticket)
                self._pass_abandoned_turns()
                raise

    def _pass_abandoned_turns(self) -> None:
        while self._serving in self._abandoned:
            self._abandoned.remove(self._serving)
            self._serving += 1
        self._condition.notify_all()

    @property
    def issued(self) -> int:
        """How many turns were asked for so far (the one being served included)."""
        with self._condition:
            return self._issued

    def __exit__(self, *_: object) -> None:
        with self._condition:
            self._serving += 1
            self._pass_abandoned_turns()


_WRITERS: weakref.WeakKeyDictionary[Engine, FairLock] = weakref.WeakKeyDictionary()
_WRITERS_GUARD = threading.Lock()


def writers_of(engine: Engine) -> FairLock:
    """The queue of this process's writers to ``engine``'s database: the log's appends and the
    projection's checkpoints take turns in it. Without it a checkpoint written by another
    thread (a reader of ``serve`` catching the projection up) waited in SQLite's busy handler
    (which polls, and favours whoever asks again first) while a long submission's parts took
    the write lock one after the other."""
    with _WRITERS_GUARD:
        writers = _WRITERS.get(engine)
        if writers is None:
            writers = _WRITERS[engine] = FairLock()
        return writers


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


def _create_private(url: str) -> str | None:
    """Create a new SQLite database file readable by its owner only (0600); its path, or None
    when the file exists already (its mode is left alone) or the URL names no file."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    try:
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return None
    except OSError:
        return None  # no such directory, no permission: SQLite says so when it connects
    return database  # an empty file is an empty SQLite database


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets its pragmas and explicit transaction control."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    created = _create_private(url)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        if ":memory:" not in url and url != "sqlite://":
            cursor.execute("PRAGMA journal_mode=WAL")
            if created is not None:  # SQLite gives them the file's mode; make sure of it
                for companion in ("-wal", "-shm", "-journal"):
                    if os.path.exists(created + companion):
                        os.chmod(created + companion, 0o600)
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
