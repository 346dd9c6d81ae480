"""Many-row INSERTs handed to the database driver directly.

SQLAlchemy's ``connection.execute(insert(table), rows)`` converts every parameter of every row
through its compiled statement (dictionary lookups, bind processors, key checks): for the log's
append that cost more than the database's own work. Here each column's bind processor (the
column type's own conversion for this dialect: UTC times, UUIDs) is looked up once and the
rows go to the driver's ``executemany`` as tuples. Values are bound, never formatted into SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table


class BulkInsert:
    """``INSERT INTO table (every column) VALUES (...)`` for rows given as mappings."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._columns = [column.name for column in table.columns]
        self._prepared: dict[str, tuple[str, list[Any]]] = {}  # by dialect name

    def _prepare(self, connection: Connection) -> tuple[str, list[Any]]:
        dialect = connection.dialect
        if dialect.name not in self._prepared:
            marker = "?" if dialect.paramstyle == "qmark" else "%s"
            names = ", ".join(dialect.identifier_preparer.quote(c) for c in self._columns)
            table = dialect.identifier_preparer.format_table(self._table)
            markers = ", ".join([marker] * len(self._columns))
            sql = f"INSERT INTO {table} ({names}) VALUES ({markers})"
            processors = [
                column.type.dialect_impl(dialect).bind_processor(dialect)
                for column in self._table.columns
            ]
            self._prepared[dialect.name] = (sql, processors)
        return self._prepared[dialect.name]

    def execute(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        sql, processors = self._prepare(connection)
        pairs = list(zip(self._columns, processors, strict=True))
        values = [
            tuple(row[name] if process is None else process(row[name]) for name, process in pairs)
            for row in rows
        ]
        connection.exec_driver_sql(sql, values)

    @property
    def columns(self) -> list[str]:
        """The columns in the order ``execute_values`` takes them."""
        return list(self._columns)

    def execute_values(self, connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows given as tuples in the order of ``columns``: no mapping to build and read."""
        if not rows:
            return
        sql, processors = self._prepare(connection)
        if any(process is not None for process in processors):
            rows = [
                tuple(
                    v if process is None else process(v)
                    for v, process in zip(row, processors, strict=True)
                )
                for row in rows
            ]
        connection.exec_driver_sql(sql, rows)
