"""Translate the portable filter language into MongoDB query documents.

The portable semantics (:mod:`pinnacle_protocols.filters`) and MongoDB's agree on most points:
a missing field and ``null`` are both NULL, ``$eq: null`` matches both, ``$ne``/``$nin``/``$not``
match NULL rows, comparison operators never match across types (type bracketing, so ``$gt`` is
false on NULL and ``True`` never equals ``1``), numbers compare numerically and strings by code
point (MongoDB's binary comparison of UTF-8). The differences are handled here:

* ``$exists`` means "is (not) NULL" in the portable language, so ``$exists: True`` becomes
  ``$ne: null`` and ``$exists: False`` becomes ``$eq: null``.
* MongoDB keeps datetimes in milliseconds, so an operand with sub-millisecond digits is moved to
  the millisecond that gives the same answer on stored values (``$gte 12:00:00.0005`` is
  ``$gte 12:00:00.001``; ``$eq`` on it matches nothing).
* BSON has no integers beyond 64 bits: such operands become the equal float, or are dropped from
  ``$in`` lists / match nothing when no float equals them.
* On an array, MongoDB's ``$eq: null`` also matches when an *element* is null. JSON and vector
  columns can hold arrays and only take NULL tests (``$eq/$ne None``, ``$in/$nin`` of None,
  ``$exists``, ``$not`` of those), so each such condition is reduced to "is NULL", "is not NULL",
  always or never, and "is NULL" is written ``{$eq: null, $not: {$type: "array"}}``.
* MongoDB orders binary data by length before content, the portable language bytewise. Range
  comparisons on ``bytes`` operands are therefore evaluated in Python with
  :func:`pinnacle_protocols.filters.evaluate` over the rows the rest of the filter selects
  (:attr:`CompiledFilter.client_side`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from pinnacle_protocols.errors import FilterError
from pinnacle_protocols.filters import COMPARISON_OPS, Filter

__all__ = ["CompiledFilter", "compile_filter", "mongo_sort"]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_MS = timedelta(milliseconds=1)


@attrs.frozen(kw_only=True)
class CompiledFilter:
    """A portable filter in MongoDB form.

    Attributes:
        query: The query document for ``find``/``count_documents``/``update_many``/...
        client_side: When True, ``query`` only narrows the candidates and the caller must apply
            the portable filter in Python to each candidate row (range operators on bytes).
    """

    query: dict[str, Any]
    client_side: bool = False


def _same(name: str) -> str:
    return name


def _never(name: str) -> bool:
    return False


def compile_filter(
    where: Filter | None,
    field: Callable[[str], str] = _same,
    array_valued: Callable[[str], bool] = _never,
) -> CompiledFilter:
    """Translate a validated portable filter.

    Args:
        where: The filter (already validated).
        field: Maps a column name to its document field.
        array_valued: Whether a column may hold arrays (JSON and vector columns).
    """
    if not where:
        return CompiledFilter(query={})
    translator = _Translator(field=field, array_valued=array_valued)
    if not _needs_client_side(where):
        return CompiledFilter(query=translator.filter(where))
    # Push down the top-level conjuncts that MongoDB can answer exactly; the caller evaluates
    # the whole filter on what comes back.
    pushed = {k: v for k, v in where.items() if not _needs_client_side({k: v})}
    return CompiledFilter(query=translator.filter(pushed) if pushed else {}, client_side=True)


# ---------------------------------------------------------------------- client-side detection
def _needs_client_side(where: Mapping[str, Any]) -> bool:
    for key, value in where.items():
        if key in ("$and", "$or"):
            if any(_needs_client_side(sub) for sub in value):
                return True
        elif isinstance(value, Mapping) and _ops_need_client_side(value):
            return True
    return False


def _ops_need_client_side(ops: Mapping[str, Any]) -> bool:
    for op, operand in ops.items():
        if op in COMPARISON_OPS and isinstance(operand, (bytes, bytearray, memoryview)):
            return True
        if op == "$not" and _ops_need_client_side(operand):
            return True
    return False


# ---------------------------------------------------------------------- translation
def _combine(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    if not clauses:
        return {}
    if len(clauses) == 1:
        return clauses[0]
    merged: dict[str, Any] = {}
    for clause in clauses:
        if any(k in merged for k in clause):
            return {"$and": clauses}
        merged.update(clause)
    return merged


_NULL = frozenset({True})
_NOT_NULL = frozenset({False})
_ALWAYS = frozenset({True, False})
_NEVER: frozenset[bool] = frozenset()


def _null_states(op: str, operand: Any) -> frozenset[bool]:
    """For which cell states (True: NULL, False: not NULL) a NULL-only condition holds."""
    if op == "$eq":
        return _NULL if operand is None else _NEVER
    if op == "$ne":
        return _NOT_NULL if operand is None else _ALWAYS
    if op == "$in":
        return _NULL if any(v is None for v in operand) else _NEVER
    if op == "$nin":
        return _NOT_NULL if any(v is None for v in operand) else _ALWAYS
    if op == "$exists":
        return _NOT_NULL if operand else _NULL
    if op == "$not":
        inner = _ALWAYS
        for sub_op, sub in operand.items():
            inner = inner & _null_states(sub_op, sub)
        return _ALWAYS - inner
    raise FilterError(f"{op} cannot be applied to a JSON or vector column")


@attrs.frozen(kw_only=True)
class _Translator:
    field: Callable[[str], str]
    array_valued: Callable[[str], bool]

    def filter(self, where: Mapping[str, Any]) -> dict[str, Any]:
        clauses: list[dict[str, Any]] = []
        for key, value in where.items():
            if key in ("$and", "$or"):
                clauses.append({key: [self.filter(sub) for sub in value]})
                continue
            ops = value if isinstance(value, Mapping) else {"$eq": value}
            if self.array_valued(key):
                clauses.append(self._null_clause(self.field(key), ops))
            else:
                clauses.append(_field_clause(self.field(key), ops))
        return _combine(clauses)

    @staticmethod
    def _null_clause(name: str, ops: Mapping[str, Any]) -> dict[str, Any]:
        states = _ALWAYS
        for op, operand in ops.items():
            states = states & _null_states(op, operand)
        if states == _ALWAYS:
            return {}
        if states == _NULL:
            return {name: {"$eq": None, "$not": {"$type": "array"}}}
        if states == _NOT_NULL:
            return {"$or": [{name: {"$ne": None}}, {name: {"$type": "array"}}]}
        return {name: {"$in": []}}


def _field_clause(name: str, ops: Mapping[str, Any]) -> dict[str, Any]:
    """``{name: {op: operand, ...}}`` for an operator dict, or an ``$and``/``$nor`` of them."""
    fragments = [_op(name, op, operand) for op, operand in ops.items()]
    merged: dict[str, Any] = {}
    for fragment in fragments:
        if fragment is None or any(k in merged for k in fragment):
            break
        merged.update(fragment)
    else:
        return {name: merged}
    # Two fragments use the same MongoDB operator (e.g. $ne with $exists: True) or one needs a
    # whole clause: AND separate clauses.
    return _combine([_op_clause(name, op, operand) for op, operand in ops.items()])


def _op_clause(name: str, op: str, operand: Any) -> dict[str, Any]:
    fragment = _op(name, op, operand)
    if fragment is not None:
        return {name: fragment}
    # $not whose operator dict cannot be one field-level operator document: NOR the clause.
    return {"$nor": [_field_clause(name, operand)]}


def _op(name: str, op: str, operand: Any) -> dict[str, Any] | None:
    """One portable operator as a MongoDB operator-document fragment (None: needs a clause)."""
    if op == "$eq":
        if operand is None:
            return {"$eq": None}
        value = _scalar(operand)
        return {"$in": []} if value is _IMPOSSIBLE else {"$eq": value}
    if op == "$ne":
        if operand is None:
            return {"$ne": None}
        value = _scalar(operand)
        return {"$nin": []} if value is _IMPOSSIBLE else {"$ne": value}
    if op in COMPARISON_OPS:
        return dict([_comparison(op, operand)])
    if op in ("$in", "$nin"):
        items = [_scalar(v) if v is not None else None for v in operand]
        return {op: [v for v in items if v is not _IMPOSSIBLE]}
    if op == "$exists":
        return {"$ne": None} if operand else {"$eq": None}
    if op == "$not":
        inner: dict[str, Any] = {}
        for sub_op, sub in operand.items():
            fragment = None if sub_op == "$not" else _op(name, sub_op, sub)
            if fragment is None or any(k in inner for k in fragment):
                return None
            inner.update(fragment)
        return {"$not": inner}
    raise FilterError(f"unknown operator {op!r}")


class _Impossible:
    """Marks an operand no stored value can equal (sub-millisecond datetime, huge int)."""


_IMPOSSIBLE: Any = _Impossible()


def _scalar(value: Any) -> Any:
    """An equality operand as MongoDB can compare it with what it stores."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return value
        as_float = float(value) if abs(value) < 2**1024 else math.inf
        return as_float if as_float == value else _IMPOSSIBLE
    if isinstance(value, datetime):
        utc = value.astimezone(UTC)
        return utc if utc.microsecond % 1000 == 0 else _IMPOSSIBLE
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


