"""The cattrs converter that turns every record into JSON-safe data and back.

SQL stores keep the result in a JSON column and MongoDB stores keep it as a document, so both
see exactly the same shape: datetimes as ISO-8601 strings in UTC, enums as their values.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import cattrs
from attrs import resolve_types
from cattrs.v import format_exception

from pinnacle_protocols import records
from pinnacle_protocols.errors import InvalidRecord, PinnacleError
from pinnacle_protocols.records import (
    ArtifactRef,
    ComponentKey,
    ComponentRecord,
    DType,
    Field,
    JobRecord,
    JobStatus,
    JSONValue,
    Schema,
    SchemaRevision,
)

__all__ = ["converter", "load_json", "structure", "structure_json", "unstructure", "utcnow"]

T = TypeVar("T")

_RECORD_TYPES: tuple[type, ...] = (
    ArtifactRef,
    ComponentKey,
    ComponentRecord,
    JobRecord,
    Field,
    Schema,
    SchemaRevision,
)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC, truncated to milliseconds (what every DB keeps)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


def _unstructure_dt(value: datetime) -> str:
    if value.tzinfo is None:
        raise InvalidRecord(f"datetime {value!r} is naive: use timezone-aware datetimes (UTC)")
    return value.astimezone(UTC).isoformat()


def _structure_dt(value: Any, _: type) -> datetime:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        dt = datetime.fromisoformat(value)
    else:
        raise InvalidRecord(f"expected an ISO-8601 datetime string, got {value!r}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _strict_scalar(tp: type) -> Callable[[Any, Any], Any]:
    # cattrs' default hooks call int()/str()/bool() on anything: "1" -> 1, 1.5 -> 1,
    # "false" -> True. Stored data of the wrong type is corruption, not something to coerce.
    def hook(value: Any, target: Any) -> Any:
        if target is not tp:  # a subclass such as a StrEnum: build it from its value
            return target(value)
        if not isinstance(value, tp) or (tp is not bool and isinstance(value, bool)):
            raise InvalidRecord(f"expected {tp.__name__}, got {type(value).__name__} {value!r}")
        return value

    return hook


def _json_passthrough(value: Any, _: Any) -> Any:
    return copy.deepcopy(value)


def _is_json_value(tp: Any) -> bool:
    # JSONValue after forward-reference resolution: a union with the JSON scalar types.
    if tp == JSONValue:
        return True
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return False
    return {bool, int, float, str, type(None)} <= set(typing.get_args(tp))


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    for cls in _RECORD_TYPES:
        resolve_types(cls, globalns=vars(records))
    conv.register_unstructure_hook(datetime, _unstructure_dt)
    conv.register_structure_hook(datetime, _structure_dt)
    for scalar in (int, str, bool):
        conv.register_structure_hook(scalar, _strict_scalar(scalar))
    conv.register_unstructure_hook(JobStatus, lambda s: s.value)
    conv.register_unstructure_hook(DType, lambda d: d.value)
    conv.register_structure_hook_func(_is_json_value, _json_passthrough)
    return conv


#: The shared converter. Use :func:`unstructure` / :func:`structure` unless you extend it.
converter: cattrs.Converter = _make_converter()


def unstructure(record: object) -> dict[str, Any]:
    """Turn a record into JSON-safe data (dicts, lists, str, int, float, bool, None)."""
    result = converter.unstructure(record)
    if not isinstance(result, dict):
        raise TypeError(f"{type(record).__name__} is not a pinnacledb record")
    return result


def structure(data: Any, cls: type[T]) -> T:
    """Build a ``cls`` record from JSON-safe data; raise InvalidRecord if it does not fit."""
    try:
        return converter.structure(data, cls)
    except InvalidRecord:
        raise
    except cattrs.BaseValidationError as exc:
        details = "; ".join(cattrs.transform_error(exc, format_exception=_format_error))
        raise InvalidRecord(f"cannot read a {cls.__name__} from stored data: {details}") from exc
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidRecord(f"cannot read a {cls.__name__} from stored data: {exc}") from exc


def load_json(text: str | bytes, where: str) -> Any:
    """Parse JSON text read from a store; InvalidRecord naming ``where`` if it is not JSON.

    Text nested too deep for Python's parser is InvalidRecord too, never ``RecursionError``.
    """
    import json

    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidRecord(
            f"{where} is not valid JSON ({type(exc).__name__}: {str(exc)[:200]}); it was "
            "written or changed by something other than pinnacledb: restore it from a backup "
            "or delete it"
        ) from exc


def structure_json(text: str | bytes, cls: type[T], where: str) -> T:
    """Build a ``cls`` record from stored JSON text; InvalidRecord naming ``where`` otherwise."""
    data = load_json(text, where)
    try:
        return structure(data, cls)
    except InvalidRecord as exc:
        raise InvalidRecord(f"{where}: {exc}") from exc


def _format_error(exc: BaseException, tp: Any) -> str:
    if isinstance(exc, PinnacleError):
        return str(exc)
    return format_exception(exc, tp)
