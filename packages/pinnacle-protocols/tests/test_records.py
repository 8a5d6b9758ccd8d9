"""Records, their validation, content_hash and the cattrs converter (JSON round trip)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pinnacle_protocols import (
    ArtifactRef,
    ComponentKey,
    ComponentRecord,
    DType,
    Field,
    InvalidArtifactRef,
    InvalidRecord,
    JobRecord,
    JobStatus,
    PinnacleError,
    Schema,
    SchemaError,
    SchemaRevision,
    structure,
    unstructure,
    utcnow,
    validate_sha256,
)
from pinnacle_protocols.records import cell_checker, coerce_value

# ---------------------------------------------------------------------- strategies

TRICKY = [
    "' OR 1=1 --",
    'a"b',
    "it's",
    "`tick`",
    "a/b",
    "../../etc/passwd",
    "C:\\x",
    "select",
    "DROP TABLE x;",
    "null",
    "NULL",
    "_id",
    "$where",
    "a.b",
    " leading",
    "trailing ",
    "tab\there",
    "new\nline",
    "ünïcødé",
    "日本語",
    "🙂",
    "%s",
    "{}",
    "x" * 255,
]

_text_chars = st.characters(codec="utf-8", exclude_characters="\x00")
identifiers = st.one_of(
    st.sampled_from(TRICKY),
    st.text(alphabet=_text_chars, min_size=1, max_size=40),
)
_json_text = st.text(alphabet=_text_chars, max_size=20)
_int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_floats = st.floats(allow_nan=False, allow_infinity=False)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | _int64 | _floats | _json_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_json_text, inner, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(_json_text, json_values, max_size=5)

_zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)), timezone.min]
)
aware_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2100, 1, 1),
    timezones=_zones,
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))

sha256s = st.binary(max_size=16).map(lambda b: hashlib.sha256(b).hexdigest())
artifact_refs = st.builds(
    ArtifactRef, sha256=sha256s, size=st.integers(min_value=0, max_value=2**63 - 1)
)
_versions = st.integers(min_value=0, max_value=2**63 - 1)
component_keys = st.builds(
    ComponentKey, type_id=identifiers, identifier=identifiers, version=_versions
)
component_records = st.builds(
    ComponentRecord,
    type_id=identifiers,
    identifier=identifiers,
    version=st.none() | _versions,
    data=json_objects,
    artifacts=st.dictionaries(identifiers, artifact_refs, max_size=3),
    created_at=st.none() | aware_datetimes,
)
job_records = st.builds(
    JobRecord,
    job_id=identifiers,
    kind=identifiers,
    status=st.sampled_from(list(JobStatus)),
    component=st.none() | component_keys,
    args=json_objects,
    created_at=st.none() | aware_datetimes,
    started_at=st.none() | aware_datetimes,
    finished_at=st.none() | aware_datetimes,
    error=st.none() | _json_text,
    runner=st.none() | _json_text,
    rows_total=st.none() | st.integers(0, 2**40),
    rows_done=st.integers(0, 2**40),
    tasks_total=st.integers(0, 10_000),
    tasks_done=st.integers(0, 10_000),
    tasks_failed=st.integers(0, 10_000),
    failed_sources=st.lists(_json_text, max_size=3).map(tuple),
    updated_at=st.none() | aware_datetimes,
)


@st.composite
def fields(draw: st.DrawFn, name: str | None = None) -> Field:
    dtype = draw(st.sampled_from(list(DType)))
    dim = draw(st.none() | st.integers(1, 4096)) if dtype is DType.VECTOR else None
    return Field(
        name=name if name is not None else draw(identifiers),
        dtype=dtype,
        nullable=draw(st.booleans()),
        dim=dim,
    )


schemas = st.lists(identifiers, min_size=1, max_size=6, unique=True).flatmap(
    lambda names: st.tuples(*(fields(name=n) for n in names)).map(lambda fs: Schema(fields=fs))
)
schema_revisions = st.builds(SchemaRevision, current=st.none() | identifiers, head=identifiers)

RECORDS: dict[type, st.SearchStrategy[Any]] = {
    ArtifactRef: artifact_refs,
    ComponentKey: component_keys,
    ComponentRecord: component_records,
    JobRecord: job_records,
    Field: fields(),
    Schema: schemas,
    SchemaRevision: schema_revisions,
}
any_record = st.one_of(*RECORDS.values())

# ---------------------------------------------------------------------- round trip


def _assert_json_data(value: object, where: str = "$") -> None:
    """Only the types json.dumps writes and json.loads gives back."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        assert math.isfinite(value), where
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _assert_json_data(item, f"{where}[{i}]")
        return
    assert isinstance(value, dict), f"{where}: {type(value).__name__}"
    for key, item in value.items():
        assert isinstance(key, str), where
        _assert_json_data(item, f"{where}.{key}")


