"""The portable filter language: MongoDB-style dicts, a validator and the reference evaluator.

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
* ``bool`` never equals ``int``; ``int`` and ``float`` compare numerically; ``str`` compares by
  code point; ``bytes`` bytewise; ``datetime`` must be timezone-aware.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from pinnacle_protocols.errors import FilterError, SchemaError
from pinnacle_protocols.records import DType, Schema

if TYPE_CHECKING:
    from pinnacle_protocols.protocols import OrderBy

__all__ = [
    "COMPARISON_OPS",
    "FIELD_OPS",
    "LOGICAL_OPS",
    "UNORDERABLE_DTYPES",
    "Filter",
    "evaluate",
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


def validate_filter(where: Filter | None, schema: Schema | None = None) -> None:
    """Check a filter's shape, operators and operand types; raise FilterError naming the problem.

    With ``schema``, also check that every column exists and that operands fit column types.
    """
    if where is None:
        return
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


# ---------------------------------------------------------------------- evaluation
def _equal(a: object, b: object) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _compare(a: object, b: object, op: str) -> bool:
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return False
    numeric = isinstance(a, (int, float)) and isinstance(b, (int, float))
    if not numeric and type(a) is not type(b):
        return False
    x: Any = a
    y: Any = b
    if op == "$gt":
        return bool(x > y)
    if op == "$gte":
        return bool(x >= y)
    if op == "$lt":
        return bool(x < y)
    return bool(x <= y)


def _in(value: object, items: Sequence[object]) -> bool:
    if value is None:
        return any(i is None for i in items)
    return any(_equal(value, i) for i in items)


def _apply_op(value: object, op: str, operand: Any) -> bool:
    if op == "$eq":
        return value is None if operand is None else _equal(value, operand)
    if op == "$ne":
        return not _apply_op(value, "$eq", operand)
    if op in COMPARISON_OPS:
        return _compare(value, operand, op)
    if op == "$in":
        return _in(value, operand)
    if op == "$nin":
        return not _in(value, operand)
    if op == "$exists":
        return (value is not None) is bool(operand)
    if op == "$not":
        return not all(_apply_op(value, o, v) for o, v in operand.items())
    raise FilterError(f"unknown operator {op!r}")


def evaluate(where: Filter | None, row: Mapping[str, Any]) -> bool:
    """Whether ``row`` matches ``where`` under the reference semantics (module docstring).

    The filter is assumed valid (see :func:`validate_filter`).
    """
    if not where:
        return True
    for key, value in where.items():
        if key == "$and":
            if not all(evaluate(sub, row) for sub in value):
                return False
        elif key == "$or":
            if not any(evaluate(sub, row) for sub in value):
                return False
        else:
            cell = row.get(key)
            if isinstance(value, Mapping):
                if not all(_apply_op(cell, op, operand) for op, operand in value.items()):
                    return False
            elif not _apply_op(cell, "$eq", value):
                return False
    return True


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
