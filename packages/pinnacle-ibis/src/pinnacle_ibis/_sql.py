"""sqlglot helpers: compile ibis expressions, repair literal bugs, build UPDATE and DELETE.

ibis has no UPDATE or DELETE, so the backend compiles the filter predicate with the engine's own
ibis compiler (``t.filter(pred)`` to a sqlglot ``SELECT``), takes the ``WHERE`` condition out of
it, strips the table alias from its columns and puts it into a sqlglot ``UPDATE``/``DELETE``.
Every value in the condition is a literal rendered by sqlglot for the dialect (quotes doubled,
backslashes escaped where the dialect needs it); values of ``SET`` are driver parameters.

Two literal bugs of ibis 12.0.0 are repaired on the sqlglot tree before rendering:

* PostgreSQL: a ``bytea`` literal is rendered ``'\\x00\\x27'::bytea`` (one ``\\x`` per byte),
  which PostgreSQL rejects for more than one byte; it becomes ``'\\x0027'::bytea``.
* SQLite: a blob literal is rendered ``UNHEX('0027')``, a function SQLite only has from 3.41;
  it becomes the blob literal ``X'0027'``. And ``TRUE``/``FALSE`` become ``1``/``0``: SQLite
  resolves a bare ``FALSE`` to a column named "false" when the table has one.

Neither rewrite changes the meaning of a query that worked before.

And one bug of sqlglot's MySQL generator: it escapes control characters with C escapes MySQL
does not know (``\\a``, ``\\v``, ``\\f``; MySQL reads an unknown ``\\x`` as ``x``), so a
filter on ``"a\\x07b"`` compared with ``"aab"`` and matched nothing. :func:`render` renders
MySQL/MariaDB statements with :func:`mysql_dialect`, a subclass of ibis's MySQL dialect that
escapes only what MySQL's string syntax defines and writes every other character as itself.
Spark SQL has the same rule and the same bug: :func:`spark_dialect`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import sqlglot.expressions as sge

__all__ = [
    "Params",
    "compile_select",
    "delete_statement",
    "fixup",
    "ident",
    "mysql_dialect",
    "render",
    "spark_dialect",
    "table_ref",
    "update_statement",
    "where_condition",
]

_PG_BYTEA_RE = re.compile(r"^(?:\\x[0-9a-fA-F]{2})+$")
_HEX_RE = re.compile(r"^[0-9a-fA-F]*$")


def _is_binary_type(node: Any) -> bool:
    import sqlglot.expressions as sge

    if not isinstance(node, sge.DataType):
        return False
    return (
        node.this
        in (
            sge.DataType.Type.VARBINARY,
            sge.DataType.Type.BINARY,
        )
        or node.sql("postgres").upper() == "BYTEA"
    )


def fixup(tree: sge.Expression, dialect: str) -> sge.Expression:
    """Repair ibis 12.0.0's binary literals for ``dialect`` (see the module docstring).

    ``tree`` is modified in place: pass a tree of your own (ibis shares constant nodes such as
    ``FALSE`` between the trees it compiles, so copy what ibis returned first).
    """
    import sqlglot.expressions as sge

    if dialect == "postgres":

        def pg(node: sge.Expression) -> sge.Expression:
            if (
                isinstance(node, sge.Cast)
                and isinstance(node.this, sge.Literal)
                and node.this.is_string
                and _is_binary_type(node.args.get("to"))
                and _PG_BYTEA_RE.match(node.this.this)
            ):
                hexdigits = node.this.this.replace("\\x", "")
                return sge.Cast(
                    this=sge.Literal.string("\\x" + hexdigits), to=node.args["to"].copy()
                )
            return node

        return tree.transform(pg, copy=False)
    if dialect == "sqlite":

        def lite(node: sge.Expression) -> sge.Expression:
            if isinstance(node, sge.Boolean):
                # SQLite reads a bare TRUE/FALSE as a column of that name when one exists.
                return sge.Literal.number(1 if node.this else 0)
            name = None
            arg = None
            if isinstance(node, sge.Unhex):
                name, arg = "UNHEX", node.this
            elif isinstance(node, sge.Anonymous) and str(node.this).upper() == "UNHEX":
                name = "UNHEX"
                arg = node.expressions[0] if len(node.expressions) == 1 else None
            if name and isinstance(arg, sge.Literal) and arg.is_string and _HEX_RE.match(arg.this):
                return sge.HexString(this=arg.this)
            return node

        return tree.transform(lite, copy=False)
    return tree


#: The escape sequences of MySQL/MariaDB string literals (character -> escape), from
#: https://dev.mysql.com/doc/refman/8.0/en/string-literals.html (table 11.1). ``\\%`` and
#: ``\\_`` are left out: outside LIKE patterns they keep the backslash.
MYSQL_ESCAPES: dict[str, str] = {
    "\x00": "\\0",
    "\b": "\\b",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\x1a": "\\Z",
    "\\": "\\\\",
}

#: The escape sequences of Spark SQL string literals that sqlglot writes (Spark's
#: ``unescapeSQLString``): Spark, like MySQL, reads an unknown ``\\x`` as ``x``, so sqlglot's
#: ``\\a``, ``\\v``, ``\\f`` compared ``"a\\x07b"`` with ``"aab"`` (found by the contract suite on
#: PySpark). The quote is escaped ``\\'`` by sqlglot's Spark dialect already (Spark reads ``''``
#: as two adjacent literals, not as a quote).
SPARK_ESCAPES: dict[str, str] = {
    "\b": "\\b",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\\": "\\\\",
}


def _scoped_dialect(base: Any, name: str, escapes: dict[str, str], doc: str) -> Any:
    # The class name is sqlglot's registry key (``Pinnacle_MySQL`` -> ``pinnacle_mysql``): the
    # engine's own dialect and ibis's are left unchanged.
    dialect: Any = type(name, (base,), {"__doc__": doc, "__module__": __name__})
    # The metaclass merges sqlglot's C escapes into every backslash dialect: replace both maps.
    dialect.ESCAPED_SEQUENCES = dict(escapes)
    dialect.UNESCAPED_SEQUENCES = {v: k for k, v in escapes.items()}
    return dialect


@functools.cache
def mysql_dialect() -> Any:
    """ibis's MySQL sqlglot dialect, with string escapes MySQL understands.

    sqlglot 30.17 escapes BEL, VT and FF as ``\\a``, ``\\v``, ``\\f``, which MySQL reads as
    the letters ``a``, ``v``, ``f``. This subclass (sqlglot registers it under the name
    ``pinnacle_mysql``; the ``mysql`` dialect and ibis's are left unchanged) escapes only
    :data:`MYSQL_ESCAPES` and writes every other character as itself, which MySQL accepts in a
    quoted literal. Built on first use (it imports ibis and sqlglot).
    """
    from ibis.backends.sql.dialects import MySQL

    return _scoped_dialect(
        MySQL,
        "Pinnacle_MySQL",
        MYSQL_ESCAPES,
        "MySQL/MariaDB as ibis renders it, with MySQL's own string escapes.",
    )


@functools.cache
def spark_dialect() -> Any:
    """ibis's PySpark sqlglot dialect, with the string escapes Spark understands.

    Escapes only :data:`SPARK_ESCAPES` and writes every other character as itself, which Spark
    accepts in a quoted literal; registered by sqlglot as ``pinnacle_pyspark``.
    """
    from ibis.backends.sql.dialects import PySpark

    return _scoped_dialect(
        PySpark,
        "Pinnacle_PySpark",
        SPARK_ESCAPES,
        "Spark SQL as ibis renders it, with Spark's own string escapes.",
    )


def _dialect_name(dialect: Any) -> str:
    name = dialect if isinstance(dialect, str) else getattr(dialect, "__name__", "")
    return name.lower() if isinstance(name, str) else ""


def render(tree: sge.Expression, dialect: Any) -> str:
    """SQL text of ``tree`` for ``dialect`` (a name or sqlglot Dialect; unsupported raises).

    MySQL (by name or ibis's dialect class) renders with :func:`mysql_dialect`, Spark with
    :func:`spark_dialect`.
    """
    import sqlglot as sg

    name = _dialect_name(dialect)
    if name == "mysql":
        dialect = mysql_dialect()
    elif name in ("pyspark", "spark"):
        dialect = spark_dialect()
    return tree.sql(dialect=dialect, unsupported_level=sg.ErrorLevel.RAISE, copy=False)


def compile_select(con: Any, expr: ir.Expr) -> str:
    """Compile an ibis expression with the engine's compiler, repair it, render it."""
    tree = con.compiler.to_sqlglot(expr).copy()
    return render(fixup(tree, con.name), con.dialect)


def ident(name: str) -> sge.Identifier:
    """A quoted identifier (the dialect escapes quotes inside it when rendering)."""
    import sqlglot as sg

    return sg.to_identifier(name, quoted=True)


def table_ref(name: str, database: str | None = None, catalog: str | None = None) -> sge.Table:
    """A quoted table reference."""
    import sqlglot.expressions as sge

    return sge.table_(name, db=database, catalog=catalog, quoted=True)


def where_condition(con: Any, table: ir.Table, predicate: ir.BooleanValue | None) -> Any:
    """The sqlglot condition of ``predicate`` with unqualified columns (None: every row)."""
    import sqlglot.expressions as sge

    if predicate is None:
        return None
    select = con.compiler.to_sqlglot(table.filter(predicate))
    where = select.args.get("where")
    if where is None or (select.args.get("from_") or select.args.get("from")) is None:
        raise RuntimeError(f"ibis compiled an unexpected query shape: {select.sql()}")
    cond = where.this.copy()  # ibis shares constant nodes between trees: never edit them
    for column in cond.find_all(sge.Column):
        column.set("table", None)
        column.set("db", None)
        column.set("catalog", None)
    if cond.find(sge.Select) is not None:
        raise RuntimeError(f"ibis compiled a subquery into a filter: {select.sql()}")
    return fixup(cond, con.name)


def update_statement(
    target: sge.Table, assignments: Sequence[tuple[str, sge.Expression]], condition: Any
) -> sge.Update:
    """``UPDATE target SET col = expr, ... [WHERE condition]``."""
    import sqlglot.expressions as sge

    return sge.Update(
        this=target,
        expressions=[sge.EQ(this=sge.Column(this=ident(c)), expression=e) for c, e in assignments],
        where=sge.Where(this=condition) if condition is not None else None,
    )


def delete_statement(target: sge.Table, condition: Any) -> sge.Delete:
    """``DELETE FROM target [WHERE condition]``."""
    import sqlglot.expressions as sge

    return sge.Delete(
        this=target,
        where=sge.Where(this=condition) if condition is not None else None,
    )


_VALUE_PARENTS: tuple[str, ...] = ("EQ", "NEQ", "GT", "GTE", "LT", "LTE", "In", "Array", "Tuple")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _value_position(node: Any) -> bool:
    """Whether a literal is an operand of a comparison, IN list or array (not a function arg)."""
    import sqlglot.expressions as sge

    parent = node.parent
    while isinstance(parent, (sge.Neg, sge.Paren)):
        parent = parent.parent
    return parent is None or type(parent).__name__ in _VALUE_PARENTS


def parametrize_floats(tree: Any, params: Params) -> Any:
    """Turn the non-integer numeric literals of comparisons into driver parameters.

    Engines parse decimal literals differently: DuckDB reads ``0.9999899864196777`` as a
    DECIMAL whose conversion to DOUBLE can be off by one unit in the last place, and SQLite's
    text-to-double conversion is not correctly rounded either (about 1 in 700 random doubles
    here). A bound Python float is exact everywhere. Literals inside function calls (the
    seconds of DuckDB's ``MAKE_TIMESTAMPTZ``) are left alone: they are exact decimals there.
    Returns the (possibly replaced) root; literals are visited in text order.
    """
    import sqlglot.expressions as sge

    for lit in list(tree.find_all(sge.Literal, bfs=False)):
        if lit.is_string:
            continue
        text = str(lit.this)
        try:
            as_int = int(text)
        except ValueError:
            as_int = None
        if as_int is not None and _INT64_MIN <= as_int <= _INT64_MAX:
            continue
        try:
            value = float(text)
        except ValueError:
            continue
        if not _value_position(lit):
            continue
        marker = params.add(value)
        if lit is tree:
            return marker
        lit.replace(marker)
    return tree


def exponent_floats(tree: Any) -> Any:
    """Write decimal literals of comparisons with an exponent (``0.5e0``): a DOUBLE literal.

    For engines reached without driver parameters (the generic class): an approximate-numeric
    literal is parsed as a double on every SQL engine, not as a DECIMAL. A bare literal (the
    root) counts as a value.
    """
    import sqlglot.expressions as sge

    for lit in tree.find_all(sge.Literal):
        if lit.is_string:
            continue
        text = str(lit.this)
        if "." in text and "e" not in text.lower() and _value_position(lit):
            lit.set("this", text + "e0")
    return tree


class Params:
    """Driver parameters of one statement, marked in the sqlglot tree by unguessable names.

    ``add(value)`` returns the marker expression; :meth:`bind` renders the markers in the
    driver's paramstyle. The marker carries a random nonce, so a string literal in the same
    statement can never be mistaken for one.
    """

    def __init__(self) -> None:
        import secrets

        self._nonce = secrets.token_hex(8)
        self.values: list[Any] = []

    def add(self, value: Any) -> sge.Expression:
        """Register ``value`` and return its marker."""
        import sqlglot.expressions as sge

        self.values.append(value)
        return sge.Var(this=f"__pinnacle_{self._nonce}_{len(self.values) - 1}__")

    def bind(self, sql: str, paramstyle: str) -> str:
        """Replace the markers by ``?`` (qmark) or ``%s`` (format, other ``%`` doubled)."""
        if paramstyle not in ("qmark", "format"):
            raise ValueError(f"unsupported paramstyle {paramstyle!r}")
        if paramstyle == "format":
            sql = sql.replace("%", "%%")
        mark = "?" if paramstyle == "qmark" else "%s"
        pos = 0
        for i in range(len(self.values)):
            marker = f"__pinnacle_{self._nonce}_{i}__"
            found = sql.find(marker, pos)
            if found < 0 or sql.find(marker, found + len(marker)) >= 0:
                raise RuntimeError("parameter markers were reordered or lost while rendering")
            sql = sql[:found] + mark + sql[found + len(marker) :]
            pos = found + len(mark)
        if f"__pinnacle_{self._nonce}_" in sql:
            raise RuntimeError("a parameter marker is left over after binding")
        return sql
