"""Filters as SQL text with driver parameters, and a bounded cache of compiled statements.

The SQL engines (DuckDB, SQLite, PostgreSQL, MySQL/MariaDB) used to build every filter as an
ibis expression, compile it with ibis and render the statement with sqlglot on each call: about
2 ms of Python for a one-row select, three times the engine's own work. Here the same filter is
walked by :func:`pinnacle_protocols.filters.compile_filter` (the one compiler every backend
uses, so ``$ne``/``$nin``/``$not`` matching NULL, ``$in`` with ``None``, exact int-vs-float
comparison and out-of-range ints behave as everywhere else) into a ``WHERE`` fragment whose
operands are all driver parameters. The fragment's text is the filter's *shape*: the same
columns and operators (and ``$in`` length) with other values give the same text, so the whole
statement rendered around it is looked up in a small LRU cache (:class:`StatementCache`) and
only the values change between calls.

A parameter is written as :data:`PARAM` (a NUL character, which no table or column name
contains and no statement of ours holds otherwise) and turned into ``?`` or ``%s`` once, when
the statement is cached (:func:`finish`). Values are bound by the driver, so strings with
control characters, quotes or backslashes never go through a dialect's escaping rules.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from pinnacle_protocols.records import Field, Schema

__all__ = ["PARAM", "BoundLeaves", "StatementCache", "finish"]

#: Where a parameter goes in a fragment or a cached statement before :func:`finish`.
PARAM = "\x00"


def finish(sql: str, paramstyle: str) -> str:
    """``sql`` with every :data:`PARAM` as the driver's marker (``%`` doubled for ``format``)."""
    if paramstyle == "format":
        return sql.replace("%", "%%").replace(PARAM, "%s")
    if paramstyle == "qmark":
        return sql.replace(PARAM, "?")
    raise ValueError(f"unsupported paramstyle {paramstyle!r}")


class BoundLeaves:
    """:class:`~pinnacle_protocols.filters.FilterLeaves` writing SQL text with parameters.

    Predicates are SQL text, columns their quoted names, literals the parameter's SQL (the
    :data:`PARAM`, possibly inside a CAST). Every literal appends its value to :attr:`values`;
    the compiler creates literals in the order they appear in the text (each predicate is
    written left to right from parts made in that order), so :attr:`values` is the parameter
    list of the fragment.

    Args:
        schema: The table's portable schema.
        quote: A column name -> its quoted identifier.
        placeholder: A field -> the SQL of one parameter of that column's type.
        value: A field and a portable operand -> what the driver is given.
        false: The engine's FALSE (``0`` on SQLite, which reads a bare FALSE as a column
            named "false" when the table has one).
    """

    def __init__(
        self,
        schema: Schema,
        *,
        quote: Callable[[str], str],
        placeholder: Callable[[Field], str],
        value: Callable[[Field, Any], Any],
        false: str = "FALSE",
    ) -> None:
        self.schema = schema
        self.quote = quote
        self.placeholder = placeholder
        self.value = value
        self.false = false
        self.values: list[Any] = []

    def column(self, name: str) -> tuple[str, str]:
        return name, self.quote(name)

    def literal(self, name: str, column: tuple[str, str], value: Any) -> str:
        field = self.schema[name]
        self.values.append(self.value(field, value))
        return self.placeholder(field)

    def constant(self, value: bool) -> str:
        return "(1 = 1)" if value else "(1 = 0)"

    def _finish(self, cmp: str, never_null: bool) -> str:
        return f"COALESCE({cmp}, {self.false})" if never_null else cmp

    def compare(self, column: tuple[str, str], op: str, literal: str, never_null: bool) -> str:
        return self._finish(f"({column[1]} {_OPERATORS[op]} {literal})", never_null)

    def member(self, column: tuple[str, str], literals: Sequence[str], never_null: bool) -> str:
        return self._finish(f"({column[1]} IN ({', '.join(literals)}))", never_null)

    def is_null(self, column: tuple[str, str], null: bool) -> str:
        return f"({column[1]} IS {'' if null else 'NOT '}NULL)"

    def all_of(self, parts: Sequence[str]) -> str:
        return "(" + " AND ".join(parts) + ")"

    def any_of(self, parts: Sequence[str]) -> str:
        return "(" + " OR ".join(parts) + ")"

    def negate(self, part: str) -> str:
        return f"(NOT {part})"


_OPERATORS = {"$eq": "=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


class StatementCache:
    """Statement text by shape key, least recently used dropped beyond ``size`` entries.

    Keys start with the table name, so :meth:`forget` drops one table's statements.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[Hashable, ...], str] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Hashable, ...], build: Callable[[], str]) -> str:
        """The statement of ``key``, made by ``build()`` the first time."""
        found = self._entries.get(key)
        if found is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return found
        self.misses += 1
        sql = build()
        self._entries[key] = sql
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return sql

    def forget(self, table: str) -> None:
        """Drop the statements of ``table``."""
        for key in [k for k in self._entries if k[0] == table]:
            del self._entries[key]

    def clear(self) -> None:
        """Drop every statement."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
