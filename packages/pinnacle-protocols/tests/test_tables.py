"""The stored forms SQL databackends share: the schemas table's text and JSON cell text."""

from __future__ import annotations

import pytest
from hypothesis import given

from pinnacle_protocols import DType, Field, Schema, SchemaError
from pinnacle_protocols.tables import (
    SCHEMAS_TABLE,
    dump_json,
    load_json,
    schema_from_text,
    schema_to_text,
)
from pinnacle_protocols.testing.strategies import json_values, schemas


@given(schemas())
def test_a_schema_survives_its_stored_text(schema: Schema) -> None:
    assert schema_from_text(schema_to_text(schema)) == schema
    assert schema_from_text(schema_to_text(schema).encode("utf-8")) == schema


def test_the_stored_text_is_stable() -> None:
    """Databases written by earlier versions hold this exact form: it must keep reading."""
    schema = Schema(
        fields=(
            Field(name="id", dtype=DType.INT, nullable=False),
            Field(name="v", dtype=DType.VECTOR, dim=3),
        )
    )
    text = (
        '{"fields":[{"name":"id","dtype":"int","nullable":false,"dim":null},'
        '{"name":"v","dtype":"vector","nullable":true,"dim":3}]}'
    )
    assert schema_to_text(schema) == text
    assert schema_from_text(text) == schema
    assert SCHEMAS_TABLE == "_pinnacle_ibis_schemas"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"fields": 1}',
        '{"fields": [{"name": "a"}]}',
        '{"fields": [{"name": "a", "dtype": "money"}]}',
        '{"fields": [{"name": "v", "dtype": "vector", "dim": 0}]}',
    ],
)
def test_unreadable_stored_text_is_a_schema_error(text: str) -> None:
    with pytest.raises(SchemaError, match="stored table schema is unreadable"):
        schema_from_text(text)


@given(json_values())
def test_json_cells_survive_their_text(value: object) -> None:
    assert load_json(dump_json(value)) == value
    assert load_json(dump_json(value).encode("utf-8")) == value
    assert load_json(None) is None
