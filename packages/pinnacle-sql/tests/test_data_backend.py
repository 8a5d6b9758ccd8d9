"""SQLAlchemyDataBackend (``sqlalchemy+sqlite://``): the shared DataBackend contract on SQLite
files and in memory, plus what the contract does not cover (URIs, native access, storage)."""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pinnacle_protocols import ComponentRecord, Schema
from pinnacle_protocols.errors import (
    BackendUnavailable,
    ConfigError,
    FilterError,
    InvalidURIError,
    PinnacleError,
    SchemaError,
    TableExists,
    TableNotFound,
)
from pinnacle_protocols.testing import DataBackendContract
from pinnacle_protocols.uri import RedactedURI
from pinnacle_sql import SQLAlchemyDataBackend, SQLAlchemyMetadataStore

pytestmark = pytest.mark.sqlite


@pytest.mark.file
class TestSQLiteFile(DataBackendContract[SQLAlchemyDataBackend]):
    """A new SQLite file per store."""

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Callable[[], SQLAlchemyDataBackend]:
        counter = itertools.count()
        return lambda: SQLAlchemyDataBackend.from_uri(
            f"sqlalchemy+sqlite://{tmp_path}/db{next(counter)}.sqlite"
        )


@pytest.mark.memory
class TestSQLiteMemory(DataBackendContract[SQLAlchemyDataBackend]):
    """A new in-memory SQLite database per store."""

    @pytest.fixture
    def make_store(self) -> Callable[[], SQLAlchemyDataBackend]:
        return lambda: SQLAlchemyDataBackend.from_uri("sqlalchemy+sqlite://")


# ---------------------------------------------------------------------------- beyond the contract
_T = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data.db"


@pytest.fixture
def backend(db_path: Path) -> Iterator[SQLAlchemyDataBackend]:
    b = SQLAlchemyDataBackend.from_uri(f"sqlalchemy+sqlite://{db_path}")
    yield b
    b.close()


@pytest.mark.file
def test_uris(db_path: Path, backend: SQLAlchemyDataBackend) -> None:
    """The URI is shown as given; the default metadata URI is the same file as sqlite://."""
    assert str(backend.uri) == f"sqlalchemy+sqlite://{db_path}"
    assert backend.default_metadata_uri() == RedactedURI.parse(f"sqlite://{db_path}")
    assert backend.default_artifact_uri() is None
    memory = SQLAlchemyDataBackend.from_uri("sqlalchemy+sqlite://")
    assert memory.default_metadata_uri() == RedactedURI.parse("sqlite://")
    memory.close()


@pytest.mark.file
def test_relative_path_is_the_spec_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``sqlalchemy+sqlite://dir/x.db`` is relative to the working directory (directory made)."""
    monkeypatch.chdir(tmp_path)
    b = SQLAlchemyDataBackend.from_uri("sqlalchemy+sqlite://.state/x.db")
    b.create_table("t", Schema.of(x="int"))
    b.close()
    assert (tmp_path / ".state" / "x.db").is_file()
    assert b.uri.reveal() == "sqlalchemy+sqlite://.state/x.db"


def test_bad_uri_and_options() -> None:
    """Other schemes and unknown options are typed errors."""
    with pytest.raises(InvalidURIError, match="sqlalchemy\\+sqlite"):
        SQLAlchemyDataBackend.from_uri("duckdb://x.db")
    with pytest.raises(InvalidURIError):
        SQLAlchemyDataBackend.from_uri("no scheme")
    with pytest.raises(ConfigError, match="unknown option"):
        SQLAlchemyDataBackend.from_uri("sqlalchemy+sqlite://", nope=1)