def _canonical(data: object) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, allow_nan=False)


@pytest.mark.parametrize("record_type", list(RECORDS), ids=lambda t: t.__name__)
@given(data=st.data())
def test_round_trip_every_record_type(record_type: type, data: st.DataObject) -> None:
    record = data.draw(RECORDS[record_type])
    assert type(record) is record_type
    u = unstructure(record)
    _assert_json_data(u)
    assert structure(u, record_type) == record
    # through real JSON text, as SQL JSON columns and MongoDB documents keep it
    text = json.dumps(u, allow_nan=False)
    loaded = json.loads(text)
    assert loaded == u
    again = structure(loaded, record_type)
    assert again == record
    # equality of dicts treats 1 == 1.0 == True: compare the typed JSON text too
    assert _canonical(unstructure(again)) == _canonical(u)


@given(record=any_record)
def test_unstructure_is_stable(record: Any) -> None:
    u = unstructure(record)
    assert unstructure(structure(u, type(record))) == u


@given(record=component_records)
def test_unstructure_does_not_share_mutable_data(record: ComponentRecord) -> None:
    u = unstructure(record)
    back = structure(u, ComponentRecord)
    u["data"]["__mutated__"] = 1
    assert "__mutated__" not in back.data
    assert "__mutated__" not in record.data


@given(dt=aware_datetimes)
def test_datetimes_are_stored_as_utc_iso_strings(dt: datetime) -> None:
    record = ComponentRecord(type_id="m", identifier="x", created_at=dt)
    stored = unstructure(record)["created_at"]
    assert isinstance(stored, str)
    parsed = datetime.fromisoformat(stored)
    assert parsed.utcoffset() == timedelta(0)
    assert parsed == dt
    back = structure(unstructure(record), ComponentRecord).created_at
    assert back == dt
    assert back is not None
    assert back.tzinfo is not None
    assert back.utcoffset() == timedelta(0)


def test_unstructure_shapes() -> None:
    ref = ArtifactRef(sha256="a" * 64, size=3)
    record = ComponentRecord(
        type_id="model",
        identifier="m",
        version=2,
        data={"lr": 0.5, "layers": [1, 2], "nested": {"x": None}},
        artifacts={"weights": ref},
        created_at=datetime(2024, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))),
    )
    assert unstructure(record) == {
        "type_id": "model",
        "identifier": "m",
        "version": 2,
        "data": {"lr": 0.5, "layers": [1, 2], "nested": {"x": None}},
        "artifacts": {"weights": {"sha256": "a" * 64, "size": 3}},
        "created_at": "2024-01-01T00:00:00+00:00",
    }
    job = JobRecord(job_id="j", kind="predict", status=JobStatus.RUNNING)
    assert unstructure(job)["status"] == "running"
    field = Field(name="v", dtype=DType.VECTOR, dim=3)
    assert unstructure(field) == {"name": "v", "dtype": "vector", "nullable": True, "dim": 3}


def test_structure_accepts_offset_and_naive_iso_strings() -> None:
    base = {"type_id": "m", "identifier": "x", "version": 1, "data": {}, "artifacts": {}}
    got = structure({**base, "created_at": "2024-01-01T02:00:00+02:00"}, ComponentRecord)
    assert got.created_at == datetime(2024, 1, 1, tzinfo=UTC)
    assert got.created_at is not None
    assert got.created_at.utcoffset() == timedelta(0)
    # a naive stored value is read as UTC
    naive = structure({**base, "created_at": "2024-01-01T00:00:00"}, ComponentRecord)
    assert naive.created_at == datetime(2024, 1, 1, tzinfo=UTC)


def test_job_status_accepts_its_string_value() -> None:
    job = JobRecord(job_id="j", kind="k", status="failed")
    assert job.status is JobStatus.FAILED
    assert unstructure(job)["status"] == "failed"


