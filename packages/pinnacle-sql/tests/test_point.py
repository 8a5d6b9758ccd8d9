"""Point reads by plan and the schema cache of the ``sqlalchemy+sqlite`` databackend.

The backend caches schemas per process, trusted while SQLite's schema cookie (``PRAGMA
schema_version``, read in the query's own snapshot) is the one they were read at, and answers
``select(t, {col: v})`` / ``{col: {"$in": [...]}}`` by a plan on a sqlite3 connection. These
tests hold it to the generic path (same rows, same errors), to DDL of other processes (seen by
the very next call) and to other threads' write transactions (respected as before).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pinnacle_protocols.errors import FilterError, TableNotFound
from pinnacle_protocols.records import Schema
from pinnacle_protocols.tables import SCHEMAS_TABLE, schema_to_text
from pinnacle_protocols.testing.point import (
    SCHEMA,
    WARM,
    assert_point_paths_agree,
    point_rows,
    warm_point_plans,
)
from pinnacle_sql import SQLAlchemyDataBackend

pytestmark = pytest.mark.sqlite

WAIT = 10.0


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data.db"


@pytest.fixture
def opened(path: Path) -> Iterator[Callable[[str], Any]]:
    """``opened("file")``: a backend on ``path``; ``opened("memory")``: in memory; all are
    closed after the test."""
    made: list[Any] = []

    def open_(where: str) -> Any:
        rest = str(path) if where == "file" else ""
        made.append(SQLAlchemyDataBackend.from_uri(f"sqlalchemy+sqlite://{rest}"))
        return made[-1]

    yield open_
    for b in made:
        b.close()


@pytest.fixture(params=[pytest.param("file", marks=pytest.mark.file), "memory"])
def store(request: pytest.FixtureRequest, opened: Callable[[str], Any]) -> Any:
    return opened(request.param)


@pytest.fixture
def file_store(opened: Callable[[str], Any]) -> Any:
    return opened("file")


def _generic(store: Any, table: str, where: Any) -> Any:
    """``select`` the generic way (no plan), rows or the error's type and text."""
    store._point_reads = False
    try:
        return store.select(table, where)
    except Exception as exc:
        return type(exc).__name__, str(exc)
    finally:
        store._point_reads = True


def _either(store: Any, table: str, where: Any) -> Any:
    try:
        return store.select(table, where)
    except Exception as exc:
        return type(exc).__name__, str(exc)


def _walks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Count the generic path's filter compilations."""
    import pinnacle_sql.data as data

    walks: list[Any] = []
    compile_where = data._where_clause

    def counting(table: Any, schema: Any, where: Any) -> Any:
        walks.append(where)
        return compile_where(table, schema, where)

    monkeypatch.setattr(data, "_where_clause", counting)
    return walks


@pytest.mark.memory
def test_plan_and_generic_paths_agree(store: Any) -> None:
    store.create_table("t", SCHEMA)
    rows = point_rows()
    store.insert("t", rows)
    warm_point_plans(store)
    planned = {k for k, plan in store._plans.items() if plan is not None}
    # SQLAlchemy renders a bool compared with a column as a literal (no parameter): that
    # shape has no plan; a bool $in list has one
    assert planned == {
        ("t", column, n, type(value))
        for column, values in WARM.items()
        for value in values
        for n in (0, 2, 3, 4, 5)
    } - {("t", "b", 0, bool)}
    assert store._plans[("t", "b", 0, bool)] is None

    def set_point_reads(on: bool) -> None:
        store._point_reads = on

    assert_point_paths_agree(store, rows, set_point_reads)


@pytest.mark.memory
def test_repeated_point_reads_run_on_the_plan(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first call of a shape, neither the filter compiler nor SQLAlchemy runs."""
    store.create_table("t", Schema.of(id="int", x="float", s="str"))
    store.insert("t", [{"id": i, "x": i / 2, "s": f"r{i}"} for i in range(20)])
    walks = _walks(monkeypatch)
    assert store.select("t", {"id": 3}) == [{"id": 3, "x": 1.5, "s": "r3"}]
    assert store.select("t", {"s": {"$in": ["r1", "r2"]}})
    built = len(walks)
    assert built == 2
    for i in range(20):
        assert store.select("t", {"id": i}) == [{"id": i, "x": i / 2, "s": f"r{i}"}]
        assert store.select("t", {"s": {"$in": [f"r{i}", "none"]}}) == [
            {"id": i, "x": i / 2, "s": f"r{i}"}
        ]
    assert store.select("t", {"id": 99}) == []
    assert store.select("t", {"s": {"$in": ["x", "y"]}}) == []
    assert len(walks) == built
    # an operand the plan hands back, a projection: the generic way
    assert store.select("t", {"s": "r1\x00"}) == []
    assert store.select("t", {"id": 1}, columns=["id"]) == [{"id": 1}]
    assert len(walks) == built + 2
    with pytest.raises(FilterError, match="NaN"):
        store.select("t", {"x": float("nan")})


@pytest.mark.memory
@pytest.mark.parametrize("name", ["it's {x}", 'q"{}"', "a\nb"])
def test_plans_on_hostile_table_names(store: Any, name: str) -> None:
    """The plan names its table's schema row as a SQL string literal: quotes and braces."""
    store.create_table(name, Schema.of(id="int", v="str"))
    store.insert(name, [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}])
    for _ in range(2):
        assert store.select(name, {"id": 2}) == [{"id": 2, "v": "b"}]
        assert store.select(name, {"id": {"$in": [1, 3]}}) == [{"id": 1, "v": "a"}]
    assert store._plans[(name, "id", 0, int)] is not None
    assert store._plans[(name, "id", 2, int)] is not None


