"""The cattrs converter that turns every record into JSON-safe data and back.

SQL stores keep the result in a JSON column and MongoDB stores keep it as a document, so both
see exactly the same shape: datetimes as ISO-8601 strings in UTC, enums as their values.

The converter (and cattrs itself) is built on first use: :func:`utcnow`, :func:`load_json` and
importing this module load neither, so a command that reads no record (``pinnacle show``)
does not pay for them. ``converter`` is still a module attribute (built when first read).
"""

from __future__ import annotations

import copy
import threading
import types
import typing
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import resolve_types

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

if TYPE_CHECKING:
    import cattrs

    #: The shared converter (built on first read, see the module docstring).
    converter: cattrs.Converter

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
    import cattrs

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


_converter: cattrs.Converter | None = None
_converter_lock = threading.Lock()


def _get_converter() -> cattrs.Converter:
    """The shared converter, built (and cattrs imported) on the first call, once.

    ``converter`` (the module attribute) is the same object. Use :func:`unstructure` /
    :func:`structure` unless you extend it.
    """
    global _converter  # noqa: PLW0603 - the one shared converter, built lazily
    conv = _converter
    if conv is None:
        with _converter_lock:
            if _converter is None:
                _converter = _make_converter()
            conv = _converter
    return conv


def __getattr__(name: str) -> Any:
    if name == "converter":
        return _get_converter()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def unstructure(record: object) -> dict[str, Any]:
    """Turn a record into JSON-safe data (dicts, lists, str, int, float, bool, None)."""
    result = _get_converter().unstructure(record)
    if not isinstance(result, dict):
        raise TypeError(f"{type(record).__name__} is not a pinnacledb record")
    return result


def structure(data: Any, cls: type[T]) -> T:
    """Build a ``cls`` record from JSON-safe data; raise InvalidRecord if it does not fit."""
    conv = _get_converter()
    import cattrs  # loaded by _get_converter(); a local name for the except clause

    try:
        return conv.structure(data, cls)
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
    from cattrs.v import format_exception

    if isinstance(exc, PinnacleError):
        return str(exc)
    return format_exception(exc, tp)
