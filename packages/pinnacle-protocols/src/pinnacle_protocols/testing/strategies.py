"""Hypothesis strategies for pinnacledb records, blobs, schemas, rows and filters.

Every value strategy here is *engine friendly*: it draws only values that every supported
engine (SQLite, DuckDB, PostgreSQL, MySQL/MariaDB, MongoDB, Parquet engines) can store and give
back unchanged, so a difference between a store and the reference model is a bug in the store,
not a limit of the engine:

* datetimes are timezone-aware UTC with millisecond precision, between 1970 and 2100 (MongoDB
  keeps milliseconds; MySQL ``DATETIME`` and Parquet cover that range);
* floats are finite, never subnormal, and exactly representable as IEEE doubles (vector items
  are even exactly representable as float32, which pgvector and some list types use);
* integers fit in int64; ints used as operands on float columns stay within +-2**31 so that
  engines converting them to double compare exactly;
* strings contain no NUL (PostgreSQL rejects it) and no lone surrogate (not UTF-8). Operands of
  ``$gt $gte $lt $lte`` on str columns are lowercase ASCII letters and digits only, because that
  is the one alphabet whose order is the same under code-point order (the reference) and under
  the linguistic collations that databases use by default (``en_US``: "B" < "a" by code point but
  "a" < "B" linguistically); values stored in rows still cover all of Unicode, so a store must
  still compare by code point (``COLLATE "C"``, ``utf8mb4_bin``) to pass;
* bytes may contain zero bytes;
* JSON values nest at most 30 containers deep (MariaDB's ``JSON_VALID`` rejects 32); NaN and
  infinities are not portable anywhere (insert refuses them with ``SchemaError``, and the state
  machine checks that it does).

Record identifiers (:func:`identifiers`) are deliberately hostile: quotes, ``;``, ``' OR 1=1 --``,
slashes, SQL keywords, spaces (also trailing), case variants, astral characters. They are values
in the stores, so every engine must keep them exactly (binary, no-pad collations).
Table and column names (:func:`table_names`, :func:`column_names`) are identifiers *of the
engine* and stay inside what every engine accepts: at most 30 characters and 60 UTF-8 bytes,
Basic Multilingual Plane only (MySQL), no NUL, ``.``, ``$`` or ``/`` (MongoDB, files), no
leading or trailing whitespace (MySQL rejects a trailing tab, VT, FF...), never ``_id`` or the
reserved ``_pinnacle`` prefix. They still contain quotes, spaces, ``;``, ``%``, backslashes,
control characters, SQL keywords and non-ASCII letters.
"""

from __future__ import annotations

import itertools
import random
import string
import struct
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from pinnacle_protocols.filters import Filter
from pinnacle_protocols.protocols import OrderBy
from pinnacle_protocols.records import (
    MAX_DEPTH,
    ArtifactRef,
    ComponentKey,
    ComponentRecord,
    DType,
    Field,
    JobRecord,
    JobStatus,
    JSONValue,
    Schema,
)

__all__ = [
    "FILTERABLE_DTYPES",
    "HARD_JSON",
    "HARD_NAMES",
    "HARD_STRINGS",
    "ORDERABLE_DTYPES",
    "TRICKY_IDENTIFIERS",
    "artifact_refs",
    "ascii_words",
    "blobs",
    "column_names",
    "column_values",
    "component_keys",
    "component_records",
    "filters",
    "identifiers",
    "int64s",
    "job_records",
    "json_objects",
    "json_values",
    "order_bys",
    "portable_floats",
    "rows",
    "schemas",
    "sha256_hex",
    "table_names",
    "texts",
    "utc_datetimes",
    "value_pools",
    "values_for",
]

MiB = 2**20
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: dtypes that filters can compare (``$eq``, ``$in``, ...); JSON and vector only test NULL.
FILTERABLE_DTYPES = frozenset(
    {DType.INT, DType.FLOAT, DType.STR, DType.BOOL, DType.BYTES, DType.DATETIME}
)
#: dtypes with a portable order (``$gt``..., ``order_by``); bool orders only in ``order_by``.
ORDERABLE_DTYPES = frozenset({DType.INT, DType.FLOAT, DType.STR, DType.BYTES, DType.DATETIME})

