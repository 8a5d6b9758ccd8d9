"""Construction, URIs, errors, native access and SQL safety of IbisDataBackend."""

from __future__ import annotations

import subprocess
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pytest

from pinnacle_ibis import IbisDataBackend
from pinnacle_ibis.engines import (
    DataFusionDataBackend,
    DuckDBDataBackend,
    MySQLDataBackend,
    PolarsDataBackend,
    PostgresDataBackend,
    SQLiteDataBackend,
)
from pinnacle_ibis.pandas_dir import PandasDataBackend, decode_table_name, encode_table_name
from pinnacle_ibis.spark import PySparkDataBackend
from pinnacle_protocols.errors import (
    BackendUnavailable,
    ConfigError,
    FilterError,
    PinnacleError,
    SchemaError,
    TableExists,
    TableNotFound,
    UnsupportedOperation,
)
from pinnacle_protocols.filters import evaluate
from pinnacle_protocols.protocols import DataBackend
from pinnacle_protocols.records import Schema

SQL_ENGINES = [
    pytest.param("duckdb", marks=pytest.mark.duckdb),
    pytest.param("sqlite", marks=pytest.mark.sqlite),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
    pytest.param("pandas", marks=pytest.mark.pandas),
]


# ------------------------------------------------------------------------ construction
@pytest.mark.parametrize(
    ("uri", "cls"),
    [
        ("duckdb://", DuckDBDataBackend),
        ("duckdb://data.db", DuckDBDataBackend),
        ("sqlite://", SQLiteDataBackend),
        ("postgres://u:pw@127.0.0.1/db", PostgresDataBackend),
        ("postgresql://u@127.0.0.1/db", PostgresDataBackend),
        ("mysql://root@127.0.0.1/db", MySQLDataBackend),
        ("mariadb://root@127.0.0.1/db", MySQLDataBackend),
        ("polars://", PolarsDataBackend),
        ("datafusion://", DataFusionDataBackend),
        ("pyspark://?database=x", PySparkDataBackend),
        ("pandas://./dir", PandasDataBackend),
        ("clickhouse://u:pw@127.0.0.1/db", IbisDataBackend),
        ("trino://u@127.0.0.1/cat/schema", IbisDataBackend),
    ],
)
def test_from_uri_picks_the_engine_class_without_connecting(uri: str, cls: type) -> None:
    """from_uri dispatches on the scheme and is lazy: no server is contacted."""
    store = IbisDataBackend.from_uri(uri)
    assert type(store) is cls
    assert isinstance(store, DataBackend)
    assert "pw" not in repr(store)
    assert "pw" not in str(store.uri)
    store.close()


def test_capability_flags_per_engine() -> None:
    """Flags are bool ClassVars: engines without UPDATE/DELETE say so."""
    for cls in (DuckDBDataBackend, SQLiteDataBackend, PostgresDataBackend, MySQLDataBackend,
                PandasDataBackend, IbisDataBackend):  # fmt: skip
        assert cls.supports_update is True
        assert cls.supports_delete is True
    for cls in (PolarsDataBackend, DataFusionDataBackend, PySparkDataBackend):
        assert cls.supports_update is False
        assert cls.supports_delete is False


def test_entry_points_cover_the_tested_schemes() -> None:
    """Every scheme has a pinnacle.databackends entry point naming the class of its engine (the
    facade's factory needs no second dispatch on the scheme) or IbisDataBackend, which agrees
    with what IbisDataBackend.from_uri picks."""
    from importlib.metadata import entry_points

    from pinnacle_ibis.backend import _ENGINES

    eps = {ep.name: ep for ep in entry_points(group="pinnacle.databackends")}
    for scheme in ("duckdb", "sqlite", "postgres", "postgresql", "mysql", "mariadb", "polars",
                   "datafusion", "pyspark", "pandas", "clickhouse", "bigquery", "snowflake",
                   "trino", "mssql", "oracle", "druid", "impala"):  # fmt: skip
        engine = _ENGINES.get(scheme)
        named = f"{engine.module}:{engine.cls}" if engine else "pinnacle_ibis:IbisDataBackend"
        assert eps[scheme].value == f"{named}.from_uri", scheme
    assert set(_ENGINES) <= set(eps)
    factory = eps["duckdb"].load()
    store = factory("duckdb://")
    assert type(store) is DuckDBDataBackend
    assert type(IbisDataBackend.from_uri("duckdb://")) is DuckDBDataBackend
    store.close()


