"""The portable filter language: MongoDB-style dicts, a validator, the one compiler every
backend's predicate is built with (:func:`compile_filter`, the backend supplies the leaves) and
the reference evaluator (:func:`matcher`, the compiler with Python closures as leaves).

Grammar::

    filter     := {}                                   # every row
                | {"$and": [filter, ...]} | {"$or": [filter, ...]}
                | {column: value}                      # same as {"$eq": value}
                | {column: {op: operand, ...}}         # several ops are ANDed
    op         := $eq $ne $gt $gte $lt $lte $in $nin $exists $not

Semantics (every backend must give the same rows as :func:`evaluate`):

* Logic is two-valued. A missing column and ``None`` are the same thing: NULL.
* ``$eq v`` is true when the column is not NULL and equals ``v``; ``$eq None`` is ``IS NULL``.
* ``$ne v`` is ``not $eq v``, so it matches NULL rows (as in MongoDB); ``$ne None`` is
  ``IS NOT NULL``.
* ``$gt $gte $lt $lte`` are false on NULL; their operand must not be ``None``.
* ``$in [...]`` is true when the column equals one of the non-NULL items, or is NULL and the
  list holds ``None``; ``$nin`` is ``not $in``.
* ``$exists True`` is ``IS NOT NULL``; ``$exists False`` is ``IS NULL``.
* ``$not {op: ...}`` negates its operator dict (so it matches NULL rows, as in MongoDB).
* Operands are finite: NaN and +-inf are FilterError (no column stores them).
* A filter nests at most ``MAX_DEPTH`` (30) dicts and lists deep (FilterError beyond).
* ``bool`` never equals ``int``; ``int`` and ``float`` compare numerically; ``str`` compares by
  code point; ``bytes`` bytewise; ``datetime`` must be timezone-aware.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeAlias, TypeVar

from pinnacle_protocols.errors import FilterError, SchemaError
from pinnacle_protocols.records import DType, Schema, check_depth

if TYPE_CHECKING:
    from pinnacle_protocols.protocols import OrderBy

__all__ = [
    "COMPARISON_OPS",
    "FIELD_OPS",
    "LOGICAL_OPS",
    "MAX_LIMIT",
    "UNORDERABLE_DTYPES",
    "Filter",
    "FilterLeaves",
    "Matcher",
    "check_limit",
    "compile_filter",
    "evaluate",
    "float_equal_operand",
    "float_order_operand",
    "matcher",
    "parse_order_by",
    "validate_filter",
]

Filter: TypeAlias = Mapping[str, Any]

LOGICAL_OPS = frozenset({"$and", "$or"})
COMPARISON_OPS = frozenset({"$gt", "$gte", "$lt", "$lte"})
FIELD_OPS = frozenset({"$eq", "$ne", "$in", "$nin", "$exists", "$not"}) | COMPARISON_OPS
_SCALARS = (bool, int, float, str, bytes, datetime)

_DTYPE_PYTYPES: dict[DType, tuple[type, ...]] = {
    DType.INT: (int,),
    DType.FLOAT: (int, float),
    DType.STR: (str,),
    DType.BOOL: (bool,),
    DType.BYTES: (bytes,),
    DType.DATETIME: (datetime,),
}


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _check_scalar(value: object, where: str, *, allow_none: bool) -> None:
    if value is None:
        if not allow_none:
            raise FilterError(f"{where}: the operand must not be None (use $eq None / $exists)")
        return
    if not isinstance(value, _SCALARS):
        raise FilterError(
            f"{where}: operand {value!r} has type {type(value).__name__}; expected one of "
            "None, bool, int, float, str, bytes, datetime"
        )
    if isinstance(value, float) and math.isnan(value):
        raise FilterError(f"{where}: NaN is not comparable; filter with $exists instead")
    if isinstance(value, float) and math.isinf(value):
        raise FilterError(
            f"{where}: {value} is not portable (MariaDB has no infinity, and no column stores "
            "one: floats are finite); compare with a finite bound, or use $exists"
        )
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise FilterError(
            f"{where}: integer {value} does not fit in 64 bits, so no backend can compare it"
        )
    if isinstance(value, datetime) and value.tzinfo is None:
        raise FilterError(f"{where}: datetime {value!r} is naive; use a timezone-aware datetime")


def _check_column_type(column: str, value: object, schema: Schema | None, where: str) -> None:
    if schema is None or value is None:
        return
    field = schema[column]
    allowed = _DTYPE_PYTYPES.get(field.dtype)
    if allowed is None:
        raise FilterError(
            f"{where}: column {column!r} has type {field.dtype.value}, which filters cannot compare"
        )
    ok = isinstance(value, allowed) and not (
        isinstance(value, bool) and field.dtype is not DType.BOOL
    )
    if not ok:
        raise FilterError(
            f"{where}: column {column!r} is {field.dtype.value} but the operand {value!r} is "
            f"{type(value).__name__}"
        )


#: The largest ``limit`` a select accepts: every engine takes it (Polars overflows above 2**32,
#: a MongoDB wire server refused 2**63 - 1), and no select returns more rows than that.
MAX_LIMIT = 2**31 - 1


def check_limit(limit: object) -> int | None:
    """Return ``limit`` if it is None or an int in ``0..MAX_LIMIT`` (2**31 - 1); the one check every
    databackend's ``select`` runs before a driver sees the value.

    Raises:
        FilterError: a bool, float, str, negative or larger int, naming what was given.
    """
    if limit is None or (
        isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit <= MAX_LIMIT
    ):
        return limit
    raise FilterError(
        f"limit must be None or an int from 0 to 2**31 - 1, got {type(limit).__name__} "
        f"{limit!r:.40}"
    )


def validate_filter(where: Filter | None, schema: Schema | None = None) -> None:
    """Check a filter's shape, operators and operand types; raise FilterError naming the problem.

    With ``schema``, also check that every column exists and that operands fit column types.
    A filter nested more than :data:`~pinnacle_protocols.records.MAX_DEPTH` levels deep
    (each dict and list is one level) is a FilterError, found without recursion.
    """
    if where is None:
        return
    check_depth(where, "filter", FilterError, hint="flatten nested $and/$or/$not operators")
    _validate(where, schema, "filter")


def _validate(where: object, schema: Schema | None, path: str) -> None:
    if not isinstance(where, Mapping):
        raise FilterError(f"{path}: a filter must be a dict, got {type(where).__name__}")
    for key, value in where.items():
        if not isinstance(key, str):
            raise FilterError(f"{path}: keys must be strings, got {key!r}")
        if key.startswith("$"):
            if key not in LOGICAL_OPS:
                raise FilterError(
                    f"{path}: unknown top-level operator {key!r}; allowed are $and, $or "
                    "(field operators go inside a column: {'col': {'$gt': 1}})"
                )
            if not isinstance(value, Sequence) or isinstance(value, (str, bytes)) or not value:
                raise FilterError(f"{path}.{key}: expects a non-empty list of filters")
            for i, sub in enumerate(value):
                _validate(sub, schema, f"{path}.{key}[{i}]")
            continue
        if "\x00" in key or not key:
            raise FilterError(f"{path}: column names must be non-empty and contain no NUL byte")
        if schema is not None and key not in schema:
            raise FilterError(f"{path}: unknown column {key!r}; the table has {list(schema.names)}")
        _validate_field(key, value, schema, f"{path}.{key}")


def _is_op_dict(value: object) -> bool:
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(k, str) and k.startswith("$") for k in value)
    )


def _validate_field(column: str, value: object, schema: Schema | None, path: str) -> None:
    if isinstance(value, Mapping):
        if not value:
            raise FilterError(f"{path}: an empty operator dict matches nothing sensible")
        if not _is_op_dict(value):
            raise FilterError(
                f"{path}: mixing operators and plain keys; equality on documents is not portable"
            )
        for op, operand in value.items():
            _validate_op(column, op, operand, schema, f"{path}.{op}")
        return
    _check_scalar(value, path, allow_none=True)
    _check_column_type(column, value, schema, path)


def _validate_op(column: str, op: str, operand: object, schema: Schema | None, path: str) -> None:
    if op not in FIELD_OPS:
        raise FilterError(
            f"{path}: unknown operator {op!r}; allowed are {', '.join(sorted(FIELD_OPS))}"
        )
    if op in ("$eq", "$ne"):
        _check_scalar(operand, path, allow_none=True)
        _check_column_type(column, operand, schema, path)
    elif op in COMPARISON_OPS:
        _check_scalar(operand, path, allow_none=False)
        if isinstance(operand, bool):
            raise FilterError(f"{path}: booleans are not ordered; use $eq")
        _check_column_type(column, operand, schema, path)
    elif op in ("$in", "$nin"):
        if not isinstance(operand, (list, tuple)):
            raise FilterError(f"{path}: expects a list, got {type(operand).__name__}")
        kinds = set()
        for i, item in enumerate(operand):
            _check_scalar(item, f"{path}[{i}]", allow_none=True)
            _check_column_type(column, item, schema, f"{path}[{i}]")
            if item is not None:
                kinds.add(_kind(item))
        if len(kinds) > 1:
            raise FilterError(f"{path}: items mix types {sorted(kinds)}; use one type per list")
    elif op == "$exists":
        if not isinstance(operand, bool):
            raise FilterError(f"{path}: expects True or False, got {operand!r}")
    else:  # $not
        if not _is_op_dict(operand):
            raise FilterError(f"{path}: expects an operator dict such as {{'$gt': 3}}")
        assert isinstance(operand, Mapping)
        for sub_op, sub in operand.items():
            _validate_op(column, sub_op, sub, schema, f"{path}.{sub_op}")


# ---------------------------------------------------------------------- the compiler
P = TypeVar("P")
C = TypeVar("C")
L = TypeVar("L")


class FilterLeaves(Protocol[P, C, L]):
    """What a backend supplies to :func:`compile_filter`: the leaves of a predicate.

    ``P`` is the backend's predicate (an SQL expression, an ibis value, a Python closure), ``C``
    its column handle and ``L`` its literal. The compiler owns the structure and semantics of
    the filter language (module docstring); a backend only renders these pieces.

    ``never_null`` asks for a predicate that is never NULL (the compiler asks for it under a
    negation, where SQL's NULL would turn "no" into "unknown"); a backend whose predicates are
    two-valued ignores it.
    """

    def column(self, name: str) -> C:
        """The handle of column ``name``."""
        ...

    def literal(self, name: str, column: C, value: Any) -> L:
        """``value`` (never None) as the literal compared with ``column``."""
        ...

    def constant(self, value: bool) -> P:
        """A predicate that is always ``value``."""
        ...

    def compare(self, column: C, op: str, literal: L, never_null: bool) -> P:
        """``column op literal`` for ``op`` in ``$eq`` and :data:`COMPARISON_OPS`; false on NULL."""
        ...

    def member(self, column: C, literals: Sequence[L], never_null: bool) -> P:
        """``column IN literals`` (two or more); false on NULL."""
        ...

    def is_null(self, column: C, null: bool) -> P:
        """``column IS NULL`` (``null`` True) or ``IS NOT NULL``."""
        ...

    def all_of(self, parts: Sequence[P]) -> P:
        """The conjunction of one or more predicates."""
        ...

    def any_of(self, parts: Sequence[P]) -> P:
        """The disjunction of one or more predicates."""
        ...

    def negate(self, part: P) -> P:
        """The negation of a never-NULL predicate."""
        ...


_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_NEVER: Any = object()


def compile_filter(
    where: Filter,
    leaves: FilterLeaves[P, C, L],
    schema: Schema | None = None,
    *,
    never_null: bool = False,
) -> P:
    """Compile a validated, non-empty filter into the backend predicate built from ``leaves``.

    This is the one walker of the filter language: every backend's predicate is built here, so
    they cannot drift apart on ``$ne``/``$nin``/``$not`` matching NULL, ``$in`` with ``None``,
    ``$exists`` and the like.

    Args:
        where: The filter (see :func:`validate_filter`).
        leaves: The backend's leaves.
        schema: When given, int operands on ``float`` columns are compared exactly (see
            :func:`float_equal_operand`, :func:`float_order_operand`) and int operands outside
            64 bits on ``int`` columns match no stored value: for engines that compare numbers
            as doubles. Without it operands reach the leaves as given.
        never_null: The result must never be NULL (a predicate used as a value, not a WHERE).
    """
    return _Compiler(leaves, schema).filter(where, never_null)


class _Compiler(Generic[P, C, L]):
    def __init__(self, leaves: FilterLeaves[P, C, L], schema: Schema | None) -> None:
        self.leaves = leaves
        self.schema = schema

    def filter(self, where: Filter, exact: bool) -> P:
        parts: list[P] = []
        for key, value in where.items():
            if key == "$and":
                parts.append(self.all_of([self.filter(sub, exact) for sub in value]))
            elif key == "$or":
                parts.append(self.any_of([self.filter(sub, exact) for sub in value]))
            elif isinstance(value, Mapping):
                column = self.leaves.column(key)
                parts.append(
                    self.all_of([self.op(key, column, op, arg, exact) for op, arg in value.items()])
                )
            else:
                parts.append(self.op(key, self.leaves.column(key), "$eq", value, exact))
        return self.all_of(parts)

    def all_of(self, parts: Sequence[P]) -> P:
        return parts[0] if len(parts) == 1 else self.leaves.all_of(parts)

    def any_of(self, parts: Sequence[P]) -> P:
        return parts[0] if len(parts) == 1 else self.leaves.any_of(parts)

    def op(self, name: str, column: C, op: str, arg: Any, exact: bool) -> P:
        leaves = self.leaves
        if op == "$eq" and arg is None:
            return leaves.is_null(column, True)
        if op == "$eq":
            return self.eq(name, column, arg, exact)
        if op == "$ne":
            return leaves.negate(self.op(name, column, "$eq", arg, True))
        if op in COMPARISON_OPS:
            return self.compare(name, column, op, arg, exact)
        if op == "$in":
            return self.member(name, column, arg, exact)
        if op == "$nin":
            return leaves.negate(self.member(name, column, arg, True))
        if op == "$exists":
            return leaves.is_null(column, not arg)
        if op != "$not":
            raise FilterError(f"unknown operator {op!r}")
        # {$not: {$not: X}} is X (two-valued logic), so nested negations do not nest NOT(...)
        # in the SQL (SQLite's parser overflows at ~40 levels)
        negate = True
        while len(arg) == 1 and "$not" in arg:
            arg, negate = arg["$not"], not negate
        inner = self.all_of([self.op(name, column, sub, v, True) for sub, v in arg.items()])
        return leaves.negate(inner) if negate else inner

    def _dtype(self, name: str) -> DType | None:
        return None if self.schema is None else self.schema[name].dtype

    def _operand(self, name: str, value: Any) -> Any:
        """``value`` as the column compares it, or ``_NEVER`` when no stored value equals it."""
        if isinstance(value, str):
            # no database stores NUL in text (records refuse it): nothing equals such a string,
            # and PostgreSQL would refuse the parameter instead of answering
            return _NEVER if "\x00" in value else value
        if isinstance(value, bool) or not isinstance(value, int):
            return value
        dtype = self._dtype(name)
        if dtype is DType.INT and not _INT64_MIN <= value <= _INT64_MAX:
            return _NEVER
        if dtype is DType.FLOAT:
            exact = float_equal_operand(value)
            return _NEVER if exact is None else exact
        return value

    def eq(self, name: str, column: C, value: Any, exact: bool) -> P:
        value = self._operand(name, value)
        if value is _NEVER:
            return self.leaves.constant(False)
        return self.leaves.compare(column, "$eq", self.leaves.literal(name, column, value), exact)

    def member(self, name: str, column: C, items: Sequence[Any], exact: bool) -> P:
        values = [
            v for v in (self._operand(name, i) for i in items if i is not None) if v is not _NEVER
        ]
        parts: list[P] = []
        if len(values) == 1:
            parts.append(self.eq(name, column, values[0], exact))
        elif values:
            literals = [self.leaves.literal(name, column, v) for v in values]
            parts.append(self.leaves.member(column, literals, exact))
        if any(item is None for item in items):
            parts.append(self.leaves.is_null(column, True))
        return self.any_of(parts) if parts else self.leaves.constant(False)

    def compare(self, name: str, column: C, op: str, value: Any, exact: bool) -> P:
        dtype = self._dtype(name)
        if isinstance(value, str) and "\x00" in value:
            # Stored strings hold no NUL. Against x = p + "\x00" + rest, a NUL-free s compares
            # by code point as against p, except that s == p is below x: s < x iff s <= p.
            value = value[: value.index("\x00")]
            op = {"$lt": "$lte", "$gte": "$gt"}.get(op, op)
        if isinstance(value, int) and not isinstance(value, bool):
            if dtype is DType.INT and value > _INT64_MAX:  # every stored int is smaller
                if op in ("$lt", "$lte"):
                    return self.leaves.is_null(column, False)
                return self.leaves.constant(False)
            if dtype is DType.INT and value < _INT64_MIN:
                if op in ("$gt", "$gte"):
                    return self.leaves.is_null(column, False)
                return self.leaves.constant(False)
            if dtype is DType.FLOAT:
                rewritten = float_order_operand(op, value)
                if rewritten is None:
                    return self.leaves.constant(False)
                op, value = rewritten
        return self.leaves.compare(column, op, self.leaves.literal(name, column, value), exact)


# ---------------------------------------------------------------------- the reference evaluator
Row: TypeAlias = Mapping[str, Any]
Matcher: TypeAlias = Callable[[Row], bool]


def _equal(a: object, b: object) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda x, y: bool(x > y),
    "$gte": lambda x, y: bool(x >= y),
    "$lt": lambda x, y: bool(x < y),
    "$lte": lambda x, y: bool(x <= y),
}


def _compare(a: object, b: object, op: str) -> bool:
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return False
    numeric = isinstance(a, (int, float)) and isinstance(b, (int, float))
    if not numeric and type(a) is not type(b):
        return False
    return _ORDER[op](a, b)


class _PythonLeaves:
    """The reference semantics as leaves: predicates are closures over a row dict."""

    def column(self, name: str) -> str:
        return name

    def literal(self, name: str, column: str, value: Any) -> Any:
        return value

    def constant(self, value: bool) -> Matcher:
        return lambda row: value

    def compare(self, column: str, op: str, literal: Any, never_null: bool) -> Matcher:
        if op == "$eq":
            return lambda row: _equal(row.get(column), literal)
        return lambda row: _compare(row.get(column), literal, op)

    def member(self, column: str, literals: Sequence[Any], never_null: bool) -> Matcher:
        return lambda row: any(_equal(row.get(column), v) for v in literals)

    def is_null(self, column: str, null: bool) -> Matcher:
        return lambda row: (row.get(column) is None) is null

    def all_of(self, parts: Sequence[Matcher]) -> Matcher:
        return lambda row: all(p(row) for p in parts)

    def any_of(self, parts: Sequence[Matcher]) -> Matcher:
        return lambda row: any(p(row) for p in parts)

    def negate(self, part: Matcher) -> Matcher:
        return lambda row: not part(row)


def _everything(row: Row) -> bool:
    return True


def matcher(where: Filter | None) -> Matcher:
    """The reference semantics of ``where`` as a function of a row (compile once, apply often).

    The filter is assumed valid (see :func:`validate_filter`).
    """
    return compile_filter(where, _PythonLeaves()) if where else _everything


def evaluate(where: Filter | None, row: Mapping[str, Any]) -> bool:
    """Whether ``row`` matches ``where`` under the reference semantics (module docstring).

    The filter is assumed valid (see :func:`validate_filter`); to test many rows, build the
    :func:`matcher` once.
    """
    return matcher(where)(row)


# ---------------------------------------------------------------------- exact numbers
def float_equal_operand(value: int) -> float | None:
    """The double equal to the int ``value`` compared with a float column, or None.

    Python compares ints and floats exactly, and not every int beyond 2**53 is a double. None
    means no double equals ``value``: ``$eq value`` matches no stored value (and ``$in`` drops it).
    """
    try:
        near = float(value)
    except OverflowError:
        return None
    return near if near == value else None


def float_order_operand(op: str, value: int) -> tuple[str, float | int] | None:
    """``column op value`` on a float column as a comparison every engine answers exactly.

    An int operand no double equals (beyond 2**53) would be rounded by the engine; the same
    answer comes from comparing with its neighbouring double: ``x > n`` (or ``>=``) is
    ``x >= the next double above n``, ``x < n`` (or ``<=``) is ``x <= the double below``.

    Args:
        op: One of :data:`COMPARISON_OPS`.
        value: The int operand.

    Returns:
        ``(op, operand)`` to compare with (``(op, value)`` unchanged when a double equals
        ``value``), or None when no finite double satisfies the comparison.
    """
    if float_equal_operand(value) is not None:
        return op, value
    lower: float | None
    upper: float | None
    try:
        near = float(value)
    except OverflowError:
        biggest = math.nextafter(math.inf, 0.0)
        lower, upper = (biggest, None) if value > 0 else (None, -biggest)
    else:
        below = math.nextafter(near, -math.inf) if near > value else near
        above = near if near > value else math.nextafter(near, math.inf)
        lower = below if math.isfinite(below) else None
        upper = above if math.isfinite(above) else None
    if op in ("$gt", "$gte"):
        return None if upper is None else ("$gte", upper)
    return None if lower is None else ("$lte", lower)


#: Column types that have no portable order (``order_by`` on them is a SchemaError).
UNORDERABLE_DTYPES = frozenset({DType.JSON, DType.VECTOR})


def parse_order_by(order_by: OrderBy, schema: Schema | None, table: str) -> list[tuple[str, bool]]:
    """Validate ``order_by`` against ``schema``: ``[(column, descending), ...]``.

    Items are ``'col'`` (ascending) or ``('col', 'asc'|'desc')``; a repeated column keeps its
    first position and direction (a later repeat changes no order). Raises SchemaError naming
    the bad item, an unknown column or a column whose type has no portable order. With
    ``schema=None`` (a table without a portable schema, such as a MongoDB collection written
    by another program) column names are not checked, only the shape of ``order_by``.
    """
    if isinstance(order_by, str):
        raise SchemaError("order_by must be a list such as ['a', ('b', 'desc')], not a string")
    parsed: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for item in order_by:
        if isinstance(item, str):
            column, direction = item, "asc"
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            column, direction = item[0], item[1]
        else:
            raise SchemaError(f"order_by item {item!r} must be 'col' or ('col', 'asc'|'desc')")
        if direction not in ("asc", "desc"):
            raise SchemaError(f"order_by direction must be 'asc' or 'desc', got {direction!r}")
        if not isinstance(column, str) or not column:
            raise SchemaError(f"order_by item {item!r}: the column must be a non-empty string")
        if schema is None:
            pass
        elif column not in schema:
            raise SchemaError(f"order_by on {table!r}: unknown column {column!r}")
        elif schema[column].dtype in UNORDERABLE_DTYPES:
            raise SchemaError(
                f"order_by on {table!r}: column {column!r} is {schema[column].dtype.value}, "
                "which has no portable order"
            )
        if column not in seen:
            seen.add(column)
            parsed.append((column, direction == "desc"))
    return parsed