#: Identifiers that broke real systems: injection, quoting, paths, keywords, Unicode.
TRICKY_IDENTIFIERS: tuple[str, ...] = (
    "' OR 1=1 --",
    "Robert'); DROP TABLE students;--",
    '"; DROP TABLE x; --',
    "select",
    "SELECT",
    "from",
    "table",
    "order",
    "null",
    "NULL",
    "true",
    "a/b",
    "../../etc/passwd",
    "..\\windows",
    "/",
    "\\",
    "'",
    '"',
    "`",
    "``",
    "a;b",
    "with space",
    "trailing ",
    " leading",
    " ",
    "  ",
    "a.b",
    "$where",
    "%",
    "_",
    "%s",
    "{}",
    "?",
    ":name",
    "日本語",
    "Ωmega",
    "ß",
    "SS",
    "İstanbul",
    "e\u0301",
    "\u00e9",
    "emoji 😀",
    "\U0001d518\U0001d52b\U0001d526",  # mathematical fraktur, outside the BMP
    "tab\there",
    "new\nline",
    "x" * 255,
    "é" * 255,
    "😀" * 255,
)

#: String values that broke or could break an escaping layer: every C0 control character but
#: NUL (BEL, VT and FF are C escapes MySQL does not know, issue 19), DEL, C1 and Unicode line
#: separators, backslash sequences, LIKE wildcards, trailing spaces, case variants, characters
#: outside the BMP, a BOM and the empty string. All distinct.
HARD_STRINGS: tuple[str, ...] = (
    "a\x07b",
    "a\x0bb\\",
    "\x0c",
    "\x1a",
    "\x1b[0m",
    "\x7f",
    "\x08\x85\u2028\u2029",
    "".join(map(chr, range(1, 32))),
    "\\",
    "a\\",
    "\\a\\v\\f\\0\\Z\\%\\_\\n",
    "%_",
    "trailing ",
    "trailing",
    "Case",
    "case",
    "\U0001f600\x07",
    "\U0010ffff",
    "\ufeff",
    "",
)


def _nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


#: JSON values at the edges: empty containers, deep nesting (30 containers, the portable
#: limit: MariaDB's JSON_VALID rejects 32 nested containers, MySQL allows 100),
#: int64 bounds, -0.0, huge and tiny floats, hard strings as keys and values.
HARD_JSON: tuple[Any, ...] = (
    [],
    {},
    "",
    [[]],
    [{}],
    {"": {}},
    {"": None},
    _nested(30, None),
    _nested(29, []),
    _nested(30, "a\x07b"),
    [2**63 - 1, -(2**63), 0, -0.0, 1e300, -1e-300],
    {"a\x07b": "\x0b\x0c\\", "\U0001f600": "\x7f", "$x": {"a.b": [None]}},
)
#: Table/column names with control characters and backslashes (every engine must accept them).
HARD_NAMES: tuple[str, ...] = (
    "a\x07b",
    "tab\tname",
    "v\x0bf\x0cx",
    "back\\slash",
    "\\a\\v",
    "nl\nx",
)

#: Characters an escaping layer or a collation gets wrong, drawn far more often than
#: ``st.characters`` would: C0 controls (no NUL), DEL, C1 NEL, line/paragraph separators, BOM,
#: backslash, quotes, LIKE wildcards, and characters outside the BMP.
_HARD_CHARS = "".join(map(chr, range(1, 32))) + "\x7f\x85\u2028\u2029\ufeff\\'\"`%_ "
_ASTRAL_CHARS = "\U0001f600\U0001d518\U0010ffff\U00020000"
_TEXT_CHARS = st.one_of(
    st.characters(codec="utf-8", exclude_characters="\x00"),
    st.sampled_from(_HARD_CHARS + _ASTRAL_CHARS),
)
_ASCII_LOWER_DIGITS = string.ascii_lowercase + string.digits