def test_import_is_cheap() -> None:
    """Importing pinnacle_ibis loads neither ibis nor a driver nor pyarrow."""
    code = (
        "import sys, pinnacle_ibis, pinnacle_ibis.backend, pinnacle_ibis.filters; "
        "bad = [m for m in ('ibis', 'pyarrow', 'sqlglot', 'duckdb', 'psycopg', 'MySQLdb', "
        "'pandas', 'polars', 'pyspark', 'datafusion') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


#: Portable CRUD on a DuckDB file in a fresh process; prints the modules it loaded.
_DUCKDB_CRUD = """
import json, sys
from pinnacle_ibis import IbisDataBackend
from pinnacle_protocols.records import Schema

store = IbisDataBackend.from_uri(sys.argv[1])
store.create_table("t", Schema.of(id="int", name="str", x="float", t="datetime"))
store.insert("t", [{"id": i, "name": f"n{i}", "x": i / 2} for i in range(20)])
store.insert("t", [{"id": 99, "name": "one"}])
assert store.count("t", {"x": {"$gte": 5}}) == 10
assert store.select("t", {"id": 3})[0]["name"] == "n3"
assert [r["id"] for r in store.select("t", {"id": {"$in": [1, 2]}}, order_by=["id"])] == [1, 2]
assert len(store.select("t", columns=["id"], order_by=["id"], limit=5)) == 5
store.update("t", {"id": 3}, {"name": "three"})
store.delete("t", {"id": {"$lt": 2}})
assert store.select("t", {"name": "three"})[0]["id"] == 3
assert store.list_tables() == ["t"]
assert store.select_arrow("t", {"id": 99}).num_rows == 1
con = store._dbapi
settings = dict(con.execute(
    "SELECT name, value FROM duckdb_settings() "
    "WHERE name IN ('TimeZone', 'python_enable_replacements')"
).fetchall())
print(json.dumps({"ibis": sorted(m for m in sys.modules if m.split(".")[0] == "ibis"),
                  "settings": settings}))
"""


@pytest.mark.duckdb
def test_duckdb_crud_runs_without_ibis(tmp_path: Path) -> None:
    """Portable CRUD on DuckDB runs on DuckDB's own connection: ibis (its import loads every
    dialect's compiler, ~0.2 s of CPU) is not imported; the connection is set up as ibis sets
    it up (UTC, no replacement scans of Python variables)."""
    import json

    for uri in (f"duckdb://{tmp_path / 'x.duckdb'}", "duckdb://"):
        out = subprocess.run(
            [sys.executable, "-c", _DUCKDB_CRUD, uri], capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout.strip().splitlines()[-1])
        assert report["ibis"] == [], uri
        assert report["settings"] == {"TimeZone": "UTC", "python_enable_replacements": "false"}


@pytest.mark.duckdb
def test_duckdb_builds_ibis_on_its_own_connection(tmp_path: Path) -> None:
    """The ibis backend, built when an ibis expression is needed, wraps the connection the
    CRUD calls used: an in-memory database's rows are seen by both, and close() closes it."""
    store = DuckDBDataBackend.from_uri("duckdb://")
    assert isinstance(store, DuckDBDataBackend)
    store.create_table("t", Schema.of(a="int"))
    store.insert("t", [{"a": 1}, {"a": 2}])
    raw = store._dbapi
    assert store._con is None  # no ibis backend yet
    assert store.native("t").count().execute() == 2
    assert store.connection.con is raw
    assert store.count("t", {"a": {"$in": list(range(40_000))}}) == 2  # the ibis-compiled way
    store.insert("t", [{"a": 3}])
    assert store.native("t").a.sum().execute() == 6
    store.close()
    with pytest.raises(BackendUnavailable):
        store.count("t")
    with pytest.raises(duckdb_error()):
        raw.execute("SELECT 1")


def duckdb_error() -> type[Exception]:
    import duckdb

    return duckdb.Error


@pytest.mark.duckdb
def test_duckdb_options_and_read_only(tmp_path: Path) -> None:
    """``read_only`` opens DuckDB's connection directly; other options go through ibis as
    before (``threads`` is a DuckDB setting ibis passes on)."""
    path = tmp_path / "x.duckdb"
    store = IbisDataBackend.from_uri(f"duckdb://{path}")
    store.create_table("t", Schema.of(a="int"))
    store.insert("t", [{"a": 1}])
    store.close()
    reader = DuckDBDataBackend.from_uri(f"duckdb://{path}", read_only=True)
    assert isinstance(reader, DuckDBDataBackend)
    assert reader.select("t") == [{"a": 1}]
    assert reader._con is None  # no ibis backend: DuckDB's connection, opened read-only
    assert reader._raw is not None
    with pytest.raises(PinnacleError, match="read-only"):
        reader.insert("t", [{"a": 2}])
    reader.close()
    tuned = DuckDBDataBackend.from_uri(f"duckdb://{path}", threads=1)
    assert isinstance(tuned, DuckDBDataBackend)
    assert tuned.select("t") == [{"a": 1}]
    assert tuned._con is not None  # ibis connected it
    assert tuned._dbapi.execute("SELECT current_setting('threads')").fetchone() == (1,)
    tuned.close()


def test_default_uris(tmp_path: Path) -> None:
    """Metadata goes to the same database where pinnacle-sql can hold it; artifacts never."""
    for uri in ("sqlite://x.db", "postgres://u:secret@h/db", "mysql://r@h/d",
                "mariadb://r@h/d"):  # fmt: skip
        store = IbisDataBackend.from_uri(uri)
        assert store.default_metadata_uri() is store.uri
        assert store.default_artifact_uri() is None
    # duckdb: not by default (one process per DuckDB file); the facade falls back to SQLite.
    for uri in ("duckdb://", "polars://", "datafusion://", f"pandas://{tmp_path}", "pyspark://",
                "clickhouse://h/db"):  # fmt: skip
        store = IbisDataBackend.from_uri(uri)
        assert store.default_metadata_uri() is None
        assert store.default_artifact_uri() is None


def test_password_never_in_messages() -> None:
    """A connection failure names the redacted URI; the password appears nowhere.

    Where the engine's Python driver is not installed (the install-alone venv has no psycopg
    or mysqlclient) the error is the ConfigError with the pip line: the same rule holds."""
    secret = "s3cr3t-Pa55"
    for uri in (f"postgres://postgres:{secret}@127.0.0.1:1/test",
                f"mysql://root:{secret}@127.0.0.1:1/test"):  # fmt: skip
        store = IbisDataBackend.from_uri(uri)
        assert secret not in repr(store)
        with pytest.raises((BackendUnavailable, ConfigError)) as info:
            store.list_tables()
        text = "".join(traceback.format_exception(info.value))
        assert secret not in text
        assert "***" in str(info.value)


@pytest.mark.duckdb
def test_closed_backend_refuses(fresh: Callable[[str], IbisDataBackend]) -> None:
    """After close() every call raises BackendUnavailable; close() twice is fine."""
    store = fresh("duckdb")
    store.create_table("t", Schema.of(a="int"))
    store.close()
    store.close()
    with pytest.raises(BackendUnavailable):
        store.list_tables()
    with pytest.raises(BackendUnavailable):
        store.select("t")


@pytest.mark.duckdb
def test_from_connection_leaves_the_connection_open() -> None:
    """A borrowed ibis connection is not closed by close()."""
    con = ibis.duckdb.connect()
    store = IbisDataBackend.from_connection(con)
    assert type(store) is DuckDBDataBackend
    store.create_table("t", Schema.of(a="int"))
    store.insert("t", [{"a": 1}])
    store.close()
    assert con.table("t").count().execute() == 1


# ------------------------------------------------------------------------ native access
ALL_BUT_SPARK = [
    *SQL_ENGINES,
    pytest.param("polars", marks=pytest.mark.polars),
    pytest.param("datafusion", marks=pytest.mark.datafusion),
]


@pytest.mark.parametrize("engine", ALL_BUT_SPARK)
def test_native_and_execute(engine: str, fresh: Callable[[str], IbisDataBackend]) -> None:
    """native() is an ibis table; execute() runs any expression, Arrow or rows."""
    store = fresh(engine)
    store.create_table("people", Schema.of(name="str", age="int", t="datetime"))
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    store.insert("people", [{"name": "ann", "age": 30, "t": t0}, {"name": "bob", "age": 20},
                            {"name": "cy", "age": None}])  # fmt: skip
    t = store.native("people")
    assert isinstance(t, ibis.expr.types.Table)
    expr = t.filter(t.age > 25).select("name", "age")
    table = store.execute(expr)
    assert isinstance(table, pa.Table)
    assert table.to_pylist() == [{"name": "ann", "age": 30}]
    assert store.execute(t.age.sum()).as_py() == 50
    assert store.execute(t.age.sum(), rows=True) == 50
    assert sorted(store.execute(t.name, rows=True)) == ["ann", "bob", "cy"]
    assert store.execute(t.count(), rows=True) == 3
    with pytest.raises(FilterError):
        store.execute("SELECT 1")
    with pytest.raises(TableNotFound):
        store.native("nope")


@pytest.mark.parametrize("engine", SQL_ENGINES)
def test_raw_sql_with_parameters(engine: str, fresh: Callable[[str], IbisDataBackend]) -> None:
    """raw_sql runs SQL text; values travel as driver parameters."""
    store = fresh(engine)
    store.create_table("t", Schema.of(s="str"))
    store.insert("t", [{"s": "it's 100%"}, {"s": "x"}])
    mark = "%s" if engine in ("postgres", "mariadb") else "?"
    quote = "`" if engine == "mariadb" else '"'
    col, table = f"{quote}s{quote}", f"{quote}t{quote}"
    rows = store.raw_sql(f"SELECT {col} FROM {table} WHERE {col} = {mark}", ["it's 100%"])
    assert rows == [("it's 100%",)]
    assert store.raw_sql("SELECT 1") == [(1,)]


@pytest.mark.datafusion
def test_raw_sql_without_parameters_elsewhere(fresh: Callable[[str], IbisDataBackend]) -> None:
    """Engines without driver parameters refuse them instead of splicing values."""
    store = fresh("datafusion")
    assert store.raw_sql("SELECT 1 AS x") == [(1,)]
    with pytest.raises(UnsupportedOperation):
        store.raw_sql("SELECT ?", [1])


# ------------------------------------------------------------------------ names and values
HOSTILE_NAMES = ["select", 'say "hi"', "it's", "a b", "semi;colon", "名前", "Ωmega größe",
                 "x`y", "' OR 1=1 --", "%s", "table", "user", "order by"]  # fmt: skip
HOSTILE_VALUES = ["'; DROP TABLE t; --", "\\'", "\\", "%s", "%(x)s", "?", "$1", "\" OR \"1\"=\"1",
                  "`", "\u2019", "😀", "a\nb", "__pinnacle_param_0__"]  # fmt: skip


@pytest.mark.parametrize(
    "engine",
    [
        *SQL_ENGINES,
        pytest.param("polars", marks=pytest.mark.polars),
        pytest.param("datafusion", marks=pytest.mark.datafusion),
    ],
)
def test_hostile_names_and_values(engine: str, fresh: Callable[[str], IbisDataBackend]) -> None:
    """Names with quotes, spaces, keywords and Unicode work; values are never spliced."""
    store = fresh(engine)
    schema = Schema.of(**dict.fromkeys(HOSTILE_NAMES, "str"))
    for name in HOSTILE_NAMES:
        store.create_table(name, schema)
    assert store.list_tables() == sorted(HOSTILE_NAMES)
    table = HOSTILE_NAMES[0]
    rows = [dict.fromkeys(HOSTILE_NAMES, v) for v in HOSTILE_VALUES]
    assert store.insert(table, rows) == len(rows)
    for value in HOSTILE_VALUES:
        for col in ("it's", "x`y", "%s"):
            assert store.count(table, {col: value}) == 1, (col, value)
            assert store.count(table, {col: {"$in": [value, "zzz"]}}) == 1
    if type(store).supports_update:
        for value in HOSTILE_VALUES:
            assert store.update(table, {"a b": value}, {"名前": value + "!"}) == 1
            assert store.count(table, {"名前": value + "!"}) == 1
    if type(store).supports_delete:
        assert store.delete(table, {"order by": HOSTILE_VALUES[0]}) == 1
        assert store.count(table) == len(HOSTILE_VALUES) - 1
    for name in HOSTILE_NAMES:
        store.drop_table(name)
    assert store.list_tables() == []


@pytest.mark.parametrize("engine", SQL_ENGINES)
def test_table_outside_pinnacle(engine: str, fresh: Callable[[str], IbisDataBackend]) -> None:
    """A table created outside this package is listed, readable, and blocks create_table."""
    store = fresh(engine)
    if engine == "pandas":
        import pyarrow.parquet as pq

        assert isinstance(store, PandasDataBackend)
        store.directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"a": [1, 2]}), store.directory / "plain.parquet")
    else:
        quote = "`" if engine == "mariadb" else '"'
        store.raw_sql(f"CREATE TABLE {quote}plain{quote} (a BIGINT)")
        store.raw_sql(f"INSERT INTO {quote}plain{quote} VALUES (1), (2)")
    assert store.list_tables() == ["plain"]
    assert store.table_schema("plain") == Schema.of(a="int")
    assert store.count("plain", {"a": {"$gt": 1}}) == 1
    with pytest.raises(TableExists):
        store.create_table("plain", Schema.of(b="str"))


