"""The portable filter -> MongoDB query translation, checked on the query documents.

These are unit tests of the translation itself (no server); the contract suites check the
rows that come back from real wire-protocol servers.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from pinnacle_mongo._query import compile_filter
from pinnacle_mongo._rows import decode_field, encode_field

T = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
T_SUB = T + timedelta(microseconds=400)


def q(where: object) -> object:
    compiled = compile_filter(where)  # type: ignore[arg-type]
    assert not compiled.client_side
    return compiled.query


def test_empty_and_none() -> None:
    assert q(None) == {}
    assert q({}) == {}


def test_null_semantics() -> None:
    """$exists is 'is (not) NULL'; $eq/$ne None use MongoDB's null (which matches missing)."""
    assert q({"a": None}) == {"a": {"$eq": None}}
    assert q({"a": {"$ne": None}}) == {"a": {"$ne": None}}
    assert q({"a": {"$exists": True}}) == {"a": {"$ne": None}}
    assert q({"a": {"$exists": False}}) == {"a": {"$eq": None}}
    assert q({"a": {"$in": [1, None]}}) == {"a": {"$in": [1, None]}}


def test_operators_pass_through() -> None:
    assert q({"a": 1}) == {"a": {"$eq": 1}}
    assert q({"a": {"$gte": 1, "$lt": 3}}) == {"a": {"$gte": 1, "$lt": 3}}
    assert q({"a": {"$nin": ["x"]}}) == {"a": {"$ne": "x"}}
    assert q({"a": {"$nin": ["x", "y"]}}) == {"a": {"$nin": ["x", "y"]}}
    assert q({"a": {"$nin": ["x", None]}}) == {"a": {"$nin": ["x", None]}}
    assert q({"a": {"$not": {"$gt": 1}}}) == {"a": {"$not": {"$gt": 1}}}


def test_colliding_operators_become_and() -> None:
    """$ne together with $exists: True would be two $ne keys: separate clauses instead."""
    assert q({"a": {"$ne": 5, "$exists": True}}) == {
        "$and": [{"a": {"$ne": 5}}, {"a": {"$ne": None}}]
    }
    assert q({"a": {"$not": {"$eq": 1, "$exists": False}}}) == {
        "$nor": [{"$and": [{"a": {"$eq": 1}}, {"a": {"$eq": None}}]}]
    }
    assert q({"a": {"$not": {"$not": {"$gt": 1}}}}) == {"a": {"$gt": 1}}
    assert q({"a": {"$not": {"$gte": 1, "$ne": 3}}}) == {"a": {"$not": {"$gte": 1, "$ne": 3}}}


def test_logical_operators_and_implicit_and() -> None:
    assert q({"$or": [{"a": 1}, {"b": None}], "c": {"$gt": 0}}) == {
        "$or": [{"a": {"$eq": 1}}, {"b": {"$eq": None}}],
        "c": {"$gt": 0},
    }
    assert q({"$and": [{"a": 1}], "a": 2}) == {"$and": [{"a": {"$eq": 1}}, {"a": {"$eq": 2}}]}


def test_sub_millisecond_datetimes() -> None:
    """MongoDB stores whole milliseconds: operands are moved to the equivalent millisecond."""
    up = T + timedelta(milliseconds=1)
    assert q({"t": {"$gt": T_SUB}}) == {"t": {"$gte": up}}
    assert q({"t": {"$gte": T_SUB}}) == {"t": {"$gte": up}}
    assert q({"t": {"$lt": T_SUB}}) == {"t": {"$lte": T}}
    assert q({"t": {"$lte": T_SUB}}) == {"t": {"$lte": T}}
    assert q({"t": T_SUB}) == {"t": {"$in": []}}
    assert q({"t": {"$ne": T_SUB}}) == {"t": {"$nin": []}}
    assert q({"t": {"$in": [T_SUB, T]}}) == {"t": {"$in": [T]}}
    assert q({"t": T}) == {"t": {"$eq": T}}


def test_integers_beyond_int64() -> None:
    """BSON has no wider ints: the equal double, or nothing when no double equals it."""
    assert q({"a": 2**70}) == {"a": {"$eq": float(2**70)}}
    assert q({"a": 2**70 + 1}) == {"a": {"$in": []}}
    assert q({"a": {"$in": [1, 2**70 + 1]}}) == {"a": {"$in": [1]}}
    assert q({"a": {"$gt": 2**70 + 1}}) == {"a": {"$gte": math.nextafter(float(2**70), math.inf)}}
    assert q({"a": {"$lt": -(2**70) - 1}}) == {
        "a": {"$lte": math.nextafter(float(-(2**70)), -math.inf)}
    }
    assert q({"a": {"$lt": 2**2000}}) == {"a": {"$lt": math.inf}}


def test_bytes_ranges_are_evaluated_client_side() -> None:
    """MongoDB orders BinData by length first, the portable language bytewise."""
    compiled = compile_filter({"y": {"$gt": b"\x00"}, "i": 1})
    assert compiled.client_side
    assert compiled.query == {"i": {"$eq": 1}}
    nested = compile_filter({"$or": [{"y": {"$not": {"$lte": b"a"}}}, {"i": 2}]})
    assert nested.client_side
    assert nested.query == {}
    assert not compile_filter({"y": b"\x00"}).client_side


def test_field_mapping() -> None:
    compiled = compile_filter({"a.b": 1, "$x": {"$exists": True}}, encode_field)
    assert compiled.query == {"a%2Eb": {"$eq": 1}, "%24x": {"$ne": None}}


@pytest.mark.parametrize("name", ["a", "a.b", "$x", "%", "a%2Eb", "$", "x.$y%", "名前.1"])
def test_field_encoding_round_trips(name: str) -> None:
    encoded = encode_field(name)
    assert decode_field(encoded) == name
    assert "." not in encoded
    assert not encoded.startswith("$")


def test_field_encoding_is_injective() -> None:
    names = ["a.b", "a%2Eb", "a%252Eb", "$a", "%24a", "a"]
    assert len({encode_field(n) for n in names}) == len(names)


def test_null_tests_on_array_valued_columns() -> None:
    """JSON/vector cells may be arrays: NULL tests must not look at their elements."""

    def arr(where: object) -> object:
        compiled = compile_filter(where, array_valued=lambda name: name == "j")  # type: ignore[arg-type]
        return compiled.query

    is_null = {"j": {"$eq": None, "$not": {"$type": "array"}}}
    not_null = {"$or": [{"j": {"$ne": None}}, {"j": {"$type": "array"}}]}
    assert arr({"j": None}) == is_null
    assert arr({"j": {"$exists": False}}) == is_null
    assert arr({"j": {"$in": [None]}}) == is_null
    assert arr({"j": {"$ne": None}}) == not_null
    assert arr({"j": {"$nin": [None]}}) == not_null
    contradiction = {**not_null, **is_null}
    assert arr({"j": {"$exists": True, "$eq": None}}) == contradiction
    assert arr({"j": {"$not": {"$exists": True, "$eq": None}}}) == {"$nor": [contradiction]}
    assert arr({"j": {"$in": []}}) == {"_id": {"$in": []}}
    assert arr({"j": {"$nin": []}}) == {}
    assert arr({"j": None, "i": 1}) == {**is_null, "i": {"$eq": 1}}
