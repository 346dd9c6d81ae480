"""Event stores: the port (``base``), in-memory and SQL (SQLite / PostgreSQL) backends."""