# ---------------------------------------------------------------------------- scalars
@cache
def texts(*, min_size: int = 0, max_size: int = 40) -> SearchStrategy[str]:
    """Unicode text without NUL or surrogates, plus tricky identifiers and hard strings."""
    tricky = [t for t in TRICKY_IDENTIFIERS + HARD_STRINGS if min_size <= len(t) <= max_size]
    base = st.text(_TEXT_CHARS, min_size=min_size, max_size=max_size)
    return st.one_of(base, st.sampled_from(tricky)) if tricky else base


@cache
def ascii_words(*, min_size: int = 0, max_size: int = 8) -> SearchStrategy[str]:
    """Lowercase ASCII letters and digits: ordered identically under every collation."""
    return st.text(st.sampled_from(_ASCII_LOWER_DIGITS), min_size=min_size, max_size=max_size)


@cache
def int64s() -> SearchStrategy[int]:
    """Integers that fit in a signed 64-bit column, with the boundaries well represented."""
    return st.one_of(
        st.integers(-1000, 1000),
        st.integers(INT64_MIN, INT64_MAX),
        st.sampled_from([INT64_MIN, INT64_MAX, 0, -1, 2**31, -(2**31) - 1, 2**53 + 1]),
    )


@cache
def portable_floats(*, width: Literal[32, 64] = 64) -> SearchStrategy[float]:
    """Finite, non-subnormal floats (``width=32``: exactly representable as float32)."""
    limit = 1e300 if width == 64 else 2.0**127
    return st.one_of(
        st.floats(
            min_value=-limit,
            max_value=limit,
            allow_nan=False,
            allow_infinity=False,
            allow_subnormal=False,
            width=width,
        ),
        st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.0**31, -(2.0**52)]),
    )


@cache
def utc_datetimes() -> SearchStrategy[datetime]:
    """Timezone-aware UTC datetimes with millisecond precision, 1970-01-01 to 2100-01-01."""
    start = datetime(1970, 1, 1, tzinfo=UTC)
    span_ms = int((datetime(2100, 1, 1, tzinfo=UTC) - start).total_seconds() * 1000)
    return st.integers(0, span_ms).map(lambda ms: start + timedelta(milliseconds=ms))


@cache
def sha256_hex() -> SearchStrategy[str]:
    """Random 64-character lowercase hex digests."""
    return st.binary(min_size=32, max_size=32).map(bytes.hex)


@cache
def artifact_refs() -> SearchStrategy[ArtifactRef]:
    """Refs with random digests and sizes (no blob behind them)."""
    return st.builds(
        lambda sha, size: ArtifactRef(sha256=sha, size=size),
        sha256_hex(),
        st.integers(0, 2**40),
    )


# ---------------------------------------------------------------------------- blobs
_CHUNK_EDGES = (2**16 - 1, 2**16, 2**16 + 1, MiB - 1, MiB, MiB + 1, 4 * MiB, 5 * MiB + 3)


