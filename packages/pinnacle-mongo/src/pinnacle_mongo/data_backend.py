"""MongoDataBackend: the user's data in MongoDB collections, portable CRUD plus native access."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

import attrs

from pinnacle_mongo._connection import Document, MongoConnection, parse_mongo_uri
from pinnacle_mongo._native import Aggregate, Find, parse_native_query
from pinnacle_mongo._query import CompiledFilter, compile_filter, mongo_sort
from pinnacle_mongo._rows import TableCodec, check_schema_for_mongo, encode_field
from pinnacle_protocols.errors import (
    ConfigError,
    DropRefused,
    FilterError,
    PinnacleError,
    SchemaError,
    TableExists,
    TableNotFound,
)
from pinnacle_protocols.filters import (
    Filter,
    check_limit,
    matcher,
    parse_order_by,
    validate_filter,
)
from pinnacle_protocols.protocols import ArrowTableLike, OrderBy, Rows
from pinnacle_protocols.records import (
    DType,
    Schema,
    check_index_columns,
    check_match_pairs,
    check_new_table,
    index_name,
)
from pinnacle_protocols.serialization import structure, unstructure, utcnow
from pinnacle_protocols.tables import RESERVED_PREFIX
from pinnacle_protocols.uri import RedactedURI

if TYPE_CHECKING:
    from pymongo.collection import Collection
    from pymongo.database import Database

__all__ = ["SCHEMAS_COLLECTION", "MongoDataBackend"]

#: Where the portable schema of every table created through ``create_table`` is kept.
SCHEMAS_COLLECTION = "_pinnacle_schemas"
_ID_BATCH = 10_000
#: count_unmatched: the field its ``$lookup`` writes the match into, and the match's marker.
_MATCHES = "_pinnacle_matches"
_MATCH_MARK = "_pinnacle_matched"
#: MongoDB's duplicate key error code.
_DUPLICATE_KEY = 11000


def _check_table_name(name: object) -> str:
    if not isinstance(name, str) or not name or "\x00" in name:
        raise SchemaError(f"table names are non-empty strings without NUL, got {name!r}")
    if name.startswith(RESERVED_PREFIX):
        raise SchemaError(f"table name {name!r}: the prefix {RESERVED_PREFIX!r} is reserved")
    if "$" in name or name.startswith("system."):
        raise SchemaError(
            f"table name {name!r} is not a valid MongoDB collection name (no '$', and no "
            "'system.' prefix); choose another name"
        )
    return name


def _is_user_collection(name: str) -> bool:
    return not name.startswith((RESERVED_PREFIX, "system."))


@attrs.define(kw_only=True, eq=False)
class MongoDataBackend:
    """User tables as MongoDB collections of one database.

    The portable API (``create_table``, ``insert``, ``select``, ``update``, ``delete``,
    ``count``) validates rows against the table's portable schema, stored in
    ``_pinnacle_schemas``, and translates the portable filter language to MongoDB queries (see
    :mod:`pinnacle_mongo._query` for the few places where the two differ). Rows come back with
    their ``_id`` first (``has_native_ids``); ObjectId, datetime (timezone-aware UTC,
    millisecond precision), bytes and Decimal128 values round-trip.

    Collections that exist without a portable schema (written by other programs) are listed and
    can be read, filtered and written; their documents are returned as stored.

    Native access: ``native(table)`` is the pymongo ``Collection``; ``execute(query)`` runs
    ``{"find": "coll", "filter": {...}, "projection": ..., "sort": [...], "skip": n,
    "limit": n}``, ``{"aggregate": "coll", "pipeline": [...]}``, a :class:`Find` /
    :class:`Aggregate` spec, or a callable that receives the pymongo ``Database``, and returns
    the documents as a list.
    """

    supports_update: ClassVar[bool] = True
    supports_delete: ClassVar[bool] = True
    supports_transactions: ClassVar[bool] = False
    has_native_ids: ClassVar[bool] = True

    _conn: MongoConnection = attrs.field(alias="connection")

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> Self:
        """A backend for ``mongodb://host:port/database`` (connects on first use).

        Args:
            uri: ``mongodb://`` or ``mongodb+srv://`` URI naming the database in its path; the
                query string (``authSource``, ``replicaSet``, ``tls``, ...) goes to the client.
            **options: ``server_selection_timeout_ms`` (default 5000), ``client`` (a
                ``MongoClient`` to share, not closed by ``close()``), ``client_options`` (dict
                of extra ``MongoClient`` arguments).

        Raises:
            InvalidURIError: the URI is not a MongoDB URI or names no database.
            ConfigError: an unknown option.
        """
        conn, rest = MongoConnection.from_options(uri, options, store="MongoDataBackend")
        if rest:
            raise ConfigError(f"MongoDataBackend: unknown options {sorted(rest)}")
        return cls(connection=conn)

    @property
    def uri(self) -> RedactedURI:
        """Where the data lives (password redacted when shown)."""
        return self._conn.uri

    def __repr__(self) -> str:
        return f"MongoDataBackend({str(self._conn.uri)!r})"

    # ------------------------------------------------------------------ helpers
    def _db(self) -> Database[Document]:
        return self._conn.database()

    def _schemas(self) -> Collection[Document]:
        return self._db()[SCHEMAS_COLLECTION]

    def _collection_exists(self, name: str) -> bool:
        names = self._db().list_collection_names(filter={"name": name})
        return name in names

    def _codec(self, table: str) -> TableCodec | None:
        """The codec of ``table`` (None for a collection without a portable schema).

        Raises:
            TableNotFound: no such table.
        """
        if not isinstance(table, str) or not table:
            raise TableNotFound(f"no table {table!r} in {self.uri}")
        doc = self._schemas().find_one({"_id": table})
        if doc is not None:
            return TableCodec(schema=structure(doc["schema"], Schema))
        if _is_user_collection(table) and self._collection_exists(table):
            return None
        raise TableNotFound(f"no table {table!r} in {self.uri}; create it with create_table()")

    # ------------------------------------------------------------------ tables
    def list_tables(self) -> list[str]:
        """User collections, sorted (``_pinnacle_*`` and ``system.*`` excluded)."""
        with self._conn.errors("list collections"):
            return sorted(n for n in self._db().list_collection_names() if _is_user_collection(n))

    def create_table(self, name: str, schema: Schema) -> None:
        """Create a collection and record its portable schema.

        Raises:
            TableExists: a collection of that name exists.
            SchemaError: the name or schema is not possible on MongoDB.
        """
        _check_table_name(name)
        if not isinstance(schema, Schema):
            raise SchemaError(f"expected a Schema, got {type(schema).__name__}")
        check_schema_for_mongo(schema)
        from pymongo.errors import CollectionInvalid, OperationFailure

        with self._conn.errors(f"create table {name!r}"):
            db = self._db()
            others = [t for t in db.list_collection_names() if t != name]
            check_new_table(name, schema, others, self.uri)
            try:
                db.create_collection(name)
            except CollectionInvalid as exc:
                raise TableExists(f"table {name!r} already exists in {self.uri}") from exc
            except OperationFailure as exc:
                if exc.code == 48:  # NamespaceExists
                    raise TableExists(f"table {name!r} already exists in {self.uri}") from exc
                if exc.code == 73:  # InvalidNamespace
                    raise SchemaError(
                        f"MongoDB rejects the table name {name!r} in {self.uri}: {exc}"
                    ) from exc
                raise
            self._schemas().replace_one(
                {"_id": name},
                {"_id": name, "schema": unstructure(schema), "created_at": utcnow()},
                upsert=True,
            )

    def drop_table(self, name: str) -> None:
        """Drop a collection and its schema (TableNotFound if absent)."""
        with self._conn.errors(f"drop table {name!r}"):
            self._codec(name)
            self._db().drop_collection(name)
            self._schemas().delete_one({"_id": name})

    def table_schema(self, name: str) -> Schema:
        """The portable schema of a table created through ``create_table``.

        Raises:
            TableNotFound: no such table, or a collection without a portable schema.
        """
        with self._conn.errors(f"read the schema of {name!r}"):
            codec = self._codec(name)
        if codec is None:
            raise TableNotFound(
                f"collection {name!r} in {self.uri} has no portable schema (it was not created "
                "with create_table()); use native() to work with it"
            )
        return codec.schema

    # ------------------------------------------------------------------ rows
    def insert(self, table: str, rows: Rows | ArrowTableLike) -> int:
        """Validate every row, then insert them all (nothing is written on a SchemaError).

        Rows may carry an ``_id``; otherwise MongoDB assigns an ObjectId.

        Raises:
            TableNotFound: no such table.
            SchemaError: a row has an unknown column or a value of the wrong type.
        """
        if isinstance(rows, (Mapping, str, bytes)):
            raise SchemaError(f"insert into {table!r}: pass a list of dicts, not a single row")
        from pinnacle_protocols.arrow import as_arrow

        data: Any = as_arrow(rows)  # Arrow input stays Arrow: its checks run per column
        if data is None:
            if not isinstance(rows, Sequence) and isinstance(rows, ArrowTableLike):
                data = rows.to_pylist()
            else:
                data = rows if isinstance(rows, list) else list(rows)
        from bson.errors import InvalidDocument
        from pymongo.errors import BulkWriteError

        with self._conn.errors(f"insert into {table!r}"):
            codec = self._codec(table)
            if codec is None:
                items = data if isinstance(data, list) else data.to_pylist()
                docs = []
                for i, row in enumerate(items):
                    if not isinstance(row, Mapping):
                        raise SchemaError(
                            f"insert into {table!r}, row {i}: a row must be a dict, "
                            f"got {type(row).__name__}"
                        )
                    docs.append(dict(row))
            else:
                docs = codec.documents(data, table)
            if not docs:
                return 0
            try:
                self._db()[table].insert_many(docs, ordered=True)
            except (InvalidDocument, OverflowError) as exc:
                raise SchemaError(
                    f"insert into {table!r}: MongoDB cannot store a value: {exc}"
                ) from exc
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                first = errors[0].get("errmsg", "") if errors else str(exc)
                done = exc.details.get("nInserted", 0)
                raise PinnacleError(
                    f"insert into {table!r} in {self.uri} stopped after {done} of {len(docs)} "
                    f"rows: {first}"
                ) from exc
        return len(docs)

    def insert_returning_ids(self, table: str, rows: Rows) -> list[Any]:
        """Insert like :meth:`insert` and return each row's ``_id``, in row order.

        Rows without an ``_id`` get a new ObjectId, assigned here before the write (as the
        driver would), so the ids are known without reading anything back.
        """
        if isinstance(rows, (Mapping, str, bytes)):
            raise SchemaError(f"insert into {table!r}: pass a list of dicts, not a single row")
        from bson import ObjectId

        items = [dict(r) if isinstance(r, Mapping) else r for r in rows]
        for item in items:
            if isinstance(item, dict) and item.get("_id") is None:
                item["_id"] = ObjectId()
        self.insert(table, items)
        return [item["_id"] for item in items]

    def _compile(
        self, table: str, codec: TableCodec | None, where: Filter | None
    ) -> CompiledFilter:
        if codec is None:
            validate_filter(where, None)
            return compile_filter(where)
        validate_filter(where, codec.schema)
        return compile_filter(where, codec.field, codec.array_valued)

    def _candidates(
        self, table: str, codec: TableCodec | None, compiled: CompiledFilter, where: Filter | None
    ) -> Iterable[tuple[Document, dict[str, Any]]]:
        """(document, row) pairs of every row matching ``where`` (client-side filters)."""
        match = matcher(where)
        for doc in self._db()[table].find(compiled.query):
            row = codec.row(doc) if codec is not None else doc
            if match(row):
                yield doc, row

    def select(
        self,
        table: str,
        where: Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        order_by: OrderBy | None = None,
    ) -> list[dict[str, Any]]:
        """Rows matching ``where`` as dicts: ``_id`` first, then the columns (NULL as None).

        NULL sorts first ascending and last descending (MongoDB's order, and the portable one).

        Raises:
            TableNotFound: no such table.
            FilterError: an invalid filter or limit.
            SchemaError: an unknown column in ``columns`` or ``order_by``.
        """
        with self._conn.errors(f"select from {table!r}"):
            codec = self._codec(table)
            schema = codec.schema if codec is not None else None
            compiled = self._compile(table, codec, where)
            names = _check_columns(table, columns, schema)
            check_limit(limit)
            order = parse_order_by(order_by, schema, table) if order_by else []
            if limit == 0:
                return []
            python_sort = schema is not None and any(
                schema[c].dtype is DType.BYTES for c, _ in order
            )
            field = codec.field if codec is not None else _same
            if compiled.client_side or python_sort:
                return self._select_in_python(
                    table=table,
                    codec=codec,
                    compiled=compiled,
                    where=where,
                    names=names,
                    order=order,
                    limit=limit,
                )
            projection: dict[str, int] | None = None
            if names is not None:
                projection = {"_id": 1, **{field(n): 1 for n in names}}
            cursor = self._db()[table].find(
                compiled.query,
                projection,
                sort=mongo_sort(order, field) if order else None,
                limit=limit or 0,
            )
            if codec is None:
                return list(cursor)
            to_row = codec.row
            if names is None:
                return [to_row(doc) for doc in cursor]
            return [to_row(doc, names) for doc in cursor]

    def scan(
        self,
        table: str,
        *,
        columns: Sequence[str] | None = None,
        batch_size: int = 1000,
        skip: int = 0,
    ) -> Iterator[list[dict[str, Any]]]:
        """Every row of ``table`` in ``_id`` order, ``batch_size`` rows at a time.

        For reading whole tables of any size (exports, copies) in constant memory: rows are
        those :meth:`select` returns (``_id`` first, then ``columns``, all by default), read
        through one server cursor. ``skip`` leaves out the first rows in that order (to
        resume). Rows inserted while the scan runs may or may not be seen.

        Raises:
            TableNotFound: no such table (when iteration starts).
            SchemaError: an unknown column in ``columns``.
            FilterError: ``batch_size`` is not an int > 0 or ``skip`` not an int >= 0.
        """
        _check_batching(batch_size, skip)
        return self._scan(table, columns, batch_size, skip)

    def _scan(
        self, table: str, columns: Sequence[str] | None, batch_size: int, skip: int
    ) -> Iterator[list[dict[str, Any]]]:
        with self._conn.errors(f"scan {table!r}"):
            codec = self._codec(table)
            names = _check_columns(table, columns, codec.schema if codec is not None else None)
            field = codec.field if codec is not None else _same
            projection = None if names is None else {"_id": 1, **{field(n): 1 for n in names}}
            cursor = self._db()[table].find(
                {}, projection, sort=[("_id", 1)], skip=skip, batch_size=batch_size
            )
            try:
                batch: list[dict[str, Any]] = []
                for doc in cursor:
                    if codec is None:
                        batch.append(doc)
                    elif names is None:
                        batch.append(codec.row(doc))
                    else:
                        batch.append(codec.row(doc, names))
                    if len(batch) >= batch_size:
                        yield batch
                        batch = []
                if batch:
                    yield batch
            finally:
                cursor.close()

    def _select_in_python(
        self,
        *,
        table: str,
        codec: TableCodec | None,
        compiled: CompiledFilter,
        where: Filter | None,
        names: tuple[str, ...] | None,
        order: list[tuple[str, bool]],
        limit: int | None,
    ) -> list[dict[str, Any]]:
        if compiled.client_side:
            rows = [row for _, row in self._candidates(table, codec, compiled, where)]
        else:
            docs = self._db()[table].find(compiled.query)
            rows = [codec.row(d) if codec is not None else d for d in docs]
        if order:
            for column, descending in reversed(order):
                rows.sort(key=_sort_key(column), reverse=descending)
        if limit is not None:
            rows = rows[:limit]
        if names is None:
            return rows
        return [{"_id": r.get("_id"), **{n: r.get(n) for n in names}} for r in rows]

    def update(self, table: str, where: Filter | None, values: Mapping[str, Any]) -> int:
        """Set ``values`` on every matching row; return how many matched.

        Raises:
            TableNotFound: no such table.
            SchemaError: an unknown column or a value of the wrong type.
        """
        if not isinstance(values, Mapping):
            raise SchemaError(f"update {table!r}: values must be a dict")
        with self._conn.errors(f"update {table!r}"):
            codec = self._codec(table)
            if "_id" in values:
                raise SchemaError(f"update {table!r}: the document id '_id' cannot be changed")
            if codec is not None:
                new = codec.values(values, f"update {table!r}")
            else:
                new = dict(values)
            compiled = self._compile(table, codec, where)
            coll = self._db()[table]
            if not compiled.client_side:
                if not new:
                    return coll.count_documents(compiled.query)
                return coll.update_many(compiled.query, {"$set": new}).matched_count
            ids = [doc["_id"] for doc, _ in self._candidates(table, codec, compiled, where)]
            if new:
                for start in range(0, len(ids), _ID_BATCH):
                    batch = ids[start : start + _ID_BATCH]
                    coll.update_many({"_id": {"$in": batch}}, {"$set": new})
            return len(ids)

    def delete(self, table: str, where: Filter | None) -> int:
        """Delete matching rows (``None`` or ``{}`` deletes every row); return how many."""
        with self._conn.errors(f"delete rows of {table!r}"):
            codec = self._codec(table)
            compiled = self._compile(table, codec, where)
            coll = self._db()[table]
            if not compiled.client_side:
                return coll.delete_many(compiled.query).deleted_count
            ids = [doc["_id"] for doc, _ in self._candidates(table, codec, compiled, where)]
            deleted = 0
            for start in range(0, len(ids), _ID_BATCH):
                batch = ids[start : start + _ID_BATCH]
                deleted += coll.delete_many({"_id": {"$in": batch}}).deleted_count
            return deleted

    def count(self, table: str, where: Filter | None = None) -> int:
        """How many rows match ``where``."""
        with self._conn.errors(f"count {table!r}"):
            codec = self._codec(table)
            compiled = self._compile(table, codec, where)
            if not compiled.client_side:
                return self._db()[table].count_documents(compiled.query)
            return sum(1 for _ in self._candidates(table, codec, compiled, where))

    def count_unmatched(
        self,
        table: str,
        other: str,
        on: Sequence[tuple[str, str]],
        *,
        where: Filter | None = None,
        other_where: Filter | None = None,
    ) -> int:
        """Rows of ``table`` no row of ``other`` matches, counted by the server.

        One aggregation: the rows of ``table`` matching ``where`` with a non-NULL first key
        ``$lookup`` at most one row of ``other`` by the first pair (``localField`` /
        ``foreignField``, which an index on ``other`` serves) whose other columns equal theirs
        NULL-safely (``$ifNull`` makes a missing field NULL; BSON comparison is exact, strings
        by code point) and that matches ``other_where``; the rows with no such match are
        counted. The matched row is projected to a marker field and a row counts as unmatched
        unless a marked match came back, so a server that ignores the lookup's pipeline
        (nx-27017 does) overcounts, which makes catch_up check row by row, and never
        undercounts. Filters MongoDB cannot answer exactly (ranges over bytes) are evaluated
        in Python over the matching rows instead.

        See :class:`pinnacle_protocols.protocols.SupportsMatchCount` (used by listeners).
        """
        with self._conn.errors(f"count rows of {table!r} unmatched in {other!r}"):
            codec = self._schema_codec(table)
            other_codec = self._schema_codec(other)
            pairs = check_match_pairs(on, codec.schema, other_codec.schema)
            key: Filter = {pairs[0][0]: {"$ne": None}}
            left_where: Filter = {"$and": [key, where]} if where else key
            left = self._compile(table, codec, left_where)
            right = self._compile(other, other_codec, other_where)
            if left.client_side or right.client_side:
                return self._count_unmatched_in_python(table, other, pairs, left_where, other_where)
            field = codec.field
            conditions: list[Any] = [
                {"$eq": [{"$ifNull": [f"${other_codec.field(b)}", None]}, f"$$k{i}"]}
                for i, (_, b) in enumerate(pairs[1:], start=1)
            ]
            match: list[dict[str, Any]] = [right.query] if right.query else []
            if conditions:
                expr = conditions[0] if len(conditions) == 1 else {"$and": conditions}
                match.append({"$expr": expr})
            pipeline: list[dict[str, Any]] = []
            if match:
                pipeline.append({"$match": match[0] if len(match) == 1 else {"$and": match}})
            pipeline += [
                {"$limit": 1},
                {"$project": {"_id": 0, _MATCH_MARK: {"$literal": True}}},
            ]
            lookup = {
                "from": other,
                "localField": field(pairs[0][0]),
                "foreignField": other_codec.field(pairs[0][1]),
                "let": {
                    f"k{i}": {"$ifNull": [f"${field(a)}", None]}
                    for i, (a, _) in enumerate(pairs[1:], start=1)
                },
                "pipeline": pipeline,
                "as": _MATCHES,
            }
            result = list(
                self._db()[table].aggregate(
                    [
                        {"$match": left.query},
                        {"$lookup": lookup},
                        {"$match": {f"{_MATCHES}.{_MATCH_MARK}": {"$ne": True}}},
                        {"$count": "n"},
                    ]
                )
            )
            return int(result[0]["n"]) if result else 0

    def _schema_codec(self, table: str) -> TableCodec:
        """The codec of a table created through ``create_table`` (TableNotFound otherwise)."""
        codec = self._codec(table)
        if codec is None:
            raise TableNotFound(
                f"collection {table!r} in {self.uri} has no portable schema (it was not created "
                "with create_table()); use native() to work with it"
            )
        return codec

    def _count_unmatched_in_python(
        self,
        table: str,
        other: str,
        pairs: list[tuple[str, str]],
        where: Filter,
        other_where: Filter | None,
    ) -> int:
        right = [b for _, b in pairs]
        present = {
            tuple(r[c] for c in right)
            for r in self.select(other, other_where, columns=sorted(set(right)))
        }
        left = [a for a, _ in pairs]
        return sum(
            1
            for r in self.select(table, where, columns=sorted(set(left)))
            if tuple(r[c] for c in left) not in present
        )

    def create_index(self, table: str, columns: Sequence[str], *, unique: bool = False) -> bool:
        """Ensure an index on ``columns`` (``create_index`` is idempotent on MongoDB).

        See :class:`pinnacle_protocols.protocols.SupportsIndexes` (used by listeners).
        """
        with self._conn.errors(f"create an index on {table!r}"):
            names = check_index_columns(table, columns, self.table_schema(table))
            self._db()[table].create_index(
                [(encode_field(n), 1) for n in names],
                name=index_name(table, names, unique=unique),
                unique=unique,
            )
            return True

    # ------------------------------------------------------------------ native
    def native(self, table: str) -> Collection[Document]:
        """The pymongo ``Collection`` of ``table`` (TableNotFound if it does not exist)."""
        with self._conn.errors(f"open {table!r}"):
            self._codec(table)
            return self._db()[table]

    def native_database(self) -> Database[Document]:
        """The pymongo ``Database`` this backend works in."""
        with self._conn.errors("open the database"):
            return self._db()

    # ------------------------------------------------------------------ native copy
    def copies_natively_to(self, other: object) -> bool:
        """Whether ``other`` is a MongoDB backend (raw BSON documents go there unchanged).

        See :class:`pinnacle_protocols.protocols.SupportsNativeCopy` (used by copy).
        """
        return isinstance(other, MongoDataBackend)

    def native_rows(
        self, table: str, *, skip: int = 0, batch_size: int = 1000
    ) -> Iterator[list[Any]]:
        """The raw BSON documents of ``table`` in ``_id`` order after the first ``skip``.

        Documents are never decoded: every BSON type (ObjectId, datetime, binary subtypes,
        Decimal128, int32 versus int64) and the field order stay as they were. One cursor,
        ``batch_size`` documents per round trip.

        Raises:
            FilterError: ``batch_size`` is not an int > 0 or ``skip`` not an int >= 0.
        """
        _check_batching(batch_size, skip)
        return self._native_rows(table, skip, batch_size)

    def _native_rows(self, table: str, skip: int, batch_size: int) -> Iterator[list[Any]]:
        with self._conn.errors(f"read the documents of {table!r}"):
            source = self._db().get_collection(table, codec_options=_raw_codec())
            cursor = source.find({}, sort=[("_id", 1)], skip=skip, batch_size=batch_size)
            try:
                batch: list[Any] = []
                for doc in cursor:
                    batch.append(doc)
                    if len(batch) >= batch_size:
                        yield batch
                        batch = []
                if batch:
                    yield batch
            finally:
                cursor.close()

    def insert_native(self, table: str, rows: Sequence[Any]) -> int:
        """Insert raw documents in order, skipping those whose ``_id`` the collection has
        already; return how many were inserted (ordered inserts leave a prefix on a crash)."""
        with self._conn.errors(f"insert documents into {table!r}"):
            target = self._db().get_collection(table, codec_options=_raw_codec())
            return _insert_new(target, list(rows))

    def create_native_table(self, table: str) -> None:
        """Make sure the collection exists (created without a portable schema if not)."""
        from pymongo.errors import CollectionInvalid

        with self._conn.errors(f"create {table!r}"), contextlib.suppress(CollectionInvalid):
            self._db().create_collection(table)

    def execute(self, query: Any) -> Any:
        """Run a native query and return its documents as a list.

        Accepts ``{"find": "coll", "filter": {...}, "projection": ..., "sort": [...],
        "skip": n, "limit": n}``, ``{"aggregate": "coll", "pipeline": [...]}``, a
        :class:`~pinnacle_mongo.Find` / :class:`~pinnacle_mongo.Aggregate`, or a callable
        ``fn(database)`` (its result is returned as is, or as a list if it is a cursor).

        Raises:
            FilterError: ``query`` is none of these forms.
        """
        spec = parse_native_query(query)
        with self._conn.errors("execute a native query"):
            db = self._db()
            if isinstance(spec, (Find, Aggregate)):
                return spec.run(db)
            result = spec(db)
            from pymongo.command_cursor import CommandCursor
            from pymongo.cursor import Cursor

            if isinstance(result, (Cursor, CommandCursor)):
                return list(result)
            return result

    # ------------------------------------------------------------------ companions
    @classmethod
    def default_metadata_uri_for(cls, uri: RedactedURI) -> RedactedURI | None:
        """``uri`` itself, checked as :meth:`from_uri` checks it, without a client.

        Raises:
            InvalidURIError: not a MongoDB URI naming a database.
        """
        return parse_mongo_uri(uri)

    @classmethod
    def default_artifact_uri_for(cls, uri: RedactedURI) -> RedactedURI | None:
        """``uri`` itself (GridFS beside the data), checked as :meth:`from_uri` checks it."""
        return parse_mongo_uri(uri)

    def default_metadata_uri(self) -> RedactedURI | None:
        """This backend's own URI: metadata lives in ``_pinnacle_*`` collections beside the data."""
        return self.uri

    def default_artifact_uri(self) -> RedactedURI | None:
        """This backend's own URI: artifacts live in the GridFS bucket ``_pinnacle_artifacts``."""
        return self.uri

    # ------------------------------------------------------------------ lifecycle
    def ping(self) -> None:
        """Check that the server answers (BackendUnavailable otherwise)."""
        self._conn.ping()

    def drop(self, *, force: bool = False) -> None:
        """Drop every user collection and the stored schemas (DropRefused without force).

        pinnacledb's metadata and artifacts (other ``_pinnacle_*`` collections) are kept.
        """
        if force is not True:
            raise DropRefused(
                f"refusing to drop every table of {self.uri}; call drop(force=True) to confirm"
            )
        with self._conn.errors("drop every table"):
            db = self._db()
            for name in db.list_collection_names():
                if _is_user_collection(name):
                    db.drop_collection(name)
            db.drop_collection(SCHEMAS_COLLECTION)

    def close(self) -> None:
        """Close the client (if this backend created it); later calls raise BackendUnavailable."""
        self._conn.close()


def _same(name: str) -> str:
    return name


def _check_batching(batch_size: int, skip: int) -> None:
    for name, value, least in (("batch_size", batch_size, 1), ("skip", skip, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise FilterError(f"{name} must be an int >= {least}, got {value!r}")


def _raw_codec() -> Any:
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    return CodecOptions(document_class=RawBSONDocument)


def _insert_new(target: Any, docs: list[Any]) -> int:
    """Insert ``docs`` in order into the pymongo collection ``target``, skipping those whose
    ``_id`` it has already; return how many were inserted."""
    from pymongo.errors import BulkWriteError

    inserted = 0
    while docs:
        try:
            target.insert_many(docs, ordered=True)
        except BulkWriteError as exc:
            details = exc.details
            errors = details.get("writeErrors") or []
            if not errors or any(e.get("code") != _DUPLICATE_KEY for e in errors):
                raise
            inserted += int(details.get("nInserted", 0))
            docs = docs[int(errors[0]["index"]) + 1 :]
            continue
        inserted += len(docs)
        break
    return inserted


def _check_columns(
    table: str, columns: Sequence[str] | None, schema: Schema | None
) -> tuple[str, ...] | None:
    if columns is None:
        return None
    if isinstance(columns, str):
        raise SchemaError("columns must be a list of column names, not a string")
    names = tuple(columns)
    for c in names:
        if not isinstance(c, str) or (schema is not None and c not in schema):
            raise SchemaError(f"select from {table!r}: unknown column {c!r}")
    return names


def _sort_key(column: str) -> Any:
    def key(row: Mapping[str, Any]) -> tuple[Any, ...]:
        value = row.get(column)
        return (0,) if value is None else (1, value)

    return key
