"""Column types that behave identically on every SQL dialect.

Stable on purpose: the migration scripts import them, so changing what they render would
silently change what an old migration creates.

SQLAlchemy's MySQL dialect package (~15 ms of CPU, every driver module of it) is imported only
when a MySQL/MariaDB engine renders a column: opening a SQLite or PostgreSQL store never loads
it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, String, UnicodeText
from sqlalchemy.engine import Dialect
from sqlalchemy.types import VARBINARY, TypeDecorator, TypeEngine

__all__ = ["NAME_BYTES", "NAME_CHARS", "Id", "JSONText", "Name", "Timestamp"]

#: Longest type_id / identifier / job_id, in characters (as validated by pinnacle_protocols).
NAME_CHARS = 255
#: The same limit in UTF-8 bytes (4 bytes per code point at most).
NAME_BYTES = 4 * NAME_CHARS

# Dialects whose string comparison is not exact: MySQL/MariaDB ``*_bin`` collations are PAD SPACE
# (``'a' = 'a '``) and the defaults are case-insensitive; SQL Server ignores trailing spaces in
# every collation. On those, names are stored as their UTF-8 bytes and compared bytewise.
_BINARY_NAME_DIALECTS = frozenset({"mysql", "mariadb", "mssql"})
_MYSQL_DIALECTS = frozenset({"mysql", "mariadb"})


class Name(TypeDecorator[str]):
    """A case- and space-exact name of up to 255 characters (any Unicode, incl. astral).

    ``VARCHAR(255)`` where the dialect compares strings exactly (PostgreSQL, SQLite, Oracle,
    DuckDB); ``VARBINARY(1020)`` holding UTF-8 where it does not (MySQL, MariaDB, SQL Server).
    """

    impl = String(NAME_CHARS)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Pick the exact-comparison column type for ``dialect``."""
        if dialect.name in _BINARY_NAME_DIALECTS:
            return dialect.type_descriptor(VARBINARY(NAME_BYTES))
        return dialect.type_descriptor(String(NAME_CHARS))

    def bind_processor(self, dialect: Dialect) -> Any:
        """No per-value Python call where the column is a plain string (hot paths)."""
        if dialect.name not in _BINARY_NAME_DIALECTS:
            return None
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """No per-value Python call where the column is a plain string (hot paths)."""
        if dialect.name not in _BINARY_NAME_DIALECTS:
            return None
        return super().result_processor(dialect, coltype)

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        """Encode to UTF-8 bytes on the binary dialects."""
        if value is not None and dialect.name in _BINARY_NAME_DIALECTS:
            return value.encode("utf-8")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        """Decode UTF-8 bytes back to ``str``."""
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value).decode("utf-8")
        return value  # type: ignore[no-any-return]


class _JSONText(TypeDecorator[str]):
    """TEXT; LONGTEXT utf8mb4_bin on MySQL/MariaDB (what ``with_variant`` rendered before)."""

    impl = UnicodeText()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """LONGTEXT on MySQL/MariaDB (whose dialect module is loaded then), TEXT elsewhere."""
        if dialect.name in _MYSQL_DIALECTS:
            from sqlalchemy.dialects import mysql

            return mysql.LONGTEXT(charset="utf8mb4", collation="utf8mb4_bin")
        return self.impl_instance


class _Timestamp(TypeDecorator[Any]):
    """TIMESTAMP WITH TIME ZONE; DATETIME(6) on MySQL/MariaDB."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """DATETIME(fsp=6) on MySQL/MariaDB, ``DateTime(timezone=True)`` elsewhere."""
        if dialect.name in _MYSQL_DIALECTS:
            from sqlalchemy.dialects import mysql

            return mysql.DATETIME(fsp=6)
        return self.impl_instance


#: Record JSON of any size: TEXT on PostgreSQL/SQLite, LONGTEXT (4 GiB; plain TEXT stops at
#: 64 KiB) on MySQL/MariaDB, NVARCHAR(MAX) on SQL Server, NCLOB on Oracle.
JSONText: TypeEngine[str] = _JSONText()

#: A timezone-aware UTC timestamp with microseconds (MySQL DATETIME defaults to whole seconds).
Timestamp: TypeEngine[Any] = _Timestamp()

#: A 64-bit surrogate key; SQLite only auto-increments ``INTEGER PRIMARY KEY``.
Id: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")
