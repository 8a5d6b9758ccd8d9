"""Translate the portable filter language into MongoDB query documents.

The walk over the filter is :func:`pinnacle_protocols.filters.compile_filter`; this module gives
it MongoDB's leaves.

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
  columns can hold arrays and only take NULL tests, so on them "is NULL" is written
  ``{$eq: null, $not: {$type: "array"}}``.
* MongoDB orders binary data by length before content, the portable language bytewise. Range
  comparisons on ``bytes`` operands are therefore evaluated in Python with
  :func:`pinnacle_protocols.filters.matcher` over the rows the rest of the filter selects
  (:attr:`CompiledFilter.client_side`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from pinnacle_protocols.filters import COMPARISON_OPS, Filter
from pinnacle_protocols.filters import compile_filter as compile_predicate

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
    leaves = _Leaves(field=field, array_valued=array_valued)
    if not _needs_client_side(where):
        return CompiledFilter(query=compile_predicate(where, leaves))
    # Push down the top-level conjuncts that MongoDB can answer exactly; the caller evaluates
    # the whole filter on what comes back.
    pushed = {k: v for k, v in where.items() if not _needs_client_side({k: v})}
    query = compile_predicate(pushed, leaves) if pushed else {}
    return CompiledFilter(query=query, client_side=True)


# ---------------------------------------------------------------------- client-side detection
class _ClientSide:
    """Leaves whose predicate says whether MongoDB cannot answer a filter: a range comparison
    on ``bytes`` (MongoDB orders BinData by length first)."""

    def column(self, name: str) -> None:
        return None

    def literal(self, name: str, column: None, value: Any) -> Any:
        return value

    def constant(self, value: bool) -> bool:
        return False

    def compare(self, column: None, op: str, literal: Any, never_null: bool) -> bool:
        return op in COMPARISON_OPS and isinstance(literal, (bytes, bytearray, memoryview))

    def member(self, column: None, literals: Sequence[Any], never_null: bool) -> bool:
        return False

    def is_null(self, column: None, null: bool) -> bool:
        return False

    def all_of(self, parts: Sequence[bool]) -> bool:
        return any(parts)

    def any_of(self, parts: Sequence[bool]) -> bool:
        return any(parts)

    def negate(self, part: bool) -> bool:
        return part


def _needs_client_side(where: Mapping[str, Any]) -> bool:
    return compile_predicate(where, _ClientSide())


# ---------------------------------------------------------------------- translation
@attrs.frozen
class _Column:
    field: str
    array: bool


#: A clause no document matches (every document has an ``_id``).
_FALSE: dict[str, Any] = {"_id": {"$in": []}}
_INVERSE = {"$eq": "$ne", "$ne": "$eq", "$in": "$nin", "$nin": "$in"}


def _single(clause: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """``(field, operator document)`` when ``clause`` tests one field, else None."""
    if len(clause) != 1:
        return None
    ((name, ops),) = clause.items()
    if name.startswith("$") or not isinstance(ops, dict):
        return None
    return name, ops


def _array_null(name: str) -> dict[str, Any]:
    return {name: {"$eq": None, "$not": {"$type": "array"}}}


def _array_not_null(name: str) -> dict[str, Any]:
    return {"$or": [{name: {"$ne": None}}, {name: {"$type": "array"}}]}


@attrs.frozen(kw_only=True)
class _Leaves:
    """The leaves of :func:`pinnacle_protocols.filters.compile_filter` as query documents.

    MongoDB's logic is two-valued like the portable one, so ``never_null`` changes nothing.
    Negations and conjunctions keep MongoDB's own operators where one says the same
    (``$ne``, ``$nin``, ``$not``, one operator document per field), else ``$nor``/``$and``.
    """

    field: Callable[[str], str]
    array_valued: Callable[[str], bool]

    def column(self, name: str) -> _Column:
        return _Column(self.field(name), self.array_valued(name))

    def literal(self, name: str, column: _Column, value: Any) -> Any:
        return value

    def constant(self, value: bool) -> dict[str, Any]:
        return {} if value else dict(_FALSE)

    def compare(self, column: _Column, op: str, literal: Any, never_null: bool) -> dict[str, Any]:
        if op != "$eq":
            return {column.field: dict([_comparison(op, literal)])}
        value = _scalar(literal)
        return {column.field: {"$in": []} if value is _IMPOSSIBLE else {"$eq": value}}

    def member(self, column: _Column, literals: Sequence[Any], never_null: bool) -> dict[str, Any]:
        values = [_scalar(v) for v in literals]
        return {column.field: {"$in": [v for v in values if v is not _IMPOSSIBLE]}}

    def is_null(self, column: _Column, null: bool) -> dict[str, Any]:
        # On an array MongoDB's {$eq: null} also matches a null *element*.
        if column.array:
            return _array_null(column.field) if null else _array_not_null(column.field)
        return {column.field: {"$eq": None} if null else {"$ne": None}}

    def all_of(self, parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for clause in parts:
            for key, value in clause.items():
                if key not in merged:
                    merged[key] = value
                elif not key.startswith("$") and not set(merged[key]) & set(value):
                    merged[key] = {**merged[key], **value}  # one operator document per field
                else:
                    return {"$and": list(parts)}
        return merged

    def any_of(self, parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
        # $eq/$in tests of one field are one $in (its None matches NULL, as $eq None does)
        singles = [_single(p) for p in parts]
        if all(s is not None and len(s[1]) == 1 for s in singles):
            tests = [s for s in singles if s is not None]
            if len({name for name, _ in tests}) == 1 and all(
                "$eq" in ops or "$in" in ops for _, ops in tests
            ):
                items: list[Any] = []
                for _, ops in tests:
                    items.extend([ops["$eq"]] if "$eq" in ops else ops["$in"])
                return {tests[0][0]: {"$in": items}}
        return {"$or": list(parts)}

    def negate(self, part: dict[str, Any]) -> dict[str, Any]:
        if not part:
            return dict(_FALSE)
        if part == _FALSE:
            return {}
        single = _single(part)
        if single is not None:
            name, ops = single
            if part == _array_null(name):
                return _array_not_null(name)
            if len(ops) == 1:
                ((op, operand),) = ops.items()
                if op in _INVERSE:
                    return {name: {_INVERSE[op]: operand}}
            if "$not" not in ops and "$type" not in ops:
                return {name: {"$not": ops}}
        return {"$nor": [part]}


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