def _comparison(op: str, value: Any) -> tuple[str, Any]:
    if isinstance(value, datetime):
        utc = value.astimezone(UTC)
        extra = utc.microsecond % 1000
        if extra == 0:
            return op, utc
        floor = utc - timedelta(microseconds=extra)
        # Stored datetimes are whole milliseconds: x > t and x >= t mean x >= ceil(t);
        # x < t and x <= t mean x <= floor(t).
        if op in ("$gt", "$gte"):
            return "$gte", floor + _MS
        return "$lte", floor
    if isinstance(value, int) and not isinstance(value, bool):
        if _INT64_MIN <= value <= _INT64_MAX:
            return op, value
        if abs(value) >= 2**1024:
            return op, math.inf if value > 0 else -math.inf
        as_float = float(value)
        if as_float == value:
            return op, as_float
        # Round the bound outwards so that no double is misclassified: a double x satisfies
        # x > n exactly when x >= the next double above n.
        above = math.nextafter(as_float, math.inf) if as_float < value else as_float
        below = math.nextafter(as_float, -math.inf) if as_float > value else as_float
        if op in ("$gt", "$gte"):
            return "$gte", above
        return "$lte", below
    return op, value


def mongo_sort(order: Sequence[tuple[str, bool]], field: Callable[[str], str]) -> list[Any]:
    """A pymongo sort specification from ``(column, descending)`` pairs."""
    return [(field(name), -1 if descending else 1) for name, descending in order]