def _expand(size: int, seed: int, pattern: bool) -> bytes:
    if pattern:
        unit = struct.pack(">I", seed)
        return (unit * (size // 4 + 1))[:size]
    return random.Random(seed).randbytes(size)  # noqa: S311 - test data, not secrets


@cache
def blobs(*, max_size: int = 4 * MiB) -> SearchStrategy[bytes]:
    """Blobs of 0 bytes to ``max_size``: mostly small, sometimes large or on chunk boundaries.

    Large blobs are expanded from a drawn seed, so drawing several MiB stays cheap and shrinks
    well (to smaller sizes and simpler seeds).
    """
    small = st.binary(max_size=min(max_size, 256))
    seeds = st.integers(0, 2**32 - 1)
    sizes = st.integers(0, max_size)
    edges = [e for e in _CHUNK_EDGES if e <= max_size]
    if edges:
        sizes = st.one_of(sizes, st.sampled_from(edges))
    large = st.builds(_expand, sizes, seeds, st.booleans())
    return st.integers(0, 15).flatmap(lambda k: large if k == 0 else small)


# ---------------------------------------------------------------------------- names
@cache
def identifiers(*, max_size: int = 255) -> SearchStrategy[str]:
    """Non-empty record identifiers: hostile but valid (no NUL, at most ``max_size`` chars)."""
    fragments = st.sampled_from([t for t in TRICKY_IDENTIFIERS if len(t) <= 20])
    joined = st.lists(fragments, min_size=1, max_size=4).map("".join)
    return st.one_of(
        st.text(_TEXT_CHARS, min_size=1, max_size=min(max_size, 40)),
        st.sampled_from([t for t in TRICKY_IDENTIFIERS if 0 < len(t) <= max_size]),
        joined,
    ).filter(lambda s: 0 < len(s) <= max_size)


_NAME_CHARS = st.one_of(
    st.sampled_from(string.ascii_letters + string.digits + "_"),
    st.sampled_from(" '\"`;-=()*,#@!?&|<>~+\\%"),
    # Control characters (issue 19); never at either end (see _portable_name).
    st.sampled_from("".join(map(chr, range(1, 32))) + "\x7f"),
    st.characters(
        min_codepoint=0xA0,
        max_codepoint=0xFFFF,
        categories=("Lu", "Ll", "Lo", "Nd"),
    ),
)
_NAME_WORDS = (
    "select",
    "from",
    "where",
    "table",
    "order",
    "group",
    "user",
    "index",
    "null",
    "drop",
    "' OR 1=1 --",
    "a b",
    'say "hi"',
    "it's",
    "semi;colon",
    "名前",
    "größe",
    "Ωmega",
    "x",
    "id",
)


def _portable_name(name: str) -> bool:
    return (
        0 < len(name) <= 30
        and len(name.encode("utf-8")) <= 60
        and name == name.strip()
        and name.casefold() != "_id"
        and not name.casefold().startswith("_pinnacle")
        and not name.startswith("system.")
    )


@cache
def table_names() -> SearchStrategy[str]:
    """Table names every engine accepts, still with quotes, spaces, keywords and non-ASCII."""
    return st.one_of(
        st.sampled_from(_NAME_WORDS),
        st.text(_NAME_CHARS, min_size=1, max_size=20),
        st.lists(st.sampled_from(_NAME_WORDS), min_size=2, max_size=3).map("_".join),
    ).filter(_portable_name)


@cache
def column_names() -> SearchStrategy[str]:
    """Column names every engine accepts (see :func:`table_names`)."""
    return table_names()


# ---------------------------------------------------------------------------- JSON
def _depth(value: Any) -> int:
    """Containers nested in ``value`` (a scalar is 0, ``[]`` is 1)."""
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@cache
def json_values(*, max_leaves: int = 8, max_depth: int = MAX_DEPTH) -> SearchStrategy[JSONValue]:
    """JSON values of bounded size: finite floats, int64 ints, text without NUL.

    ``max_depth`` bounds the nesting of the edge values drawn from :data:`HARD_JSON` (a value
    stored inside a dict, such as ``ComponentRecord.data``, has one level less to spend).
    """
    keys = st.one_of(
        st.text(_TEXT_CHARS, max_size=12), st.sampled_from(["a", "b", "$x", "a.b", "", "null"])
    )
    scalars: SearchStrategy[JSONValue] = st.one_of(
        st.none(),
        st.booleans(),
        int64s(),
        portable_floats(),
        st.text(_TEXT_CHARS, max_size=20),
    )

    def extend(children: SearchStrategy[JSONValue]) -> SearchStrategy[JSONValue]:
        return st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(keys, children, max_size=4),
        )

    return st.one_of(
        st.recursive(scalars, extend, max_leaves=max_leaves),
        st.sampled_from([v for v in HARD_JSON if _depth(v) <= max_depth]),
    )


@cache
def json_objects(*, max_leaves: int = 8) -> SearchStrategy[dict[str, JSONValue]]:
    """JSON objects (dicts with string keys), e.g. for ``ComponentRecord.data``."""
    keys = st.one_of(st.text(_TEXT_CHARS, min_size=1, max_size=12), st.sampled_from(["$x", "a.b"]))
    # The dict itself is one level: its values may nest one level less than MAX_DEPTH.
    return st.dictionaries(
        keys, json_values(max_leaves=max_leaves, max_depth=MAX_DEPTH - 1), max_size=5
    )


# ---------------------------------------------------------------------------- records
def component_keys(
    *, type_ids: SearchStrategy[str] | None = None, names: SearchStrategy[str] | None = None
) -> SearchStrategy[ComponentKey]:
    """Component keys with hostile identifiers."""
    return st.builds(
        lambda t, i, v: ComponentKey(type_id=t, identifier=i, version=v),
        type_ids if type_ids is not None else identifiers(),
        names if names is not None else identifiers(),
        st.integers(0, 2**31 - 1),
    )


def component_records(
    *,
    type_ids: SearchStrategy[str] | None = None,
    names: SearchStrategy[str] | None = None,
    versions: SearchStrategy[int | None] | None = None,
) -> SearchStrategy[ComponentRecord]:
    """Component records; ``version`` is None (allocate) unless ``versions`` says otherwise."""
    return st.builds(
        lambda t, i, v, d, a, c: ComponentRecord(
            type_id=t, identifier=i, version=v, data=d, artifacts=a, created_at=c
        ),
        type_ids if type_ids is not None else identifiers(),
        names if names is not None else identifiers(),
        versions if versions is not None else st.none(),
        json_objects(max_leaves=6),
        st.dictionaries(st.text(_TEXT_CHARS, min_size=1, max_size=12), artifact_refs(), max_size=3),
        st.one_of(st.none(), utc_datetimes()),
    )


def job_records(
    *,
    job_ids: SearchStrategy[str] | None = None,
    components: SearchStrategy[ComponentKey | None] | None = None,
) -> SearchStrategy[JobRecord]:
    """Job records with any status and optional times."""
    progress = st.fixed_dictionaries(
        {
            "runner": st.one_of(st.none(), st.sampled_from(["local://", "dask://host:8786"])),
            "rows_total": st.one_of(st.none(), st.integers(0, 2**40)),
            "rows_done": st.integers(0, 2**40),
            "tasks_total": st.integers(0, 10_000),
            "tasks_done": st.integers(0, 10_000),
            "tasks_failed": st.integers(0, 10_000),
            "failed_sources": st.lists(texts(max_size=30), max_size=3).map(tuple),
            "updated_at": st.one_of(st.none(), utc_datetimes()),
        }
    )
    return st.builds(
        lambda j, k, s, c, a, t0, t1, t2, e, p: JobRecord(
            job_id=j,
            kind=k,
            status=s,
            component=c,
            args=a,
            created_at=t0,
            started_at=t1,
            finished_at=t2,
            error=e,
            **p,
        ),
        job_ids if job_ids is not None else identifiers(),
        identifiers(max_size=40),
        st.sampled_from(list(JobStatus)),
        components if components is not None else st.one_of(st.none(), component_keys()),
        json_objects(max_leaves=4),
        st.one_of(st.none(), utc_datetimes()),
        st.one_of(st.none(), utc_datetimes()),
        st.one_of(st.none(), utc_datetimes()),
        st.one_of(st.none(), texts(max_size=60)),
        progress,
    )


# ---------------------------------------------------------------------------- schemas
def _field_strategy(names: SearchStrategy[str], dtypes: tuple[DType, ...]) -> SearchStrategy[Field]:
    def build(name: str, dtype: DType, nullable: int, dim: int) -> Field:
        return Field(
            name=name,
            dtype=dtype,
            nullable=nullable > 0,
            dim=dim if dtype is DType.VECTOR else None,
        )

    return st.builds(build, names, st.sampled_from(dtypes), st.integers(0, 3), st.integers(1, 6))


def _distinct_names(fields: list[Field]) -> bool:
    return len({f.name.lower() for f in fields}) == len(fields)


@cache
def _schemas(dtypes: tuple[DType, ...], max_columns: int) -> SearchStrategy[Schema]:
    return (
        st.lists(
            _field_strategy(column_names(), dtypes),
            min_size=1,
            max_size=max_columns,
            unique_by=lambda f: f.name.casefold(),
        )
        .filter(_distinct_names)
        .map(lambda fs: Schema(fields=tuple(fs)))
    )


def schemas(
    *,
    names: SearchStrategy[str] | None = None,
    dtypes: Sequence[DType] = tuple(DType),
    max_columns: int = 6,
) -> SearchStrategy[Schema]:
    """Portable schemas: column names unique even case-insensitively (DuckDB, MySQL)."""
    if names is None:
        return _schemas(tuple(dtypes), max_columns)
    return (
        st.lists(
            _field_strategy(names, tuple(dtypes)),
            min_size=1,
            max_size=max_columns,
            unique_by=lambda f: f.name.casefold(),
        )
        .filter(_distinct_names)
        .map(lambda fs: Schema(fields=tuple(fs)))
    )


@cache
def values_for(field: Field) -> SearchStrategy[Any]:
    """Non-NULL values for a column of ``field.dtype`` (engine friendly, see module doc)."""
    dtype = field.dtype
    if dtype is DType.INT:
        return int64s()
    if dtype is DType.FLOAT:
        return st.one_of(portable_floats(), st.integers(-(2**31), 2**31))
    if dtype is DType.STR:
        return st.one_of(texts(max_size=30), ascii_words(), st.sampled_from(HARD_STRINGS))
    if dtype is DType.BOOL:
        return st.booleans()
    if dtype is DType.BYTES:
        return st.binary(max_size=40)
    if dtype is DType.DATETIME:
        return utc_datetimes()
    if dtype is DType.JSON:
        return json_values(max_leaves=6).filter(lambda v: v is not None)
    size = field.dim
    return st.lists(
        portable_floats(width=32),
        min_size=size if size is not None else 1,
        max_size=size if size is not None else 6,
    )


def value_pools(schema: Schema, *, size: int = 4) -> SearchStrategy[dict[str, list[Any]]]:
    """A few values per column that rows and filters share, so filters match some rows."""
    return st.fixed_dictionaries(
        {
            f.name: st.lists(values_for(f), min_size=1, max_size=size).map(_dedupe)
            for f in schema.fields
        }
    )


def _dedupe(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if not any(type(v) is type(o) and v == o for o in out):
            out.append(v)
    return out


def column_values(
    field: Field, pools: Mapping[str, Sequence[Any]] | None = None
) -> SearchStrategy[Any]:
    """Values for ``field``: mostly from its pool (if any), sometimes fresh."""
    fresh = values_for(field)
    pool = list(pools.get(field.name, ())) if pools else []
    if not pool:
        return fresh
    pooled = st.sampled_from(pool)
    return st.one_of(pooled, pooled, pooled, fresh)


def rows(
    schema: Schema, *, pools: Mapping[str, Sequence[Any]] | None = None
) -> SearchStrategy[dict[str, Any]]:
    """Valid rows; a nullable column is sometimes None and sometimes left out (also NULL).

    Build the strategy once per schema and draw from it many times: construction is the
    expensive part.
    """
    required: dict[str, SearchStrategy[Any]] = {}
    optional: dict[str, SearchStrategy[Any]] = {}
    for f in schema.fields:
        values = column_values(f, pools)
        if f.nullable:
            optional[f.name] = st.one_of(values, values, st.none())
        else:
            required[f.name] = values
    return st.fixed_dictionaries(required, optional=optional)


# ---------------------------------------------------------------------------- filters
def _with_none(items: list[Any], add_none: bool) -> list[Any]:
    return _dedupe([*items, None] if add_none else items)


def _condition(
    field: Field, pools: Mapping[str, Sequence[Any]] | None, ordered: bool
) -> SearchStrategy[Any]:
    """Every shape of condition on one column: shorthand, each operator, pairs and ``$not``."""
    filterable = field.dtype in FILTERABLE_DTYPES
    value: SearchStrategy[Any] = column_values(field, pools) if filterable else st.nothing()
    maybe_none = st.one_of(st.none(), value) if filterable else st.none()
    items = st.builds(
        _with_none,
        st.lists(value, max_size=3) if filterable else st.just([]),
        st.integers(0, 3).map(lambda k: k == 0),
    )
    ops: dict[str, SearchStrategy[Any]] = {
        "$eq": maybe_none,
        "$ne": maybe_none,
        "$in": items,
        "$nin": items,
        "$exists": st.booleans(),
    }
    pairs = [("$ne", "$nin"), ("$eq", "$exists")]
    if ordered:
        operand = _ordered_operand(field, pools)
        ops.update(dict.fromkeys(("$gt", "$gte", "$lt", "$lte"), operand))
        pairs += [("$gte", "$lt"), ("$gt", "$lte"), ("$gt", "$ne")]
    singles = [st.fixed_dictionaries({op: s}) for op, s in ops.items()]
    doubles = [st.fixed_dictionaries({a: ops[a], b: ops[b]}) for a, b in pairs]
    negated = st.one_of(*singles, *doubles).map(lambda cond: {"$not": cond})
    return st.one_of(maybe_none, *singles, *doubles, negated)


def _ordered_operand(
    field: Field, pools: Mapping[str, Sequence[Any]] | None
) -> SearchStrategy[Any]:
    if field.dtype is DType.STR:
        ascii_pool = [
            v
            for v in (pools or {}).get(field.name, ())
            if isinstance(v, str) and all(c in _ASCII_LOWER_DIGITS for c in v)
        ]
        words = ascii_words(max_size=6)
        return st.one_of(words, st.sampled_from(ascii_pool)) if ascii_pool else words
    return column_values(field, pools)


def filters(
    schema: Schema,
    *,
    pools: Mapping[str, Sequence[Any]] | None = None,
    unordered: frozenset[DType] = frozenset(),
    max_leaves: int = 4,
) -> SearchStrategy[Filter | None]:
    """Valid filters for ``schema`` using every operator, type-correct, with NULL where allowed.

    Build the strategy once per schema and draw from it many times.

    Args:
        schema: The table's schema; filters only name its columns.
        pools: Values shared with the rows (see :func:`value_pools`), so filters match rows.
        unordered: dtypes on which no ``$gt/$gte/$lt/$lte`` is drawn (a declared store gap).
        max_leaves: Bound on the number of column conditions.
    """
    conditions = {
        f.name: _condition(f, pools, f.dtype in ORDERABLE_DTYPES and f.dtype not in unordered)
        for f in schema.fields
    }
    names = list(conditions)
    singles = [st.fixed_dictionaries({n: conditions[n]}) for n in names]
    pairs = [
        st.fixed_dictionaries({a: conditions[a], b: conditions[b]})
        for a, b in itertools.combinations(names, 2)
    ]
    # One column as often as two (one_of picks its branches uniformly).
    leaf: SearchStrategy[dict[str, Any]] = (
        st.one_of(st.one_of(*singles), st.one_of(*pairs)) if pairs else st.one_of(*singles)
    )

    # Two levels of $and/$or built by hand: st.recursive computes a repr of the whole leaf
    # strategy when validated, which is slow for per-table strategies.
    def combine(children: SearchStrategy[dict[str, Any]]) -> SearchStrategy[dict[str, Any]]:
        group = st.lists(children, min_size=1, max_size=3 if max_leaves > 2 else 2)
        return st.one_of(
            children,
            group.map(lambda fs: {"$and": fs}),
            group.map(lambda fs: {"$or": fs}),
            st.tuples(leaf, group).map(lambda t: {**t[0], "$or": t[1]}),
        )

    tree = combine(combine(leaf)) if max_leaves > 1 else leaf
    return st.one_of(st.none(), st.just({}), leaf, leaf, tree)


def order_bys(
    schema: Schema, *, unordered: frozenset[DType] = frozenset(), min_size: int = 0
) -> SearchStrategy[OrderBy]:
    """``order_by`` lists over orderable columns (bool included); ``[]`` if there are none."""
    names = [
        f.name
        for f in schema.fields
        if (f.dtype in ORDERABLE_DTYPES or f.dtype is DType.BOOL) and f.dtype not in unordered
    ]
    if not names:
        return st.just([])
    directions: SearchStrategy[Literal["asc", "desc"]] = st.sampled_from(("asc", "desc"))
    item: SearchStrategy[str | tuple[str, Literal["asc", "desc"]]] = st.one_of(
        st.sampled_from(names), st.tuples(st.sampled_from(names), directions)
    )
    return st.lists(
        item, min_size=min_size, max_size=2, unique_by=lambda i: i if isinstance(i, str) else i[0]
    )
