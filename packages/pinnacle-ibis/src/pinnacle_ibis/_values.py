"""Validation and normalisation of portable values: :mod:`pinnacle_protocols.arrow`, re-exported.

The canonical Arrow form and its vectorised checks live in pinnacle-protocols so the facade and
every Arrow-speaking databackend share one implementation.
"""

from __future__ import annotations

from pinnacle_protocols.arrow import (
    INT64_MAX,
    INT64_MIN,
    arrow_type,
    canonical_arrow_schema,
    canonical_table,
    coerce_rows,
    coerce_value,
    dump_json,
    empty_table,
    load_json,
    storage_value,
)

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "arrow_type",
    "canonical_arrow_schema",
    "canonical_table",
    "coerce_rows",
    "coerce_value",
    "dump_json",
    "empty_table",
    "load_json",
    "storage_value",
]
