"""The generic filter compiler: structure it asks of a backend, and the exact-number rewrite."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pinnacle_protocols import DType, Field, Schema, evaluate
from pinnacle_protocols.filters import (
    COMPARISON_OPS,
    FilterLeaves,
    Matcher,
    compile_filter,
    matcher,
)
from pinnacle_protocols.filters import _PythonLeaves as PythonLeaves


class _TextLeaves:
    """Renders predicates as SQL-like text; ``!`` marks a never-NULL leaf."""

    def column(self, name: str) -> str:
        return name

    def literal(self, name: str, column: str, value: Any) -> str:
        return repr(value)

    def constant(self, value: bool) -> str:
        return str(value).upper()

    def compare(self, column: str, op: str, literal: str, never_null: bool) -> str:
        return f"{column} {op} {literal}{'!' if never_null else ''}"

    def member(self, column: str, literals: Sequence[str], never_null: bool) -> str:
        return f"{column} IN ({', '.join(literals)}){'!' if never_null else ''}"

    def is_null(self, column: str, null: bool) -> str:
        return f"{column} IS {'' if null else 'NOT '}NULL"

    def all_of(self, parts: Sequence[str]) -> str:
        return "(" + " AND ".join(parts) + ")"

    def any_of(self, parts: Sequence[str]) -> str:
        return "(" + " OR ".join(parts) + ")"

    def negate(self, part: str) -> str:
        return f"NOT {part}"


_text: FilterLeaves[str, str, str] = _TextLeaves()
_SCHEMA = Schema(fields=(Field(name="i", dtype=DType.INT), Field(name="f", dtype=DType.FLOAT)))


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"a": 1}, "a $eq 1"),
        ({"a": None}, "a IS NULL"),
        ({"a": {"$ne": None}}, "NOT a IS NULL"),
        ({"a": {"$ne": 1}}, "NOT a $eq 1!"),
        ({"a": {"$gt": 1, "$lt": 5}}, "(a $gt 1 AND a $lt 5)"),
        ({"a": {"$in": [1, None]}}, "(a $eq 1 OR a IS NULL)"),
        ({"a": {"$in": [1, 2]}}, "a IN (1, 2)"),
        ({"a": {"$in": []}}, "FALSE"),
        ({"a": {"$nin": [1, 2, None]}}, "NOT (a IN (1, 2)! OR a IS NULL)"),
        ({"a": {"$exists": False}}, "a IS NULL"),
        ({"a": {"$not": {"$gt": 1}}}, "NOT a $gt 1!"),
        ({"a": {"$not": {"$not": {"$not": {"$gt": 1}}}}}, "NOT a $gt 1!"),
        ({"a": {"$not": {"$not": {"$gt": 1}}}}, "a $gt 1!"),
        ({"$or": [{"a": 1}, {"b": 2}], "c": 3}, "((a $eq 1 OR b $eq 2) AND c $eq 3)"),
        ({"$and": [{"a": 1}]}, "a $eq 1"),
    ],
)
def test_structure(where: dict[str, Any], expected: str) -> None:
    assert compile_filter(where, _text) == expected


def test_never_null_reaches_every_leaf() -> None:
    assert compile_filter({"a": {"$gte": 1}, "b": {"$in": [1, 2]}}, _text, never_null=True) == (
        "(a $gte 1! AND b IN (1, 2)!)"
    )


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"f": 2**53 + 1}, "FALSE"),
        ({"f": {"$in": [2**53 + 1, 3]}}, "f $eq 3.0"),
        ({"f": {"$gt": 2**53 + 1}}, f"f $gte {float(2**53 + 2)!r}"),
        ({"f": {"$lte": 2**53 + 1}}, f"f $lte {float(2**53)!r}"),
        ({"f": {"$lt": 2**1024}}, f"f $lte {math.nextafter(math.inf, 0.0)!r}"),
        ({"f": {"$gt": 2**1024}}, "FALSE"),
        ({"i": 2**53 + 1}, f"i $eq {2**53 + 1}"),
        ({"i": 2**63}, "FALSE"),
        ({"i": {"$lt": 2**63}}, "i IS NOT NULL"),
        ({"i": {"$lt": -(2**63) - 1}}, "FALSE"),
    ],
)
def test_schema_makes_numbers_exact(where: dict[str, Any], expected: str) -> None:
    assert compile_filter(where, _text, _SCHEMA) == expected


class _DoubleLeaves(PythonLeaves):
    """An engine that rounds every number operand to a double before it compares."""

    def literal(self, name: str, column: str, value: Any) -> Any:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok else value


_near_big = st.integers(2**53, 2**60).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(-2, 2).map(lambda k: float(n) + k * 2.0**8))
)


@given(_near_big, st.sampled_from(sorted(COMPARISON_OPS | {"$eq", "$ne"})))
def test_rounding_engine_answers_exactly_with_the_schema(pair: tuple[int, float], op: str) -> None:
    n, cell = pair
    where = {"f": {op: n}}
    leaves: FilterLeaves[Matcher, str, Any] = _DoubleLeaves()
    assert compile_filter(where, leaves, _SCHEMA)({"f": cell}) is evaluate(where, {"f": cell})


def test_rounding_engine_without_the_schema_is_wrong() -> None:
    """The test above can fail: without the schema the rounding engine says 2**53 == 2**53 + 1."""
    where = {"f": 2**53 + 1}
    row = {"f": float(2**53)}
    assert compile_filter(where, _DoubleLeaves())(row) is True
    assert evaluate(where, row) is False
    assert compile_filter(where, _DoubleLeaves(), _SCHEMA)(row) is False


def test_matcher_of_nothing_matches_everything() -> None:
    assert matcher(None)({}) is True
    assert matcher({})({"a": 1}) is True