@pytest.mark.file
def test_storage_is_plain_sqlite(db_path: Path, backend: SQLAlchemyDataBackend) -> None:
    """What another SQLite client sees: the documented storage of every portable type."""
    schema = Schema.of(i="int", f="float", s="str", b="bool", y="bytes", t="datetime", j="json",
                       v="vector")  # fmt: skip
    backend.create_table("t", schema)
    plus2 = _T.astimezone(timezone(timedelta(hours=2)))
    backend.insert(
        "t",
        [{"i": 1, "f": 2, "s": "é", "b": True, "y": b"\x00", "t": plus2, "j": {"a": [1, None]},
          "v": [1, 2.5]}],
    )  # fmt: skip
    con = sqlite3.connect(db_path)
    try:
        row = con.execute("SELECT i, f, s, b, y, t, j, v FROM t").fetchone()
        types = con.execute("SELECT name, type FROM pragma_table_info('t')").fetchall()
    finally:
        con.close()
    assert row == (1, 2.0, "é", 1, b"\x00", "2024-01-02 03:04:05.678000", '{"a":[1,null]}',
                   "[1.0,2.5]")  # fmt: skip
    assert [t for _, t in types] == [
        "BIGINT", "DOUBLE", "TEXT", "BOOLEAN", "BLOB", "TIMESTAMP", "TEXT", "TEXT"
    ]  # fmt: skip
    (got,) = backend.select("t")
    assert got["t"] == _T
    assert got["t"].tzinfo is UTC
    assert got["v"] == [1.0, 2.5]


@pytest.mark.file
def test_native_and_execute(backend: SQLAlchemyDataBackend) -> None:
    """native() is the typed sqlalchemy Table; execute() runs Core statements and SQL text."""
    backend.create_table("t", Schema.of(k="int", t="datetime", j="json"))
    backend.insert("t", [{"k": 1, "t": _T, "j": [1]}, {"k": 2}])
    table = backend.native("t")
    assert isinstance(table, sa.Table)
    rows = backend.execute(sa.select(table).where(table.c.k == 1))
    assert rows == [{"k": 1, "t": _T, "j": [1]}]
    assert backend.execute(sa.update(table).where(table.c.k == 2).values(j={"x": 1})) == []
    assert backend.select("t", {"k": 2}, columns=["j"]) == [{"j": {"x": 1}}]
    text = backend.execute('SELECT COUNT(*) AS n FROM "t" WHERE k > :k', {"k": 0})
    assert text == [{"n": 2}]
    with pytest.raises(FilterError):
        backend.execute({"table": "t"})
    with pytest.raises(TableNotFound):
        backend.native("nope")


@pytest.mark.file
def test_hostile_names(backend: SQLAlchemyDataBackend) -> None:
    """Quotes, keywords, SQL comments and non-ASCII are names like any other."""
    evil = 'x"; DROP TABLE t; --'
    columns = ['a"b', "select", "名前", "c d", "%(x)s", "?"]
    schema = Schema.of(**dict.fromkeys(columns, "str"))
    backend.create_table(evil, schema)
    backend.insert(evil, [dict.fromkeys(columns, "v")])
    assert backend.list_tables() == [evil]
    assert backend.count(evil, {'a"b': "v", "?": {"$ne": None}}) == 1
    assert backend.update(evil, {"%(x)s": "v"}, {"select": "w"}) == 1
    assert backend.select(evil, columns=["select"]) == [{"select": "w"}]
    assert backend.table_schema(evil) == schema


def test_reserved_and_case_insensitive_names() -> None:
    """_pinnacle* and sqlite_* are refused; SQLite table names ignore ASCII case."""
    b = SQLAlchemyDataBackend.from_uri("sqlalchemy+sqlite://")
    try:
        for name in ("_pinnacle_x", "sqlite_x", "SQLite_x", "", "a\x00b"):
            with pytest.raises(SchemaError):
                b.create_table(name, Schema.of(x="int"))
        b.create_table("Abc", Schema.of(x="int"))
        with pytest.raises(TableExists):
            b.create_table("aBC", Schema.of(x="int"))
        with pytest.raises(TableNotFound):
            b.count("_pinnacle_ibis_schemas")
    finally:
        b.close()


@pytest.mark.file
def test_another_process_sees_the_tables(db_path: Path, backend: SQLAlchemyDataBackend) -> None:
    """Two backends on one file: tables created, dropped and re-created by one are seen
    by the other (a cached schema is trusted only while the schema cookie is unchanged)."""
    other = SQLAlchemyDataBackend.from_uri(f"sqlalchemy+sqlite://{db_path}")
    try:
        backend.create_table("t", Schema.of(x="int"))
        backend.insert("t", [{"x": 1}])
        assert other.select("t") == [{"x": 1}]
        backend.drop_table("t")
        backend.create_table("t", Schema.of(x="str"))
        other.insert("t", [{"x": "now a string"}])
        assert backend.select("t") == [{"x": "now a string"}]
    finally:
        other.close()


