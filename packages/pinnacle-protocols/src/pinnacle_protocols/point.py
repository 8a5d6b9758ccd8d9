"""Point reads without the filter walk: a plan per (table, column, operator, operand type).

A warm ``select(t, {"id": k})`` on the SQL engines used to validate the filter, walk it with
:func:`pinnacle_protocols.filters.compile_filter` to get its shape and parameters, look the
statement up by that shape and decode rows field by field: ~15-20 µs of Python around a
~15 µs SQLite read. The commonest filters, ``{col: scalar}`` and ``{col: {"$in": [...]}}``
with every item of one type, have a shape fixed by the column, the operator, the operand's
exact Python type and the ``$in`` length, as long as the operand is one the generic path binds
unchanged (not NULL, no NUL in a string, a finite float, an int within 64 bits, or within
2**53 on a float column, an aware datetime). For those a :class:`PointPlan` holds what the
generic path produced the first time (the statement text, the driver value of an operand,
the row decoders), so a repeat is a dict lookup, one check per operand and the query.

Every operand the plan's check refuses goes the generic way (which validates it and raises
the same FilterError as before, or compiles its special case), so the plan never changes an
answer. pinnacle-ibis's SQL engines (``tests/test_point.py``) and pinnacle-sql's SQLite
databackend (``tests/test_point.py``) check that their two paths agree on Hypothesis-generated
filters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import attrs

from pinnacle_protocols.records import DType, Field, Schema

__all__ = ["SLOW", "PointPlan", "RowShape", "operand_check", "point_key"]

#: What an operand check returns when the operand must go the generic way.
SLOW: Any = object()

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_EXACT = 2**53


def _int_on_int(value: int) -> Any:
    # the validator refuses ints beyond 64 bits (FilterError): let it say so
    return value if _INT64_MIN <= value <= _INT64_MAX else SLOW


def _int_on_float(value: int) -> Any:
    # within 2**53 every int is a double: the compiler compares float(value)
    return float(value) if -_EXACT <= value <= _EXACT else SLOW


def _float_on_float(value: float) -> Any:
    # NaN and +-inf are FilterErrors (inf - inf and NaN - NaN are NaN, which equals nothing)
    return value if value - value == 0.0 else SLOW


def _str_on_str(value: str) -> Any:
    # no stored string holds NUL: the compiler turns such an operand into FALSE
    return SLOW if "\x00" in value else value


def _same(value: Any) -> Any:
    return value


def _aware(value: datetime) -> Any:
    # a naive datetime is a FilterError
    return SLOW if value.tzinfo is None else value


#: (column type, the operand's exact Python type) -> the check of a fast operand. A pair not
#: here (a bool on an int column, a subclass such as a pandas Timestamp, None) goes the generic
#: way, which accepts or refuses it.
_CHECKS: dict[tuple[DType, type], Callable[[Any], Any]] = {
    (DType.INT, int): _int_on_int,
    (DType.FLOAT, int): _int_on_float,
    (DType.FLOAT, float): _float_on_float,
    (DType.STR, str): _str_on_str,
    (DType.BOOL, bool): _same,
    (DType.BYTES, bytes): _same,
    (DType.DATETIME, datetime): _aware,
}


def operand_check(dtype: DType, kind: type) -> Callable[[Any], Any] | None:
    """The check of operands of type ``kind`` on a ``dtype`` column (None: no fast path).

    The check returns what the compiler hands the leaves for the operand (``float(n)`` for an
    int on a float column, the operand otherwise), or :data:`SLOW` for an operand the generic
    path must see.
    """
    return _CHECKS.get((dtype, kind))


def point_key(
    table: str, where: dict[str, Any], max_items: int
) -> tuple[tuple[Any, ...], Any, Sequence[Any] | None] | None:
    """``(plan key, operand, $in items)`` of a one-column filter, or None: not a point shape.

    ``where`` is a dict of one item. The key is ``(table, column, n, kind)``: ``n`` is 0 for
    ``{col: v}`` (``kind`` the operand's exact type, ``items`` None) and the length of the list
    for ``{col: {"$in": [...]}}`` with 2 to ``max_items`` items of one exact type ``kind``.
    """
    ((column, operand),) = where.items()
    if type(operand) is not dict:
        return (table, column, 0, type(operand)), operand, None
    if len(operand) != 1 or "$in" not in operand:
        return None
    items = operand["$in"]
    if type(items) is not list and type(items) is not tuple:
        return None
    n = len(items)
    if n < 2 or n > max_items:
        return None
    kind = type(items[0])
    for item in items:
        if type(item) is not kind:
            return None
    return (table, column, n, kind), operand, items


@attrs.frozen
class RowShape:
    """Driver tuples to row dicts: column names and the decoders of the columns that have one."""

    fields: tuple[Field, ...]
    names: tuple[str, ...]
    decoders: tuple[tuple[str, Callable[[Any], Any]], ...]
    #: Whether a column is a datetime (DuckDB reads those as Arrow).
    datetimes: bool

    @classmethod
    def of(cls, fields: Sequence[Field], decoder: Callable[[Field], Any]) -> RowShape:
        decoders = []
        for f in fields:
            dec = decoder(f)
            if dec is not None:
                decoders.append((f.name, dec))
        return cls(
            tuple(fields),
            tuple(f.name for f in fields),
            tuple(decoders),
            any(f.dtype is DType.DATETIME for f in fields),
        )

    def rows(self, tuples: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        names = self.names
        if len(tuples) == 1:  # a point read's usual answer: no comprehension, no inner loops
            one = dict(zip(names, tuples[0]))  # noqa: B905 - rows match the query
            for name, dec in self.decoders:
                value = one[name]
                if value is not None:
                    one[name] = dec(value)
            return [one]
        out = [dict(zip(names, row)) for row in tuples]  # noqa: B905 - rows match the query
        for name, dec in self.decoders:
            for row in out:
                value = row[name]
                if value is not None:
                    row[name] = dec(value)
        return out


@attrs.frozen
class PointPlan:
    """A cached point read: statement, operand check and driver conversion, row shape.

    ``schema`` is the table schema the plan was built for: a plan is used only while the
    backend's cached schema is that very object.
    """

    schema: Schema
    sql: str
    check: Callable[[Any], Any]
    #: The compiler's operand -> the driver parameter (None: unchanged).
    convert: Callable[[Any], Any] | None
    shape: RowShape

    def bind(self, operand: Any, items: Sequence[Any] | None) -> list[Any] | None:
        """The driver parameters of ``{col: operand}`` or, with ``items``, of an ``$in``."""
        if items is not None:
            return self.params(items)
        value = self.check(operand)
        if value is SLOW:
            return None
        convert = self.convert
        return [value if convert is None else convert(value)]

    def params(self, operands: Sequence[Any]) -> list[Any] | None:
        """The driver parameters of ``operands`` (of the plan's type), None if one is slow."""
        check, convert = self.check, self.convert
        out = []
        for operand in operands:
            value = check(operand)
            if value is SLOW:
                return None
            out.append(value if convert is None else convert(value))
        return out