@pytest.mark.duckdb
def test_reserved_and_invalid_names(fresh: Callable[[str], IbisDataBackend]) -> None:
    """The _pinnacle prefix is reserved and never listed; engine limits give SchemaError."""
    store = fresh("duckdb")
    with pytest.raises(SchemaError):
        store.create_table("_pinnacle_x", Schema.of(a="int"))
    with pytest.raises(SchemaError):
        store.create_table("", Schema.of(a="int"))
    store.create_table("t", Schema.of(a="int"))
    assert store.list_tables() == ["t"]
    with pytest.raises(TableNotFound):
        store.select("_pinnacle_ibis_schemas")
    with pytest.raises(TableNotFound):
        store.drop_table("_pinnacle_ibis_schemas")


@pytest.mark.mariadb
@pytest.mark.parametrize("space", [" ", "\t", "\n", "\x0b", "\x0c", "\r"])
def test_mysql_trailing_whitespace_in_names(
    space: str, fresh: Callable[[str], IbisDataBackend]
) -> None:
    """MySQL rejects names ending in any ASCII whitespace: a SchemaError, not a driver error."""
    store = fresh("mariadb")
    with pytest.raises(SchemaError, match="trailing whitespace"):
        store.create_table("t" + space, Schema.of(a="int"))
    with pytest.raises(SchemaError, match="trailing whitespace"):
        store.create_table("t", Schema.of(**{"a" + space: "int"}))
    store.create_table("t" + space + "x", Schema.of(**{"a" + space + "b": "int"}))
    assert store.list_tables() == ["t" + space + "x"]


