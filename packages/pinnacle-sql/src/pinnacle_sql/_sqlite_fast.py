"""SQLite's create_component hot path: the store's own Core statements, run on the DB-API cursor.

On SQLite a small statement costs the engine microseconds, while SQLAlchemy's per-execution
work (compiled-cache lookup, parameter processing, result set construction) costs ~0.15 ms.
``create_component`` runs four statements per record (``BEGIN IMMEDIATE``, the counter upsert,
the INSERT, ``COMMIT``), so that overhead, not SQLite, dominated its cost. Here the same Core
statements from :mod:`pinnacle_sql._sql` are compiled once for the engine's dialect and then
executed on the ``sqlite3`` cursor with the column types' own bind processors: one definition
of the SQL, no hand-written copy to drift from the schema.

Only the stdlib ``pysqlite`` driver takes this path; any other SQLite driver uses the Core path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from attrs import frozen
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

from pinnacle_sql._sql import Statements

__all__ = ["Prepared", "SQLiteCreate", "prepare_create"]

#: The components columns create_component writes, in INSERT order.
_COLUMNS = ("type_id", "identifier", "version", "record", "created_at", "content_hash")


_REQUIRED: Any = object()


@frozen
class Prepared:
    """One statement compiled for a qmark dialect: SQL text, parameter order, bind processors.

    ``defaults`` holds the values of literal binds (``next_version + 1``'s ``1``) and
    ``_REQUIRED`` for the parameters the caller must pass.
    """

    sql: str
    names: tuple[str, ...]
    defaults: tuple[Any, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def compile(
        cls, stmt: Executable, dialect: Dialect, column_keys: list[str] | None = None
    ) -> Prepared:
        """Compile ``stmt`` once; ``column_keys`` names the VALUES of a bare INSERT."""
        compiled = stmt.compile(dialect=dialect, column_keys=column_keys)  # type: ignore[attr-defined]
        if not isinstance(compiled, SQLCompiler) or dialect.paramstyle != "qmark":
            raise TypeError("the SQLite fast path needs a qmark SQL compiler")  # pragma: no cover
        names = tuple(compiled.positiontup or ())
        binds = [compiled.binds[name] for name in names]
        return cls(
            sql=compiled.string,
            names=names,
            defaults=tuple(_REQUIRED if b.required else b.effective_value for b in binds),
            processors=tuple(b.type.dialect_impl(dialect).bind_processor(dialect) for b in binds),
        )

    def params(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional parameters for ``values`` (keyed by bind name), processed."""
        out = []
        for name, default, proc in zip(self.names, self.defaults, self.processors, strict=True):
            value = values[name] if default is _REQUIRED else values.get(name, default)
            out.append(value if proc is None else proc(value))
        return tuple(out)


@frozen
class SQLiteCreate:
    """The statements of one create_component on SQLite, compiled."""

    alloc: Prepared  # t, i -> new counter value
    raise_floor: Prepared  # t, i, floor -> counter value
    insert_component: Prepared  # _COLUMNS
    insert_artifact: Prepared  # component_id, sha256
    latest_hash: Prepared  # t, i -> content_hash, record of the latest version

    def run(
        self,
        cursor: Any,
        row: Mapping[str, Any],
        *,
        tail: str,
        explicit: int | None,
        shas: list[str],
        on_conflict: Callable[[BaseException, int], BaseException],
        integrity_error: type[BaseException],
        on_unchanged: Callable[[str], BaseException] | None = None,
    ) -> int:
        """Allocate (or raise the counter for ``explicit``) and insert, in the open transaction.

        ``row`` holds type_id, identifier, created_at and content_hash; ``tail`` is the record
        JSON without its opening brace and version. Returns the version stored. With
        ``on_unchanged`` the latest version is read first (under the write lock that
        ``BEGIN IMMEDIATE`` took); if its content hash is ``row``'s, ``on_unchanged(record)``
        is raised and nothing is written.
        """
        key = {"t": row["type_id"], "i": row["identifier"]}
        if on_unchanged is not None:
            cursor.execute(self.latest_hash.sql, self.latest_hash.params(key))
            latest = cursor.fetchone()
            if latest is not None and latest[0] == row["content_hash"]:
                raise on_unchanged(str(latest[1]))
        if explicit is None:
            cursor.execute(self.alloc.sql, self.alloc.params(key))
            version = int(cursor.fetchone()[0]) - 1
        else:
            version = explicit
            floor = self.raise_floor
            cursor.execute(floor.sql, floor.params({**key, "floor": explicit + 1}))
            cursor.fetchall()
        values = {**row, "version": version, "record": f'{{"version":{version},{tail}'}
        try:
            cursor.execute(self.insert_component.sql, self.insert_component.params(values))
        except integrity_error as exc:
            raise on_conflict(exc, version) from exc
        if shas:
            component_id = cursor.lastrowid
            ins = self.insert_artifact
            cursor.executemany(
                ins.sql, [ins.params({"component_id": component_id, "sha256": s}) for s in shas]
            )
        return version


def prepare_create(sql: Statements, dialect: Dialect) -> SQLiteCreate:
    """Compile the create_component statements of ``sql`` for ``dialect`` (pysqlite)."""
    return SQLiteCreate(
        alloc=Prepared.compile(sql.alloc, dialect),
        raise_floor=Prepared.compile(sql.raise_floor, dialect),
        insert_component=Prepared.compile(sql.insert_component, dialect, list(_COLUMNS)),
        insert_artifact=Prepared.compile(sql.insert_artifacts, dialect, ["component_id", "sha256"]),
        latest_hash=Prepared.compile(sql.latest_hash_lock, dialect),
    )