def test_utcnow_is_aware_utc_with_millisecond_precision() -> None:
    now = utcnow()
    assert now.utcoffset() == timedelta(0)
    assert now.microsecond % 1000 == 0


def test_component_key_and_order() -> None:
    record = ComponentRecord(type_id="model", identifier="m", version=3)
    assert record.key == ComponentKey(type_id="model", identifier="m", version=3)
    with pytest.raises(InvalidRecord, match="no version yet"):
        _ = ComponentRecord(type_id="model", identifier="m").key
    keys = [
        ComponentKey(type_id="b", identifier="a", version=0),
        ComponentKey(type_id="a", identifier="b", version=10),
        ComponentKey(type_id="a", identifier="b", version=2),
    ]
    assert [(k.type_id, k.version) for k in sorted(keys)] == [("a", 2), ("a", 10), ("b", 0)]


def test_schema_helpers() -> None:
    schema = Schema.of(id="int", name=DType.STR)
    assert schema.names == ("id", "name")
    assert schema["id"].dtype is DType.INT
    assert "name" in schema
    assert "nope" not in schema
    with pytest.raises(KeyError):
        schema["nope"]
    # a list of fields is kept as a tuple, so equal schemas compare equal
    fs = [Field(name="a", dtype=DType.INT)]
    assert Schema(fields=fs) == Schema(fields=tuple(fs))
    assert isinstance(Schema(fields=fs).fields, tuple)


def test_schema_revision() -> None:
    assert SchemaRevision(current="r2", head="r2").up_to_date
    assert not SchemaRevision(current=None, head="r2").up_to_date


# ---------------------------------------------------------------------- validation errors

_SHA = "0" * 64


@pytest.mark.parametrize(
    "sha",
    [
        "../../etc/passwd",
        "A" * 64,
        "aB" * 32,
        "a" * 63,
        "a" * 65,
        "g" * 64,
        "",
        " " + "a" * 63,
        "a" * 63 + "\n",
        "a" * 64 + "\x00",
        "../" + "a" * 61,
        "\uff10" * 64,  # fullwidth digit zero
    ],
)
def test_bad_sha256_is_refused(sha: str) -> None:
    with pytest.raises(InvalidArtifactRef, match="sha256"):
        ArtifactRef(sha256=sha, size=1)
    with pytest.raises(InvalidArtifactRef):
        validate_sha256(sha)


@pytest.mark.parametrize("sha", [b"a" * 64, 123, None, ["a" * 64]])
def test_non_string_sha256_is_refused(sha: Any) -> None:
    with pytest.raises(InvalidArtifactRef):
        validate_sha256(sha)
    with pytest.raises(InvalidArtifactRef):
        ArtifactRef(sha256=sha, size=1)


def test_long_bad_sha256_is_not_echoed() -> None:
    with pytest.raises(InvalidArtifactRef) as info:
        validate_sha256("x" * 10_000)
    assert "x" * 200 not in str(info.value)


@pytest.mark.parametrize("size", [-1, True, False, 1.0, "1", None])
def test_bad_size_is_refused(size: Any) -> None:
    with pytest.raises(InvalidArtifactRef, match="size"):
        ArtifactRef(sha256=_SHA, size=size)


def _bad(value: object) -> Any:
    """Pass a deliberately ill-typed value past the type checker."""
    return value


def _record(**kw: Any) -> ComponentRecord:
    return ComponentRecord(**{"type_id": "model", "identifier": "m", **kw})


def _job(**kw: Any) -> JobRecord:
    return JobRecord(**{"job_id": "j", "kind": "predict", **kw})


BAD_IDENTIFIERS: list[tuple[Any, str]] = [
    ("", "non-empty"),
    ("a\x00b", "NUL"),
    ("\x00", "NUL"),
    ("x" * 256, "limit is 255"),
    ("a\ud800b", "surrogate"),
    (None, "non-empty string"),
    (5, "non-empty string"),
    (b"abc", "non-empty string"),
]