@pytest.mark.mariadb
def test_mysql_value_over_max_allowed_packet(fresh: Callable[[str], IbisDataBackend]) -> None:
    """A value over the server's max_allowed_packet is a SchemaError naming the limit, not
    "connection lost" (issue 15 item 11), for insert and update, of str and bytes; nothing is
    written and the backend goes on working. A value whose escaping doubles it past the limit
    (quotes) is caught from the server's own error 1153."""
    store = fresh("mariadb")
    store.create_table("t", Schema.of(id="int", s="str", b="bytes"))
    limit = int(store._raw_sql("SELECT @@max_allowed_packet", None)[0][0])
    big = limit + 1
    with pytest.raises(SchemaError, match="max_allowed_packet") as info:
        store.insert("t", [{"id": 1, "s": "x" * big}])
    assert "column 's'" in str(info.value)
    with pytest.raises(SchemaError, match="max_allowed_packet"):
        store.insert("t", [{"id": 1, "b": b"x" * big}])
    assert store.count("t") == 0
    store.insert("t", [{"id": 1, "s": "small"}])
    with pytest.raises(SchemaError, match="max_allowed_packet"):
        store.update("t", {"id": 1}, {"s": "y" * big})
    with pytest.raises(SchemaError, match="max_allowed_packet"):
        store.insert("t", [{"id": 2, "b": b"'" * (limit * 3 // 4)}])  # escaped to 1.5x
    assert store.select("t", columns=["id", "s"]) == [{"id": 1, "s": "small"}]


@pytest.mark.mariadb
def test_mysql_packet_check_of_small_rows_is_per_column(
    fresh: Callable[[str], IbisDataBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows that cannot come near max_allowed_packet (a bound from each column's longest
    value, under half the limit) are not measured cell by cell in Python (that loop was a
    quarter of a 100,000-row insert's client time); one that can still is, and a row over the
    limit is still refused by name. The rows are stored as given."""
    import pinnacle_ibis.engines as engines

    calls = 0
    measure = engines._value_bytes

    def counted(value: Any) -> int:
        nonlocal calls
        calls += 1
        return measure(value)

    monkeypatch.setattr(engines, "_value_bytes", counted)
    store = fresh("mariadb")
    store.create_table("t", Schema.of(id="int", x="float", s="str", b="bytes", d="datetime"))
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    rows: list[dict[str, Any]] = [
        {"id": i, "x": i / 4, "s": f"r{i}é" if i % 3 else None, "b": b"\x00'" * (i % 5), "d": when}
        for i in range(1000)
    ]
    store.insert("t", rows)
    assert calls == 0
    stored = sorted(store.select("t"), key=lambda r: r["id"])
    assert stored == rows
    limit = int(store._raw_sql("SELECT @@max_allowed_packet", None)[0][0])
    with pytest.raises(SchemaError, match=r"row 1 .*column 's'.*max_allowed_packet"):
        store.insert("t", [{"id": 1, "s": "small"}, {"id": 2, "s": "x" * (limit + 1)}])
    assert calls > 0
    assert store.count("t") == 1000


UPDATABLE = [*SQL_ENGINES, pytest.param("generic_duckdb", marks=pytest.mark.duckdb)]


@pytest.mark.parametrize("engine", UPDATABLE)
def test_update_vectors_where_null(engine: str, fresh: Callable[[str], IbisDataBackend]) -> None:
    """Updates of a vector column filtered on NULL (vector or other columns) follow evaluate()."""
    store = fresh(engine)
    schema = Schema.of(k="int", v="vector", j="json", n="int")
    store.create_table("t", schema)
    model: list[dict[str, Any]] = [
        {"k": 0, "v": [1.5, -0.0], "j": None, "n": None},
        {"k": 1, "v": None, "j": [None], "n": 3},
        {"k": 2, "v": None, "j": None, "n": None},
        {"k": 3, "v": [2.0**31], "j": {"a": None}, "n": 0},
    ]
    store.insert("t", [dict(r) for r in model])
    steps: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"v": None}, {"v": [0.25, 1e30]}),
        ({"n": None}, {"v": None}),
        ({"j": None}, {"v": [3.0], "n": None}),
        ({"v": {"$ne": None}}, {"v": None, "j": None}),
        ({"v": {"$exists": False}, "n": None}, {"v": [1.1754943508222875e-38]}),
        ({"$or": [{"v": None}, {"j": {"$exists": True}}]}, {"v": [-2.5]}),
        ({"v": {"$not": {"$eq": None}}}, {"v": None}),
    ]
    for where, values in steps:
        expected = [r for r in model if evaluate(where, r)]
        assert store.count("t", where) == len(expected), where
        assert store.update("t", where, values) == len(expected), where
        for r in expected:
            r.update(values)
        got = sorted(store.select("t"), key=lambda r: r["k"])
        assert got == model, (where, values)
        for column in ("v", "j", "n"):
            for cond in (None, {"$ne": None}):
                want = sum(evaluate({column: cond}, r) for r in model)
                assert store.count("t", {column: cond}) == want, (where, column, cond)


@pytest.mark.postgres
def test_postgres_name_limit(fresh: Callable[[str], IbisDataBackend]) -> None:
    """PostgreSQL would truncate names over 63 bytes silently; we refuse them."""
    store = fresh("postgres")
    with pytest.raises(SchemaError):
        store.create_table("x" * 64, Schema.of(a="int"))
    with pytest.raises(SchemaError):
        store.create_table("t", Schema.of(**{"é" * 32: "int"}))
    store.create_table("x" * 63, Schema.of(a="int"))


@pytest.mark.duckdb
def test_dropped_by_someone_else(tmp_path: Path) -> None:
    """A table dropped through another backend instance is TableNotFound, not a crash."""
    uri = f"duckdb://{tmp_path / 'shared.db'}"
    a = IbisDataBackend.from_uri(uri)
    a.create_table("t", Schema.of(a="int"))
    a.insert("t", [{"a": 1}])
    assert a.count("t") == 1
    b = IbisDataBackend.from_uri(uri)
    assert b.list_tables() == ["t"]
    assert b.table_schema("t") == Schema.of(a="int")
    b.drop_table("t")
    with pytest.raises(TableNotFound):
        a.count("t")  # a's cached schema is stale: noticed, not a crash
    b.create_table("t", Schema.of(s="str"))
    assert a.table_schema("t") == Schema.of(s="str")
    with pytest.raises(TableExists):
        a.create_table("t", Schema.of(s="str"))
    b.drop_table("t")
    a.create_table("t", Schema.of(x="float"))  # a notices the drop before refusing
    assert b.table_schema("t") == Schema.of(x="float")
    a.close()
    b.close()


@pytest.mark.duckdb
def test_engine_errors_are_chained(fresh: Callable[[str], IbisDataBackend]) -> None:
    """An engine failure surfaces as a PinnacleError naming the store, chaining the cause."""
    store = fresh("duckdb")
    with pytest.raises(PinnacleError) as info:
        store.raw_sql("SELECT * FROM nowhere_at_all")
    assert "duckdb://" in str(info.value)
    assert info.value.__cause__ is not None


# ------------------------------------------------------------------------ pandas names
@pytest.mark.parametrize(
    "name", ["plain", "a/b", "..", ".hidden", "100%", "back\\slash", "tab\tx", "名前", " lead"]
)
def test_pandas_file_names_round_trip(name: str) -> None:
    """Table names map to safe, reversible file names."""
    encoded = encode_table_name(name)
    assert "/" not in encoded
    assert "\\" not in encoded
    assert not encoded.startswith(".")
    assert decode_table_name(encoded) == name


@pytest.mark.datafusion
def test_datafusion_limit_with_quoted_column(fresh: Callable[[str], IbisDataBackend]) -> None:
    """DataFusion 51 loses LIMIT under a projection of a column named with an apostrophe."""
    store = fresh("datafusion")
    store.create_table("t", Schema.of(**{"it's": "int", "b": "int"}))
    store.insert("t", [{"b": 0}, {"b": 0}, {"b": 1}])
    assert len(store.select("t", columns=["it's", "b"], limit=1)) == 1
    assert len(store.select("t", {"b": 0}, columns=["it's"], limit=1, order_by=["b"])) == 1


@pytest.mark.duckdb
def test_duckdb_single_row_insert_is_bound(fresh: Callable[[str], IbisDataBackend]) -> None:
    """A one-row insert binds its values to a cached statement (no Arrow view per row) and
    stores every type as the Arrow way does."""
    store = fresh("duckdb")
    assert isinstance(store, DuckDBDataBackend)
    schema = Schema.of(
        k="int", f="float", s="str", b="bool", y="bytes", t="datetime", j="json", v="vector"
    )
    store.create_table("one", schema)
    store.create_table("many", schema)
    rows: list[dict[str, Any]] = [
        {
            "k": 2**62,
            "f": -0.5,
            "s": "a'\"\\é",
            "b": True,
            "y": b"\x00\xff",
            "t": datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC),
            "j": {"a": [1, None, "x"]},
            "v": [1.5, -0.0, 1e300],
        },
        dict.fromkeys(schema.names),
        {"k": 3, "f": 2, "s": "", "b": False, "y": b"", "t": None, "j": "text", "v": []},
    ]
    hits = store._statements.hits
    for row in rows:
        assert store.insert("one", [row]) == 1
    assert store._statements.hits >= hits + len(rows) - 1  # rendered once, then reused
    store.insert("many", rows)  # several rows: the Arrow way
    assert sorted(store.select("one"), key=repr) == sorted(store.select("many"), key=repr)
    assert len(store.select("one")) == 3
    with pytest.raises(SchemaError):
        store.insert("one", [{"k": "not an int"}])
    assert store.count("one") == 3


@pytest.mark.duckdb
def test_duckdb_insert_many_is_one_transaction(fresh: Callable[[str], IbisDataBackend]) -> None:
    """insert_many writes every table or none (SupportsInsertMany)."""
    from pinnacle_protocols.protocols import SupportsInsertMany

    store = fresh("duckdb")
    assert isinstance(store, SupportsInsertMany)
    store.create_table("a", Schema.of(id="int", x="float"))
    store.create_table("b", Schema.of(id="str", j="json"))
    row_b: dict[str, Any] = {"id": "1", "j": {"k": [1]}}
    assert store.insert_many([("a", [{"id": 1, "x": 0.5}]), ("b", [row_b])]) == [1, 1]
    two: list[dict[str, Any]] = [{"id": 2, "x": 1.0}, {"id": 3, "x": None}]
    assert store.insert_many([("a", two), ("b", [])]) == [2, 0]
    with pytest.raises(TableNotFound):
        store.insert_many([("a", [{"id": 4, "x": 0.0}]), ("gone", [{"id": 4}])])
    with pytest.raises(SchemaError):
        store.insert_many([("a", [{"id": 5, "x": 0.0}]), ("b", [{"id": 5}])])
    store.create_table("c", Schema.of(id="int"))
    store.raw_sql("DROP TABLE c")  # dropped behind the schema cache: fails inside the write
    with pytest.raises(PinnacleError, match="'c'"):
        store.insert_many([("a", [{"id": 6, "x": 0.0}]), ("c", [{"id": 6}])])
    assert sorted(r["id"] for r in store.select("a")) == [1, 2, 3]
    assert store.select("b") == [row_b]
    assert store.insert_many([("a", [{"id": 7, "x": 7.0}])]) == [1]  # usable afterwards
    assert store.count("a") == 4


@pytest.mark.parametrize(
    "engine",
    [
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_dicts_reach_executemany_engines_without_an_arrow_table(
    fresh: Callable[[str], IbisDataBackend], engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On engines written with Python tuples, dicts are checked per column (coerce_columns)
    and their Python values go to the driver: no canonical Arrow table to turn back into
    Python values (issue 16), and every type is stored as through Arrow."""
    import pinnacle_ibis.backend

    store = fresh(engine)
    schema = Schema.of(
        k="int", f="float", s="str", b="bool", y="bytes", t="datetime", j="json", v="vector"
    )
    store.create_table("py", schema)
    t = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    rows: list[dict[str, Any]] = [
        {"k": 1, "f": 2, "s": "é", "b": True, "y": b"\x00a", "t": t, "j": {"a": [1]},
         "v": (1, 2.5)},
        {"k": 2, "b": False},
    ]  # fmt: skip
    with monkeypatch.context() as patched:

        def refuse(*_: object, **__: object) -> None:
            raise AssertionError("the dicts went through a canonical Arrow table")

        patched.setattr(pinnacle_ibis.backend, "canonical_table", refuse)
        assert store.insert("py", rows) == 2
    assert store.select("py", order_by=["k"]) == [
        {"k": 1, "f": 2.0, "s": "é", "b": True, "y": b"\x00a", "t": t, "j": {"a": [1]},
         "v": [1.0, 2.5]},
        {"k": 2, "f": None, "s": None, "b": False, "y": None, "t": None, "j": None, "v": None},
    ]  # fmt: skip


@pytest.mark.parametrize(
    "engine",
    [
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_arrow_reaches_executemany_engines_without_a_canonical_table(
    fresh: Callable[[str], IbisDataBackend], engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Valid Arrow data goes to the driver as its Python values, converted once per column
    (issue 16: no canonical table in between); invalid data is rejected by
    ``canonical_table``, with its error (first bad column, then row), and nothing is written."""
    import pinnacle_ibis.backend
    from pinnacle_protocols.arrow import canonical_table

    store = fresh(engine)
    schema = Schema.of(
        k="int", f="float", s="str", b="bool", y="bytes", t="datetime", j="json", v="vector"
    )
    store.create_table("py", schema)
    t = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    table = pa.table(
        {
            "k": pa.array([1, 2], type=pa.int32()),
            "f": pa.array([2, None], type=pa.int64()),
            "s": pa.array(["é", None], type=pa.large_string()),
            "b": [True, False],
            "y": pa.array([b"\x00a", None], type=pa.large_binary()),
            "t": pa.array([t, None], type=pa.timestamp("ms", tz="Europe/Paris")),
            "j": ["text", None],
            "v": pa.array([[1, 2], None], type=pa.list_(pa.int64())),
        }
    )
    with monkeypatch.context() as patched:

        def refuse(*_: object, **__: object) -> None:
            raise AssertionError("the Arrow data went through a canonical Arrow table")

        patched.setattr(pinnacle_ibis.backend, "canonical_table", refuse)
        assert store.insert("py", table) == 2
        assert store.insert("py", table.select(["k"]).slice(0, 0)) == 0
    assert store.select("py", order_by=["k"]) == [
        {"k": 1, "f": 2.0, "s": "é", "b": True, "y": b"\x00a", "t": t, "j": "text",
         "v": [1.0, 2.0]},
        {"k": 2, "f": None, "s": None, "b": False, "y": None, "t": None, "j": None, "v": None},
    ]  # fmt: skip
    bad = pa.table({"k": [3, 4], "f": [1.0, float("nan")], "s": ["x\x00", "y"]})
    with pytest.raises(SchemaError) as want:
        canonical_table(schema, bad, "py")
    with pytest.raises(SchemaError) as got:
        store.insert("py", bad)
    assert str(got.value) == str(want.value)
    assert "row 1" in str(got.value)  # the float column's NaN, before the later column's NUL
    unknown = pa.table({"k": [5], "zz": [1]})
    with pytest.raises(SchemaError) as want:
        canonical_table(schema, unknown, "py")
    with pytest.raises(SchemaError) as got:
        store.insert("py", unknown)
    assert str(got.value) == str(want.value)
    assert store.count("py") == 2


@pytest.mark.parametrize("where", ["file", "memory"])
def test_sqlite_backend_is_usable_from_another_thread(tmp_path: Path, where: str) -> None:
    """A SQLite backend made in one thread works in another (its calls are serialised on one
    connection, as the README says). ibis opens SQLite with ``check_same_thread=True``, so
    before the connection was reopened every call from a second thread failed with "SQLite
    objects created in a thread can only be used in that same thread"."""
    import threading

    uri = f"sqlite://{tmp_path / 'threads.db'}" if where == "file" else "sqlite://"
    store = IbisDataBackend.from_uri(uri)
    store.create_table("t", Schema.of(k="int", v="str"))
    store.insert("t", [{"k": i, "v": str(i)} for i in range(5)])
    assert store.select("t", {"k": 1}) == [{"k": 1, "v": "1"}]  # warm the point plan here
    seen: dict[str, Any] = {}

    def other() -> None:
        try:
            seen["point"] = store.select("t", {"k": 2})
            seen["range"] = store.select("t", {"k": {"$gte": 3}}, order_by=[("k", "asc")])
            store.insert("t", [{"k": 9, "v": "9"}])
            store.update("t", {"k": 0}, {"v": "zero"})
            store.delete("t", {"k": 4})
            seen["count"] = store.count("t")
        except Exception as exc:  # reported in the asserting thread
            seen["error"] = exc

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert "error" not in seen, seen.get("error")
    assert seen["point"] == [{"k": 2, "v": "2"}]
    assert seen["range"] == [{"k": 3, "v": "3"}, {"k": 4, "v": "4"}]
    assert seen["count"] == 5
    assert store.select("t", {"k": 0}) == [{"k": 0, "v": "zero"}]
    store.close()
