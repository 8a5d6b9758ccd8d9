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

Numbers are compared exactly, as Python does: an int operand on a float column that no double
can represent (beyond 2**53) is turned into the equivalent comparison against the neighbouring
doubles. How literals are built (naive UTC datetimes for engines whose timestamp columns have no
time zone, ...) is up to the caller's :class:`LiteralMaker`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pinnacle_ibis._values import INT64_MAX, INT64_MIN
from pinnacle_protocols.filters import COMPARISON_OPS, Filter, validate_filter
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
    return _Translator(table, schema, literal).filter(where, exact)


class _Translator:
    def __init__(self, table: ir.Table, schema: Schema, literal: LiteralMaker) -> None:
        self.table = table
        self.schema = schema
        self.literal = literal

    # ------------------------------------------------------------------ combinators
    @staticmethod
    def _true() -> ir.BooleanValue:
        import ibis

        return ibis.literal(True)

    @staticmethod
    def _false() -> ir.BooleanValue:
        import ibis

        return ibis.literal(False)

    def _all(self, parts: Sequence[ir.BooleanValue]) -> ir.BooleanValue:
        if not parts:
            return self._true()
        out = parts[0]
        for p in parts[1:]:
            out = out & p
        return out

    def _any(self, parts: Sequence[ir.BooleanValue]) -> ir.BooleanValue:
        if not parts:
            return self._false()
        out = parts[0]
        for p in parts[1:]:
            out = out | p
        return out

    # ------------------------------------------------------------------ structure
    def filter(self, where: Filter, exact: bool) -> ir.BooleanValue:
        parts: list[ir.BooleanValue] = []
        for key, value in where.items():
            if key == "$and":
                parts.append(self._all([self.filter(sub, exact) for sub in value]))
            elif key == "$or":
                parts.append(self._any([self.filter(sub, exact) for sub in value]))
            elif isinstance(value, Mapping):
                parts.append(self._all([self.op(key, op, arg, exact) for op, arg in value.items()]))
            else:
                parts.append(self.op(key, "$eq", value, exact))
        return self._all(parts)

    # ------------------------------------------------------------------ leaves
    def op(self, name: str, op: str, arg: Any, exact: bool) -> ir.BooleanValue:
        field = self.schema[name]
        column = self.table[name]
        if op == "$eq":
            return column.isnull() if arg is None else self.eq(field, column, arg, exact)
        if op == "$ne":
            return ~self.op(name, "$eq", arg, True)
        if op in COMPARISON_OPS:
            return self.compare(field, column, op, arg, exact)
        if op == "$in":
            return self.isin(field, column, arg, exact)
        if op == "$nin":
            return ~self.isin(field, column, arg, True)
        if op == "$exists":
            return column.notnull() if arg else column.isnull()
        # $not
        return ~self._all([self.op(name, sub, v, True) for sub, v in arg.items()])

    @staticmethod
    def _finish(cmp: ir.BooleanValue, exact: bool) -> ir.BooleanValue:
        return cmp.fill_null(False) if exact else cmp

    def eq(self, field: Field, column: ir.Value, value: Any, exact: bool) -> ir.BooleanValue:
        value = self._exact(field, value)
        if value is _NEVER:
            return self._false()
        return self._finish(column == self.literal(field, column, value), exact)

    def isin(
        self, field: Field, column: ir.Value, items: Sequence[Any], exact: bool
    ) -> ir.BooleanValue:
        values = []
        for item in items:
            if item is None:
                continue
            value = self._exact(field, item)
            if value is not _NEVER:
                values.append(value)
        parts: list[ir.BooleanValue] = []
        if len(values) == 1:
            parts.append(self.eq(field, column, values[0], exact))
        elif values:
            lits = [self.literal(field, column, v) for v in values]
            parts.append(self._finish(column.isin(lits), exact))
        if any(item is None for item in items):
            parts.append(column.isnull())
        return self._any(parts)

    def compare(
        self, field: Field, column: ir.Value, op: str, value: Any, exact: bool
    ) -> ir.BooleanValue:
        if field.dtype is DType.INT and isinstance(value, int):
            if value > INT64_MAX:  # every stored int is smaller
                return column.notnull() if op in ("$lt", "$lte") else self._false()
            if value < INT64_MIN:
                return column.notnull() if op in ("$gt", "$gte") else self._false()
        if field.dtype is DType.FLOAT and isinstance(value, int) and not _float_exact(value):
            # No double equals ``value``: compare with the neighbouring doubles instead.
            lower, upper = _float_neighbours(value)
            if op in ("$gt", "$gte"):
                if upper is None:
                    return self._false()
                value, op = upper, "$gte"
            else:
                if lower is None:
                    return self._false()
                value, op = lower, "$lte"
        lit = self.literal(field, column, value)
        fn: Callable[[Any, Any], Any] = _COMPARATORS[op]
        return self._finish(fn(column, lit), exact)

    @staticmethod
    def _exact(field: Field, value: Any) -> Any:
        """``value`` as the column compares it, or ``_NEVER`` when no stored value equals it."""
        if isinstance(value, bool):
            return value
        if field.dtype is DType.INT and isinstance(value, int):
            return value if INT64_MIN <= value <= INT64_MAX else _NEVER
        if field.dtype is DType.FLOAT and isinstance(value, int):
            return float(value) if _float_exact(value) else _NEVER
        return value


_NEVER: Any = object()

_COMPARATORS: dict[str, Callable[[Any, Any], Any]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _float_exact(value: int) -> bool:
    try:
        return float(value) == value
    except OverflowError:
        return False


def _float_neighbours(value: int) -> tuple[float | None, float | None]:
    """The largest double below ``value`` and the smallest above it (None: none is finite)."""
    try:
        near = float(value)
    except OverflowError:
        return (
            (math.nextafter(math.inf, 0.0), None)
            if value > 0
            else (None, -math.nextafter(math.inf, 0.0))
        )
    if near > value:
        lower, upper = math.nextafter(near, -math.inf), near
    else:
        lower, upper = near, math.nextafter(near, math.inf)
    return (
        lower if math.isfinite(lower) else None,
        upper if math.isfinite(upper) else None,
    )