_RECREATE = """
import sys
from pinnacle_protocols.records import Schema
from pinnacle_sql import SQLAlchemyDataBackend
b = SQLAlchemyDataBackend.from_uri(sys.argv[1])
b.drop_table("t")
b.create_table("t", Schema.of(**dict(a.split("=") for a in sys.argv[2].split(","))))
b.insert("t", {rows})
b.close()
"""


def _recreate_elsewhere(path: Path, columns: str, rows: list[dict[str, Any]]) -> None:
    """Drop and re-create table ``t`` in another process (``columns``: ``name=type,...``)."""
    code = _RECREATE.format(rows=repr(rows))
    uri = f"sqlalchemy+sqlite://{path}"
    subprocess.run([sys.executable, "-c", code, uri, columns], check=True, timeout=120)


@pytest.mark.file
@pytest.mark.parametrize("point", [True, False], ids=["plan", "generic"])
def test_another_process_recreating_the_table_is_seen_at_once(
    path: Path, file_store: Any, point: bool
) -> None:
    """The cached process sees another process's new columns and types on its next call."""
    store = file_store
    store._point_reads = point
    store.create_table("t", Schema.of(id="int", x="float"))
    store.insert("t", [{"id": 1, "x": 0.5}, {"id": 2, "x": 7.0}])
    for _ in range(2):  # build, then use the plan / the cached schema
        assert store.select("t", {"id": 1}) == [{"id": 1, "x": 0.5}]
        assert store.select("t", {"x": {"$in": [0.5, 7.0]}}) == [
            {"id": 1, "x": 0.5},
            {"id": 2, "x": 7.0},
        ]
    # the filtered column keeps its name and type; another one changes type
    _recreate_elsewhere(path, "id=int,x=str", [{"id": 1, "x": "7"}])
    got = store.select("t", {"id": 1})
    assert got == [{"id": 1, "x": "7"}]
    assert type(got[0]["x"]) is str
    with pytest.raises(FilterError, match="column 'x' is str"):
        store.select("t", {"x": {"$in": [0.5, 7.0]}})
    assert store.select("t", {"x": {"$in": ["7", "8"]}}) == [{"id": 1, "x": "7"}]
    # the filtered column changes type: an int operand is now a FilterError
    _recreate_elsewhere(path, "id=str,y=bool", [{"id": "1", "y": True}])
    with pytest.raises(FilterError, match="column 'id' is str"):
        store.select("t", {"id": 1})
    assert store.select("t", {"id": "1"}) == [{"id": "1", "y": True}]
    assert store.table_schema("t") == Schema.of(id="str", y="bool")
    # same columns and types again: answers still follow the new table
    _recreate_elsewhere(path, "id=str,y=bool", [{"id": "1", "y": False}])
    assert store.select("t", {"id": "1"}) == [{"id": "1", "y": False}]
    assert store.count("t", {"id": "1"}) == 1


