"""Translate the portable filter language into ibis boolean expressions.

The result has the reference semantics of :func:`pinnacle_protocols.filters.evaluate` on every
engine: two-valued logic over SQL's three-valued one.

* ``$eq v`` is ``col == v`` and ``$eq None`` is ``col IS NULL``;
* ``$ne`` is ``~($eq)`` over a never-NULL ``$eq``, so it matches NULL rows (as in MongoDB);
* ``$gt $gte $lt $lte`` are ``col op v``, false on NULL;
* ``$in [..]`` is ``col.isin(non_null_items)``, ``| col IS NULL`` when the list holds ``None``;
  ``$nin`` is its negation;
* ``$exists`` is ``IS NOT NULL`` / ``IS NULL``; ``$not`` negates the AND of its operators.

NULL only matters under a negation: a ``WHERE`` keeps a row when its condition is TRUE, and
``AND``/``OR`` keep TRUE-ness when NULL is read as FALSE. So the translator wraps a comparison
in ``.fill_null(False)`` (``COALESCE(.., FALSE)``) only where it is negated, or everywhere with
``exact=True`` (for a predicate used as a value, e.g. a mask column). Plain comparisons stay
plain, so engines can still use indexes and min/max statistics for them.

The walk over the filter is :func:`pinnacle_protocols.filters.compile_filter`; this module gives
it the ibis leaves. Numbers are compared exactly, as Python does: an int operand on a float
column that no double can represent (beyond 2**53) is turned into the equivalent comparison
against the neighbouring doubles. How literals are built (naive UTC datetimes for engines whose
timestamp columns have no time zone, ...) is up to the caller's :class:`LiteralMaker`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pinnacle_protocols.filters import Filter, compile_filter, validate_filter
from pinnacle_protocols.records import DType, Field, Schema

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["LiteralMaker", "default_literal", "to_ibis"]


class LiteralMaker(Protocol):
    """Builds the ibis literal an operand is compared with (engine specific)."""

    def __call__(self, field: Field, column: ir.Value, value: Any) -> ir.Value:
        """The literal for ``value`` (never None) compared with ``column`` of ``field``."""
        ...


def default_literal(field: Field, column: ir.Value, value: Any) -> ir.Value:
    """A literal of the column's ibis type; datetimes follow the column's time zone.

    A column typed ``timestamp`` without a time zone (SQLite, MySQL ``DATETIME``) stores naive
    UTC, so the operand becomes naive UTC too.
    """
    import ibis

    typ = column.type()
    if isinstance(value, datetime):
        value = value.astimezone(UTC)
        if typ.is_timestamp() and typ.timezone is None:
            value = value.replace(tzinfo=None)
        return ibis.literal(value, type=typ)
    if field.dtype is DType.FLOAT:
        return ibis.literal(float(value), type="float64")
    if field.dtype is DType.INT:
        return ibis.literal(int(value), type="int64")
    return ibis.literal(value, type=typ)


def to_ibis(
    where: Filter | None,
    table: ir.Table,
    schema: Schema,
    *,
    literal: LiteralMaker = default_literal,
    validate: bool = True,
    exact: bool = True,
) -> ir.BooleanValue | None:
    """The ibis predicate for ``where`` over ``table``, or ``None`` when it matches every row.

    Args:
        where: A filter dict (see :mod:`pinnacle_protocols.filters`).
        table: The ibis table expression the columns are taken from.
        schema: The table's portable schema (types decide how operands are compared).
        literal: How operands become ibis literals on this engine.
        validate: Check the filter against ``schema`` first (FilterError on a bad filter).
        exact: Never NULL (needed when the predicate is a value); ``False`` may give NULL where
            the answer is "no", which is all a ``WHERE``/``filter`` needs (see module docs).

    Raises:
        FilterError: ``where`` is not a valid filter for ``schema``.
    """
    if validate:
        validate_filter(where, schema)
    if not where:
        return None
    return compile_filter(where, _Leaves(table, schema, literal), schema, never_null=exact)


class _Leaves:
    """The leaves of :func:`~pinnacle_protocols.filters.compile_filter` as ibis expressions."""

    def __init__(self, table: ir.Table, schema: Schema, literal: LiteralMaker) -> None:
        self.table = table
        self.schema = schema
        self.make_literal = literal

    def column(self, name: str) -> ir.Value:
        return self.table[name]

    def literal(self, name: str, column: ir.Value, value: Any) -> ir.Value:
        return self.make_literal(self.schema[name], column, value)

    def constant(self, value: bool) -> ir.BooleanValue:
        import ibis

        return ibis.literal(value)

    @staticmethod
    def _finish(cmp: ir.BooleanValue, never_null: bool) -> ir.BooleanValue:
        return cmp.fill_null(False) if never_null else cmp

    def compare(
        self, column: ir.Value, op: str, literal: ir.Value, never_null: bool
    ) -> ir.BooleanValue:
        return self._finish(_COMPARATORS[op](column, literal), never_null)

    def member(
        self, column: ir.Value, literals: Sequence[ir.Value], never_null: bool
    ) -> ir.BooleanValue:
        return self._finish(column.isin(literals), never_null)

    def is_null(self, column: ir.Value, null: bool) -> ir.BooleanValue:
        return column.isnull() if null else column.notnull()

    def all_of(self, parts: Sequence[ir.BooleanValue]) -> ir.BooleanValue:
        out = parts[0]
        for p in parts[1:]:
            out = out & p
        return out

    def any_of(self, parts: Sequence[ir.BooleanValue]) -> ir.BooleanValue:
        out = parts[0]
        for p in parts[1:]:
            out = out | p
        return out

    def negate(self, part: ir.BooleanValue) -> ir.BooleanValue:
        return ~part


_COMPARATORS: dict[str, Callable[[Any, Any], Any]] = {
    "$eq": operator.eq,
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