@pytest.mark.parametrize(("value", "fragment"), BAD_IDENTIFIERS)
@pytest.mark.parametrize(
    "build",
    [
        lambda v: _record(identifier=v),
        lambda v: _record(type_id=v),
        lambda v: ComponentKey(type_id="t", identifier=v, version=0),
        lambda v: ComponentKey(type_id=v, identifier="i", version=0),
        lambda v: _job(job_id=v),
        lambda v: _job(kind=v),
        lambda v: Field(name=v, dtype=DType.INT),
    ],
    ids=["identifier", "type_id", "key.identifier", "key.type_id", "job_id", "kind", "field"],
)
def test_bad_identifiers_are_refused(
    build: Callable[[Any], object], value: Any, fragment: str
) -> None:
    with pytest.raises(InvalidRecord, match=fragment):
        build(value)


class _Opaque:
    pass


BAD_DATA: list[tuple[Any, str]] = [
    ({"a": {1, 2}}, "set is not JSON"),
    ({"a": b"bytes"}, "bytes is not JSON"),
    ({"a": bytearray(b"x")}, "bytearray is not JSON"),
    ({"a": _Opaque()}, "_Opaque is not JSON"),
    ({"a": (1, 2)}, "tuple is not JSON"),
    ({"a": datetime(2024, 1, 1, tzinfo=UTC)}, "datetime is not JSON"),
    ({"a": float("nan")}, "not representable"),
    ({"a": float("inf")}, "not representable"),
    ({"a": -float("inf")}, "not representable"),
    ({"a": 2**70}, "64 bits"),
    ({"a": -(2**63) - 1}, "64 bits"),
    ({"a": 2**63}, "64 bits"),
    ({"a": [1, [2, {3}]]}, r"data\['a'\]\[1\]\[1\]"),
    ({"a": {"b": {"c": b""}}}, r"data\['a'\]\['b'\]\['c'\]"),
    ({1: "x"}, "keys must be strings"),
    ({"a": {None: 1}}, "keys must be strings"),
    ({"a\x00": 1}, "NUL"),
    ({"a": "x\x00y"}, "NUL"),
    ({"a": "\udc80"}, "surrogate"),
]


@pytest.mark.parametrize(("data", "fragment"), BAD_DATA, ids=[repr(d)[:40] for d, _ in BAD_DATA])
def test_non_json_data_is_refused(data: Any, fragment: str) -> None:
    with pytest.raises(InvalidRecord, match=fragment):
        _record(data=data)
    with pytest.raises(InvalidRecord, match=fragment.replace("data", "args")):
        _job(args=data)