@pytest.mark.file
def test_foreign_ddl_is_seen_at_once(path: Path, file_store: Any) -> None:
    """A table of another SQLite client (derived schema) altered by it: the next call sees it."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("CREATE TABLE ext (id INTEGER, score REAL)")
    con.execute("INSERT INTO ext VALUES (1, 0.5)")
    for _ in range(2):
        assert file_store.select("ext", {"id": 1}) == [{"id": 1, "score": 0.5}]
    # no schema row: the plan checks the schema cookie
    assert type(file_store._plans[("ext", "id", 0, int)].version) is int
    con.execute("ALTER TABLE ext ADD COLUMN name TEXT")
    con.execute("UPDATE ext SET name = 'a'")
    assert file_store.select("ext", {"id": 1}) == [{"id": 1, "score": 0.5, "name": "a"}]
    con.execute("DROP TABLE ext")
    with pytest.raises(TableNotFound):
        file_store.select("ext", {"id": 1})
    con.execute("CREATE TABLE ext (id TEXT)")
    con.execute("INSERT INTO ext VALUES ('1')")
    with pytest.raises(FilterError, match="column 'id' is str"):
        file_store.select("ext", {"id": 1})
    assert file_store.select("ext", {"id": "1"}) == [{"id": "1"}]
    con.close()


@pytest.mark.file
@pytest.mark.parametrize("point", [True, False], ids=["plan", "generic"])
def test_another_connections_open_transaction_is_not_seen(
    path: Path, file_store: Any, point: bool
) -> None:
    """Uncommitted rows and DDL of another connection stay unseen, nothing blocks, and its
    COMMIT succeeds; after it the new table is seen."""
    store = file_store
    store._point_reads = point
    store.create_table("t", Schema.of(id="int", x="float"))
    store.insert("t", [{"id": 1, "x": 0.5}])
    assert store.select("t", {"id": 1}) == [{"id": 1, "x": 0.5}]
    con = sqlite3.connect(path, isolation_level=None, timeout=WAIT)
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO t VALUES (2, 1.5)")
    assert store.select("t", {"id": 2}) == []
    con.execute("DROP TABLE t")
    con.execute('CREATE TABLE t ("id" BIGINT, "x" TEXT)')
    con.execute(
        f"UPDATE {SCHEMAS_TABLE} SET schema = ? WHERE name = 't'",
        [schema_to_text(Schema.of(id="int", x="str"))],
    )
    con.execute("INSERT INTO t VALUES (1, 'new')")
    assert store.select("t", {"id": 1}) == [{"id": 1, "x": 0.5}]
    assert store.table_schema("t") == Schema.of(id="int", x="float")
    con.execute("COMMIT")
    con.close()
    assert store.select("t", {"id": 1}) == [{"id": 1, "x": "new"}]
    assert _generic(store, "t", {"id": 1}) == [{"id": 1, "x": "new"}]


@pytest.mark.parametrize("point", [True, False], ids=["plan", "generic"])
def test_a_write_transaction_of_another_thread_is_respected(store: Any, point: bool) -> None:
    """A select waits for this backend's write transaction in another thread, never sees its
    rows before COMMIT, and the transaction commits: as before plans."""
    store._point_reads = point
    store.create_table("t", Schema.of(id="int", x="float"))
    store.insert("t", [{"id": 1, "x": 0.5}])
    assert store.select("t", {"id": 2}) == []
    assert store.select("t", {"id": 2}) == []
    in_transaction, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with store._write("test", "t") as conn:
                conn.exec_driver_sql("INSERT INTO t VALUES (2, 1.5)")
                in_transaction.set()
                assert release.wait(WAIT)
        except BaseException as exc:
            errors.append(exc)

    got: list[Any] = []
    a = threading.Thread(target=writer)
    b = threading.Thread(target=lambda: got.append(store.select("t", {"id": 2})))
    a.start()
    try:
        assert in_transaction.wait(WAIT)
        b.start()
        b.join(0.3)
        assert b.is_alive(), "the select did not wait for the write transaction"
        assert got == []
    finally:
        release.set()
        a.join(WAIT)
        b.join(WAIT)
    assert errors == []
    assert got == [[{"id": 2, "x": 1.5}]]
    assert store.select("t", {"id": 2}) == [{"id": 2, "x": 1.5}]


@pytest.mark.file
def test_point_read_errors_are_translated_as_before(
    opened: Callable[[str], Any], file_store: Any
) -> None:
    """A table dropped by another backend, a closed backend: the generic path's typed errors."""
    store = file_store
    store.create_table("t", Schema.of(a="int"))
    store.insert("t", [{"a": 1}])
    assert [store.select("t", {"a": 1}) for _ in range(2)] == [[{"a": 1}]] * 2
    opened("file").drop_table("t")
    missing = _either(store, "t", {"a": 1})
    assert missing == _generic(store, "t", {"a": 1})
    assert missing[0] == "TableNotFound"
    store.create_table("t", Schema.of(a="int"))
    assert store.select("t", {"a": 1}) == []
    store.close()
    assert _either(store, "t", {"a": 1})[0] == "BackendUnavailable"


@pytest.mark.file
def test_schema_cookie_is_read_in_the_query_snapshot(file_store: Any) -> None:
    """A generic read is one read transaction: the cookie first, the table list and schema row
    only when it moved (here: the first time), then the query."""
    from sqlalchemy import event

    store = file_store
    store.create_table("t", Schema.of(a="int"))
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(store.engine, "before_cursor_execute", record)
    for _ in range(2):
        assert store.count("t") == 0
    first, second = seen[: len(seen) - 3], seen[len(seen) - 3 :]
    assert first[:2] == ["BEGIN DEFERRED", "PRAGMA schema_version"]
    assert any("sqlite_master" in s for s in first)
    assert any(SCHEMAS_TABLE in s for s in first)
    assert second[:2] == ["BEGIN DEFERRED", "PRAGMA schema_version"]
    assert second[2].startswith("SELECT count(*)"), second