@pytest.mark.file
def test_foreign_table_gets_a_derived_schema(db_path: Path, backend: SQLAlchemyDataBackend) -> None:
    """A table made by another SQLite client is listed and readable with a derived schema."""
    con = sqlite3.connect(db_path)
    con.execute("CREATE TABLE ext (id INTEGER NOT NULL, name VARCHAR(10), score REAL)")
    con.execute("INSERT INTO ext VALUES (1, 'a', 0.5)")
    con.commit()
    con.close()
    assert backend.list_tables() == ["ext"]
    assert backend.table_schema("ext").names == ("id", "name", "score")
    assert backend.select("ext", {"score": {"$gt": 0}}) == [{"id": 1, "name": "a", "score": 0.5}]


def test_closed_backend_is_unavailable() -> None:
    """After close() every call raises BackendUnavailable."""
    b = SQLAlchemyDataBackend.from_uri("sqlalchemy+sqlite://")
    b.close()
    with pytest.raises(BackendUnavailable):
        b.list_tables()


def test_import_is_light() -> None:
    """``import pinnacle_sql`` loads neither SQLAlchemy nor pyarrow (checked in a new process)."""
    code = (
        "import sys, pinnacle_sql; "
        "print(sorted(m for m in ('sqlalchemy', 'pyarrow') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.file
def test_metadata_store_in_the_same_file(backend: SQLAlchemyDataBackend) -> None:
    """The default metadata URI is this file: its tables are not user tables, drop keeps them."""
    uri = backend.default_metadata_uri()
    assert uri is not None
    md = SQLAlchemyMetadataStore.from_uri(uri)
    try:
        md.create_component(ComponentRecord(type_id="t", identifier="i"))
        backend.create_table("t", Schema.of(x="int"))
        assert backend.list_tables() == ["t"]
        backend.drop(force=True)
        assert backend.list_tables() == []
        assert md.get_component("t", "i").version == 0
    finally:
        md.close()


@pytest.mark.sqlite
@pytest.mark.parametrize("ctl", ["\x1c", "\x1d", "\x1e", "\x1f", "\x0b", "\x0c", "\x85"])
def test_in_filter_on_a_column_named_with_a_control_character(ctl: str) -> None:
    """``$in``/``$nin`` on a column whose name holds a character regex counts as whitespace
    (found by the state machine with the hard-name strategies): SQLAlchemy named the expanding
    IN parameter after the column and left its placeholder unexpanded (a syntax error)."""
    store = SQLAlchemyDataBackend.from_uri("sqlalchemy+sqlite://")
    col = f"a{ctl}b"
    store.create_table("t", Schema.of(**{"id": "int", col: "bool"}))
    store.insert("t", [{"id": 1, col: True}, {"id": 2, col: False}, {"id": 3, col: None}])
    assert store.count("t", {col: {"$in": [True, False]}}) == 2
    assert store.count("t", {col: {"$nin": [True, False]}}) == 1
    assert store.update("t", {col: {"$in": [False, True]}}, {col: None}) == 2
    assert store.count("t", {col: None}) == 3
    store.close()


def test_in_lists_of_datetimes_match(tmp_path: Path) -> None:
    """``$in``/``$nin`` with several datetimes are bound with the column's type: the expanding
    parameter had none, so its items skipped the datetime encoding and matched nothing (found
    by the CI state machine: a `$nin` of two datetimes kept the row it named)."""
    backend = SQLAlchemyDataBackend.from_uri(f"sqlite://{tmp_path / 'd.db'}")
    backend.create_table("t", Schema.of(k="int", d="datetime"))
    start = datetime(1970, 1, 1, tzinfo=UTC)
    backend.insert("t", [{"k": 0, "d": start}, {"k": 1, "d": start + timedelta(milliseconds=1)}])
    two = [start, start + timedelta(milliseconds=2)]
    assert backend.count("t", {"d": {"$in": two}}) == 1
    assert backend.count("t", {"d": {"$nin": two}}) == 1
    assert backend.count("t", {"d": {"$in": [*two, None]}}) == 1
    assert backend.update("t", {"d": {"$in": two}}, {"k": 5}) == 1
    assert backend.delete("t", {"d": {"$nin": [start + timedelta(milliseconds=1), None]}}) == 1
    backend.close()


_ALL = Schema.of(k="int", f="float", s="str", b="bool", y="bytes", t="datetime", j="json",
                 v="vector")  # fmt: skip
_GOOD = [
    {"k": 1, "f": 2, "s": "é", "b": True, "y": b"\x00", "t": _T.astimezone(UTC),
     "j": {"a": [1]}, "v": (1, 2.5)},
    {"k": 2, "t": _T.astimezone(timezone(timedelta(hours=-3)))},
]  # fmt: skip


@pytest.mark.file
def test_insert_checks_values_per_column_not_per_cell(
    backend: SQLAlchemyDataBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Valid dicts and Arrow tables are checked on Arrow (issue 16): no per-cell coerce_value."""
    pa = pytest.importorskip("pyarrow")
    import pinnacle_sql.data
    from pinnacle_protocols import arrow, records

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a value was checked cell by cell")

    for module in (pinnacle_sql.data, arrow, records):
        monkeypatch.setattr(module, "coerce_value", refuse)
    monkeypatch.setattr(arrow, "_exact_columns", refuse)
    backend.create_table("t", _ALL)
    assert backend.insert("t", _GOOD) == 2
    assert backend.insert("t", pa.Table.from_pylist([{"k": 3, "f": 0.5, "s": None}])) == 1
    monkeypatch.undo()
    rows = backend.select("t", order_by=["k"])
    assert rows[0] == {"k": 1, "f": 2.0, "s": "é", "b": True, "y": b"\x00", "t": _T,
                       "j": {"a": [1]}, "v": [1.0, 2.5]}  # fmt: skip
    assert rows[1] == {"k": 2, "t": _T} | dict.fromkeys(["f", "s", "b", "y", "j", "v"])
    assert rows[2]["f"] == 0.5
    assert rows[2]["s"] is None
    with sqlite3.connect(backend.uri.path) as raw:  # stored exactly as the Core types bind
        assert raw.execute("SELECT t, v, j, b FROM t WHERE k = 1").fetchone() == (
            "2024-01-02 03:04:05.678000",
            "[1.0,2.5]",
            '{"a":[1]}',
            1,
        )


@pytest.mark.file
def test_insert_feeds_the_driver_lazily_and_reports_its_errors_as_before(
    backend: SQLAlchemyDataBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows go to sqlite3's ``executemany`` as they are made (issue 16: no list of every
    row's tuple for SQLAlchemy); a driver error is still SQLAlchemy's, and nothing is written."""
    pa = pytest.importorskip("pyarrow")
    original = sa.engine.Connection.exec_driver_sql

    def single(self: sa.engine.Connection, sql: str, parameters: Any = None, **kw: Any) -> Any:
        assert not (isinstance(parameters, list) and len(parameters) > 1), "a list of rows"
        return original(self, sql, parameters, **kw)

    monkeypatch.setattr(sa.engine.Connection, "exec_driver_sql", single)
    backend.create_table("t", Schema.of(k="int", s="str"))
    assert backend.insert("t", [{"k": i, "s": str(i)} for i in range(3)]) == 3
    assert backend.insert("t", pa.table({"k": [3, 4], "s": ["3", None]})) == 2
    assert backend.create_index("t", ["k"], unique=True)
    for data in ([{"k": 9}, {"k": 1}], pa.table({"k": [9, 1]})):
        with pytest.raises(PinnacleError) as got:
            backend.insert("t", data)
        assert str(got.value).endswith(
            "insert on table 't' failed: IntegrityError: UNIQUE constraint failed: t.k"
        )
        assert isinstance(got.value.__cause__, sa.exc.IntegrityError)
    assert backend.count("t") == 5
    assert backend.select("t", {"k": 4}) == [{"k": 4, "s": None}]


@pytest.mark.file
@pytest.mark.parametrize("as_arrow", [False, True])
def test_insert_errors_name_the_first_bad_row_and_column(
    backend: SQLAlchemyDataBackend, as_arrow: bool
) -> None:
    """The error is the per-cell reference's (first bad row, then column); nothing is written."""
    from pinnacle_protocols import arrow

    backend.create_table("t", Schema.of(a="float", b="str"))
    rows = [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y\x00"}, {"a": float("nan"), "b": "z"}]
    with pytest.raises(SchemaError) as reference:
        arrow.coerce_rows(backend.table_schema("t"), rows, "t")
    pa = pytest.importorskip("pyarrow")
    data: Any = pa.Table.from_pylist(rows) if as_arrow else rows
    with pytest.raises(SchemaError) as got:
        backend.insert("t", data)
    assert str(got.value) == str(reference.value)
    assert "row 1" in str(got.value)
    assert backend.count("t") == 0