@pytest.mark.parametrize(
    ("build", "error", "fragment"),
    [
        (lambda: _record(data=[1]), InvalidRecord, "data must be a mapping"),
        (lambda: _record(data="x"), InvalidRecord, "data must be a mapping"),
        (lambda: _record(version=-1), InvalidRecord, "version"),
        (lambda: _record(version=True), InvalidRecord, "version"),
        (lambda: _record(version=1.0), InvalidRecord, "version"),
        (lambda: _record(version="1"), InvalidRecord, "version"),
        (
            lambda: ComponentKey(type_id="t", identifier="i", version=_bad(None)),
            InvalidRecord,
            "version",
        ),
        (lambda: ComponentKey(type_id="t", identifier="i", version=-1), InvalidRecord, "version"),
        (lambda: _record(artifacts={"w": _SHA}), InvalidRecord, "must be an ArtifactRef"),
        (lambda: _record(artifacts={"": ArtifactRef(sha256=_SHA, size=0)}), InvalidRecord, "names"),
        (lambda: _record(artifacts=[1]), InvalidRecord, "artifacts must be a mapping"),
        (lambda: _record(created_at="2024-01-01"), InvalidRecord, "created_at must be a datetime"),
        (lambda: _record(created_at=1700000000), InvalidRecord, "created_at"),
        (lambda: _job(status="bogus"), InvalidRecord, "job status 'bogus'"),
        (lambda: _job(args=[("a", 1)]), InvalidRecord, "args must be a mapping"),
        (lambda: _job(component="model/m/1"), InvalidRecord, "ComponentKey"),
        (lambda: _job(error=5), InvalidRecord, "error must be a string"),
        (lambda: _job(started_at="now"), InvalidRecord, "started_at"),
        (lambda: Field(name="a", dtype=_bad("int")), SchemaError, "must be a DType"),
        (lambda: Field(name="a", dtype=DType.INT, dim=3), SchemaError, "dim is only for vector"),
        (lambda: Field(name="a", dtype=DType.JSON, dim=3), SchemaError, "dim is only for vector"),
        (lambda: Field(name="a", dtype=DType.VECTOR, dim=0), SchemaError, "dim"),
        (lambda: Field(name="a", dtype=DType.VECTOR, dim=-3), SchemaError, "dim"),
        (lambda: Field(name="a", dtype=DType.VECTOR, dim=True), SchemaError, "dim"),
        (lambda: Field(name="a", dtype=DType.VECTOR, dim=_bad(2.5)), SchemaError, "dim"),
        (lambda: Field(name="a", dtype=DType.INT, nullable=_bad("no")), SchemaError, "nullable"),
        (lambda: Schema(fields=()), SchemaError, "at least one field"),
        (lambda: Schema(fields=_bad(("a",))), SchemaError, "Field objects"),
        (lambda: Schema(fields=_bad("ab")), SchemaError, "sequence of Field"),
        (lambda: Schema(fields=_bad(5)), SchemaError, "sequence of Field"),
        (
            lambda: Schema(
                fields=(
                    Field(name="a", dtype=DType.INT),
                    Field(name="b", dtype=DType.INT),
                    Field(name="a", dtype=DType.STR),
                )
            ),
            SchemaError,
            r"duplicate column names: \['a'\]",
        ),
        (
            lambda: Schema.of(a="nope"),
            SchemaError,
            "column 'a': unknown dtype 'nope'; use one of 'int'",
        ),
        (lambda: SchemaRevision(current=_bad(1), head="r1"), InvalidRecord, "current"),
        (lambda: SchemaRevision(current=None, head=_bad(None)), InvalidRecord, "head"),
    ],
)
def test_invalid_records_are_refused(
    build: Callable[[], object], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        build()


@pytest.mark.parametrize(
    "build",
    [
        lambda dt: _record(created_at=dt),
        lambda dt: _job(created_at=dt),
        lambda dt: _job(started_at=dt),
        lambda dt: _job(finished_at=dt),
    ],
)
def test_naive_datetime_is_refused_at_unstructure(build: Callable[[datetime], object]) -> None:
    record = build(datetime(2024, 1, 1, 12, 0))
    with pytest.raises(InvalidRecord, match="naive"):
        unstructure(record)


def test_unstructure_refuses_non_records() -> None:
    with pytest.raises(TypeError, match="not a pinnacledb record"):
        unstructure(5)


GOOD_REF = {"sha256": _SHA, "size": 1}
GOOD_RECORD = {
    "type_id": "model",
    "identifier": "m",
    "version": 1,
    "data": {},
    "artifacts": {},
    "created_at": None,
}


@pytest.mark.parametrize(
    ("data", "cls", "fragment"),
    [
        ({**GOOD_REF, "size": "1"}, ArtifactRef, "expected int, got str"),
        ({**GOOD_REF, "size": 1.5}, ArtifactRef, "expected int, got float"),
        ({**GOOD_REF, "size": True}, ArtifactRef, "expected int, got bool"),
        ({**GOOD_REF, "sha256": "A" * 64}, ArtifactRef, "sha256"),
        ({**GOOD_REF, "sha256": 5}, ArtifactRef, "expected str"),
        ({**GOOD_REF, "extra": 1}, ArtifactRef, "extra fields found"),
        ({"sha256": _SHA}, ArtifactRef, "required field missing"),
        (None, ArtifactRef, "ArtifactRef"),
        ([1, 2], ArtifactRef, "ArtifactRef"),
        ({**GOOD_RECORD, "version": "1"}, ComponentRecord, "expected int"),
        ({**GOOD_RECORD, "created_at": 5}, ComponentRecord, "ISO-8601"),
        ({**GOOD_RECORD, "created_at": "yesterday"}, ComponentRecord, "created_at"),
        ({**GOOD_RECORD, "data": {"a": b"x"}}, ComponentRecord, "not JSON"),
        ({**GOOD_RECORD, "artifacts": {"w": {"sha256": "x"}}}, ComponentRecord, "artifacts"),
        ({**GOOD_RECORD, "identifier": ""}, ComponentRecord, "non-empty"),
        ({"job_id": "j", "kind": "k", "status": "nope"}, JobRecord, r"JobStatus @ \$\.status"),
        ({"name": "a", "dtype": "nope", "nullable": True, "dim": None}, Field, "dtype"),
        ({"name": "a", "dtype": "int", "nullable": "false", "dim": None}, Field, "expected bool"),
        (
            {"fields": [{"name": "a", "dtype": "int"}, {"name": "a", "dtype": "str"}]},
            Schema,
            "duplicate",
        ),
        ({"fields": []}, Schema, "at least one field"),
    ],
)
def test_structure_refuses_bad_stored_data(data: Any, cls: type, fragment: str) -> None:
    with pytest.raises(InvalidRecord, match=fragment) as info:
        structure(data, cls)
    assert isinstance(info.value, PinnacleError)


# ---------------------------------------------------------------------- content_hash


@given(
    record=component_records,
    version=st.none() | _versions,
    created_at=st.none() | aware_datetimes,
)
def test_content_hash_ignores_version_and_created_at(
    record: ComponentRecord, version: int | None, created_at: datetime | None
) -> None:
    other = attrs.evolve(record, version=version, created_at=created_at)
    assert other.content_hash == record.content_hash
    assert len(record.content_hash) == 64
    validate_sha256(record.content_hash)


@given(record=component_records)
def test_content_hash_survives_storage(record: ComponentRecord) -> None:
    stored = json.loads(json.dumps(unstructure(record)))
    assert structure(stored, ComponentRecord).content_hash == record.content_hash


#: A small domain, so that equal content is drawn often (and with other versions/times).
_small_records = st.builds(
    ComponentRecord,
    type_id=st.sampled_from(["model", "listener"]),
    identifier=st.sampled_from(["m", "M"]),
    version=st.none() | st.integers(0, 2),
    data=st.dictionaries(
        st.sampled_from(["a", "b"]),
        st.sampled_from([None, 0, 1, 1.0, True, "1", [1], {"a": 1}]),
        max_size=2,
    ),
    artifacts=st.dictionaries(
        st.sampled_from(["w", "v"]),
        st.builds(ArtifactRef, sha256=st.sampled_from(["a" * 64, "b" * 64]), size=st.just(1)),
        max_size=1,
    ),
    created_at=st.none() | st.just(datetime(2024, 1, 1, tzinfo=UTC)),
)


@given(a=_small_records, b=_small_records)
def test_content_hash_differs_for_different_content(a: ComponentRecord, b: ComponentRecord) -> None:
    def content(r: ComponentRecord) -> str:
        return _canonical([r.type_id, r.identifier, r.data, unstructure(r)["artifacts"]])

    assert (a.content_hash == b.content_hash) is (content(a) == content(b))


@given(record=component_records, key=_json_text, value=json_values)
def test_content_hash_changes_with_data(record: ComponentRecord, key: str, value: Any) -> None:
    data = dict(record.data)
    old = data.get(key, object())
    data[key] = value
    changed = attrs.evolve(record, data=data)
    same = isinstance(old, type(value)) and _canonical(old) == _canonical(value)
    assert (changed.content_hash == record.content_hash) is same


CONTENT_CASES = [
    ({"data": {"a": 1}}, {"data": {"a": 2}}),
    ({"data": {"a": 1}}, {"data": {"a": True}}),
    ({"data": {"a": 1}}, {"data": {"a": 1.0}}),
    ({"data": {"a": 1}}, {"data": {"a": "1"}}),
    ({"data": {"a": None}}, {"data": {}}),
    ({"data": {"a": [1, 2]}}, {"data": {"a": [2, 1]}}),
    ({"identifier": "m"}, {"identifier": "M"}),
    ({"type_id": "model"}, {"type_id": "listener"}),
    (
        {"artifacts": {"w": ArtifactRef(sha256="a" * 64, size=1)}},
        {"artifacts": {"w": ArtifactRef(sha256="b" * 64, size=1)}},
    ),
    (
        {"artifacts": {"w": ArtifactRef(sha256="a" * 64, size=1)}},
        {"artifacts": {"w": ArtifactRef(sha256="a" * 64, size=2)}},
    ),
    (
        {"artifacts": {"w": ArtifactRef(sha256="a" * 64, size=1)}},
        {"artifacts": {"v": ArtifactRef(sha256="a" * 64, size=1)}},
    ),
    # the data/artifact boundary must not be ambiguous
    ({"data": {"w": ["a" * 64, 1]}}, {"artifacts": {"w": ArtifactRef(sha256="a" * 64, size=1)}}),
]


@pytest.mark.parametrize(("left", "right"), CONTENT_CASES)
def test_content_hash_table(left: dict[str, Any], right: dict[str, Any]) -> None:
    assert _record(**left).content_hash != _record(**right).content_hash


def test_content_hash_ignores_key_order() -> None:
    a = _record(data={"x": 1, "y": {"p": 1, "q": 2}})
    b = _record(data={"y": {"q": 2, "p": 1}, "x": 1})
    assert a.content_hash == b.content_hash
    a = _record(
        artifacts={"w": ArtifactRef(sha256=_SHA, size=1), "v": ArtifactRef(sha256=_SHA, size=2)}
    )
    b = _record(
        artifacts={"v": ArtifactRef(sha256=_SHA, size=2), "w": ArtifactRef(sha256=_SHA, size=1)}
    )
    assert a.content_hash == b.content_hash


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": float("nan")}, r"meta\['a'\]: nan is not representable"),
        ([1, 2**63], r"meta\[1\]: integer 9223372036854775808 does not fit"),
        ({1: "x"}, "dict keys must be strings"),
        ("a\x00b", "NUL bytes"),
        ("\ud800", "lone surrogates"),
        ({"s": {1, 2}}, r"meta\['s'\]: set is not JSON data"),
    ],
)
def test_check_json_is_public_and_names_the_bad_value(value: Any, message: str) -> None:
    from pinnacle_protocols.errors import InvalidRecord
    from pinnacle_protocols.records import check_json

    with pytest.raises(InvalidRecord, match=message):
        check_json(value, "meta")


