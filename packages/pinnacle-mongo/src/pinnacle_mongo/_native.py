"""Native MongoDB queries accepted by :meth:`MongoDataBackend.execute`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from pinnacle_protocols.errors import FilterError

if TYPE_CHECKING:
    from pymongo.database import Database

__all__ = ["Aggregate", "Find", "NativeQuery", "parse_native_query"]


def _collection_name(_inst: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise FilterError(f"{attribute.name}: a collection name must be a non-empty string")


def _mapping(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Mapping):
        raise FilterError(f"{attribute.name} must be a dict, got {type(value).__name__}")


def _pipeline(_inst: object, _attr: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise FilterError("pipeline must be a list of stage dicts")
    for i, stage in enumerate(value):
        if not isinstance(stage, Mapping):
            raise FilterError(f"pipeline[{i}] must be a stage dict, got {type(stage).__name__}")


def _non_negative(_inst: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FilterError(f"{attribute.name} must be a non-negative int, got {value!r}")


@attrs.frozen(kw_only=True)
class Find:
    """``collection.find(filter, projection).sort(sort).skip(skip).limit(limit)``.

    The filter is a native MongoDB query document (any operator MongoDB knows), not the
    portable filter language.

    Attributes:
        collection: Collection name.
        filter: MongoDB query document.
        projection: MongoDB projection (dict or list of field names), or None for every field.
        sort: ``[(field, 1 | -1), ...]``, or None.
        skip: Documents to skip.
        limit: At most this many documents (0 = no limit, as in MongoDB).
    """

    collection: str = attrs.field(validator=_collection_name)
    filter: Mapping[str, Any] = attrs.field(factory=dict, validator=_mapping)
    projection: Mapping[str, Any] | Sequence[str] | None = None
    sort: Sequence[tuple[str, int]] | None = None
    skip: int = attrs.field(default=0, validator=_non_negative)
    limit: int = attrs.field(default=0, validator=_non_negative)

    def run(self, db: Database[dict[str, Any]]) -> list[dict[str, Any]]:
        """The matching documents."""
        cursor = db[self.collection].find(
            dict(self.filter),
            self.projection,
            skip=self.skip,
            limit=self.limit,
            sort=list(self.sort) if self.sort else None,
        )
        return list(cursor)


@attrs.frozen(kw_only=True)
class Aggregate:
    """``collection.aggregate(pipeline)``.

    Attributes:
        collection: Collection name.
        pipeline: The aggregation pipeline, a list of stage dicts.
    """

    collection: str = attrs.field(validator=_collection_name)
    pipeline: Sequence[Mapping[str, Any]] = attrs.field(validator=_pipeline)

    def run(self, db: Database[dict[str, Any]]) -> list[dict[str, Any]]:
        """The pipeline's output documents."""
        return list(db[self.collection].aggregate([dict(s) for s in self.pipeline]))


#: What :meth:`MongoDataBackend.execute` accepts.
NativeQuery = Find | Aggregate | Mapping[str, Any] | Callable[..., Any]

_FIND_KEYS = frozenset({"find", "filter", "projection", "sort", "skip", "limit"})
_AGGREGATE_KEYS = frozenset({"aggregate", "pipeline"})


def parse_native_query(query: object) -> Find | Aggregate | Callable[..., Any]:
    """Turn the dict forms ``{"find": ...}`` / ``{"aggregate": ...}`` into specs.

    Raises:
        FilterError: the query has none of the accepted forms, or unknown keys.
    """
    if isinstance(query, (Find, Aggregate)):
        return query
    if isinstance(query, Mapping):
        if "find" in query:
            extra = set(query) - _FIND_KEYS
            if extra:
                raise FilterError(f"unknown keys {sorted(extra)} in a find query")
            sort = query.get("sort")
            return Find(
                collection=query["find"],
                filter=query.get("filter") or {},
                projection=query.get("projection"),
                sort=[tuple(s) for s in sort] if sort else None,
                skip=query.get("skip", 0),
                limit=query.get("limit", 0),
            )
        if "aggregate" in query:
            extra = set(query) - _AGGREGATE_KEYS
            if extra:
                raise FilterError(f"unknown keys {sorted(extra)} in an aggregate query")
            return Aggregate(collection=query["aggregate"], pipeline=query.get("pipeline", []))
    if callable(query):
        return query
    raise FilterError(
        "execute() takes a MongoDB query: {'find': 'coll', 'filter': {...}, 'projection': ..., "
        "'sort': [...], 'skip': n, 'limit': n}, {'aggregate': 'coll', 'pipeline': [...]}, a "
        f"Find/Aggregate spec, or a callable taking the pymongo Database; got {query!r:.80}"
    )
