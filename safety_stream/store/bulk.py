"""Many-row statements handed to the database driver directly.

SQLAlchemy's ``connection.execute(insert(table), rows)`` converts every parameter of every row
through its compiled statement (dictionary lookups, bind processors, key checks), and an
``IN`` list with an expanding parameter is rendered again at every execution: on the write
path that cost more than the database's own work. Here the SQL text is rendered once per
dialect, each column's conversion (its type's own bind or result processor for this dialect:
UTC times, UUIDs, dates, booleans) is looked up once and applied a column at a time, and rows
go to the driver's ``executemany`` as tuples. Values are always bound, never formatted into SQL.

- ``BulkWrite.insert``: ``INSERT INTO t (every column) VALUES (...)``;
- ``BulkWrite.upsert``: the same, or on a key conflict ``DO UPDATE SET`` the other columns
  (SQLite 3.24+ and PostgreSQL share the syntax);
- ``BulkWrite.update``: ``UPDATE t SET columns WHERE keys``;
- ``BulkLookup``: ``SELECT columns FROM t WHERE key IN (...)`` in chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Column, Connection, Dialect, Table

Convert = Callable[[Any], Any]
LOOKUP_CHUNK = 500  # keys per IN list (SQLite's limit on parameters is far above)


def _marker(dialect: Dialect) -> str:
    return "?" if dialect.paramstyle == "qmark" else "%s"


def _by_column(rows: Sequence[tuple[Any, ...]], converters: list[Convert | None]) -> list[Any]:
    """``rows`` with each column that has a converter converted (mapped a column at a time:
    the loop runs in C, not once per value in Python)."""
    if all(convert is None for convert in converters):
        return list(rows)
    columns = list(zip(*rows, strict=True))
    for index, convert in enumerate(converters):
        if convert is not None:
            columns[index] = tuple(map(convert, columns[index]))
    return list(zip(*columns, strict=True))


class BulkWrite:
    """One write statement over ``table`` whose parameters are ``parameters`` (column names),
    in that order; the SQL is rendered by ``render(quoted table, quoted parameters, marker)``."""

    def __init__(
        self,
        table: Table,
        parameters: Sequence[str],
        render: Callable[[str, list[str], str], str],
    ) -> None:
        self._table = table
        self.parameters = list(parameters)
        self._render = render
        self._prepared: dict[str, tuple[str, list[Convert | None]]] = {}  # by dialect name

    @classmethod
    def insert(cls, table: Table) -> BulkWrite:
        def render(name: str, columns: list[str], marker: str) -> str:
            markers = ", ".join([marker] * len(columns))
            return f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({markers})"

        return cls(table, [c.name for c in table.columns], render)

    @classmethod
    def upsert(cls, table: Table, keys: Sequence[str]) -> BulkWrite:
        """Insert every column; on a conflict of ``keys``, set the others to the new values."""
        count = len(keys)

        def render(name: str, columns: list[str], marker: str) -> str:
            insert = cls.insert(table)._render(name, columns, marker)
            others = ", ".join(f"{c} = excluded.{c}" for c in columns[count:])
            return f"{insert} ON CONFLICT ({', '.join(columns[:count])}) DO UPDATE SET {others}"

        others = [c.name for c in table.columns if c.name not in keys]
        return cls(table, [*keys, *others], render)

    @classmethod
    def update(cls, table: Table, columns: Sequence[str], keys: Sequence[str]) -> BulkWrite:
        """Set ``columns`` of the row ``keys`` name; parameters: the columns, then the keys."""
        count = len(columns)

        def render(name: str, quoted: list[str], marker: str) -> str:
            sets = ", ".join(f"{c} = {marker}" for c in quoted[:count])
            where = " AND ".join(f"{k} = {marker}" for k in quoted[count:])
            return f"UPDATE {name} SET {sets} WHERE {where}"

        return cls(table, [*columns, *keys], render)

    def _prepare(self, dialect: Dialect) -> tuple[str, list[Convert | None]]:
        if dialect.name not in self._prepared:
            quote = dialect.identifier_preparer.quote
            sql = self._render(
                dialect.identifier_preparer.format_table(self._table),
                [quote(name) for name in self.parameters],
                _marker(dialect),
            )
            converters: list[Convert | None] = [
                self._table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in self.parameters
            ]
            self._prepared[dialect.name] = (sql, converters)
        return self._prepared[dialect.name]

    def execute(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Rows given as mappings of the parameters' names."""
        names = self.parameters
        self.execute_values(connection, [tuple(row[name] for name in names) for row in rows])

    def execute_values(self, connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows given as tuples in the order of ``parameters``: no mapping to build and read."""
        if not rows:
            return
        sql, converters = self._prepare(connection.dialect)
        connection.exec_driver_sql(sql, _by_column(rows, converters))


class BulkLookup:
    """``SELECT columns FROM table WHERE key IN (...)``: the rows of many keys in a few
    queries, each value converted as the column's type reads it (a UUID, a date, a bool)."""

    def __init__(self, table: Table, key: str, columns: Sequence[str]) -> None:
        self._table = table
        self._key: Column[Any] = table.c[key]
        self._columns = [table.c[name] for name in columns]
        self._sql: dict[tuple[str, int], str] = {}  # by dialect and number of keys
        self._converters: dict[str, tuple[Convert | None, list[Convert | None]]] = {}

    def _prepare(self, dialect: Dialect, count: int) -> str:
        if (dialect.name, count) not in self._sql:
            quote = dialect.identifier_preparer.quote
            columns = ", ".join(quote(c.name) for c in self._columns)
            markers = ", ".join([_marker(dialect)] * count)
            self._sql[dialect.name, count] = (
                f"SELECT {columns} FROM {dialect.identifier_preparer.format_table(self._table)}"
                f" WHERE {quote(self._key.name)} IN ({markers})"
            )
        if dialect.name not in self._converters:
            read = [c.type.dialect_impl(dialect) for c in self._columns]
            self._converters[dialect.name] = (
                self._key.type.dialect_impl(dialect).bind_processor(dialect),
                [impl.result_processor(dialect, None) for impl in read],
            )
        return self._sql[dialect.name, count]

    def rows(self, connection: Connection, keys: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
        """The rows whose key is among ``keys`` (in no particular order)."""
        wanted = list(keys)
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[start : start + LOOKUP_CHUNK]
            sql = self._prepare(connection.dialect, len(chunk))
            bind, converters = self._converters[connection.dialect.name]
            bound = tuple(chunk if bind is None else map(bind, chunk))
            cursor = connection.connection.cursor()  # the driver's: one fetchall, no Row
            try:
                cursor.execute(sql, bound)
                found = cursor.fetchall()
            finally:
                cursor.close()
            if found:
                yield from _by_column(found, converters)