def test_check_json_accepts_json_data() -> None:
    from pinnacle_protocols.records import check_json

    check_json({"a": [1, 2.5, "x", None, True, {"b": []}]})


def test_job_records_written_before_progress_fields_still_load() -> None:
    """A record stored by an older pinnacledb (no runner/rows/tasks fields) loads with defaults."""
    old = {
        "job_id": "predict-1",
        "kind": "predict",
        "status": "success",
        "component": None,
        "args": {"table": "t"},
        "created_at": "2026-01-01T00:00:00+00:00",
        "started_at": None,
        "finished_at": None,
        "error": None,
    }
    job = structure(old, JobRecord)
    assert job.status is JobStatus.SUCCESS
    assert (job.runner, job.rows_total, job.rows_done) == (None, None, 0)
    assert (job.tasks_total, job.tasks_done, job.tasks_failed) == (0, 0, 0)
    assert job.failed_sources == ()
    assert JobStatus("queued").finished is False
    assert JobStatus("cancelled").finished is True


@pytest.mark.parametrize(
    ("field", "value"),
    [("rows_done", -1), ("tasks_total", True), ("rows_total", 1.5), ("failed_sources", "id 1")],
)
def test_job_progress_fields_are_validated(field: str, value: object) -> None:
    with pytest.raises(InvalidRecord, match=field):
        JobRecord(job_id="j", kind="k", **{field: value})  # type: ignore[arg-type]


class _IntSub(int):
    pass


class _StrSub(str):
    __slots__ = ()


_ODD_CELLS: list[Any] = [
    None,
    True,
    0,
    -(2**63),
    2**63,
    _IntSub(3),
    1.5,
    math.nan,
    -math.inf,
    "ascii",
    "é",
    "a\x00b",
    "\ud800",
    _StrSub("x"),
    b"\x00",
    bytearray(b"ab"),
    datetime(2024, 1, 1, tzinfo=UTC),
    datetime(2024, 1, 1),
    [1.0, 2.0],
    [1, True],
    {"a": [None, 2**64]},
    {"k": "v"},
]


@pytest.mark.parametrize("nullable", [True, False])
@pytest.mark.parametrize("dtype", list(DType))
@pytest.mark.parametrize("value", _ODD_CELLS, ids=repr)
def test_cell_checker_answers_as_coerce_value(dtype: DType, nullable: bool, value: Any) -> None:
    """The fast path of cell_checker accepts, returns and refuses exactly what coerce_value does."""
    field = Field(
        name="c", dtype=dtype, nullable=nullable, dim=2 if dtype is DType.VECTOR else None
    )

    def outcome(check: Callable[[], Any]) -> tuple[str, Any]:
        try:
            result = check()
        except SchemaError as exc:
            return "error", str(exc)
        return type(result).__name__, result

    expected = outcome(lambda: coerce_value(field, value, "row 1"))
    assert outcome(lambda: cell_checker(field)(value, "row 1")) == expected
