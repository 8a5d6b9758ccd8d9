"""The Datalayer: one object wiring a databackend, a metadata store and an artifact store."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

from pinnacle_protocols.errors import (
    ArtifactCorrupted,
    ComponentInUse,
    ComponentNotFound,
    DropRefused,
    SchemaError,
    TableNotFound,
)
from pinnacle_protocols.protocols import (
    ArrowTableLike,
    ArtifactStore,
    DataBackend,
    MetadataStore,
    OrderBy,
    Rows,
)
from pinnacle_protocols.records import ComponentKey, ComponentRecord, JobRecord
from pinnacle_protocols.records import Schema as PortableSchema
from pinnacledb._config import DEFAULT_GC_GRACE_SECONDS
from pinnacledb.base._components import ComponentIO
from pinnacledb.base._lazy import LazyStore
from pinnacledb.components._base import Component, ComponentRegistry
from pinnacledb.components.model import Model
from pinnacledb.components.table import DataType, Table
from pinnacledb.serializers import SerializerRegistry

if TYPE_CHECKING:
    from pinnacle_protocols.filters import Filter
    from pinnacledb._config import ResolvedConfig
    from pinnacledb.copy import CopyReport
    from pinnacledb.gc import GCReport, Progress
    from pinnacledb.predict import PredictResult

__all__ = ["Datalayer"]


def _slot(role: Any, value: Any) -> LazyStore:
    return value if isinstance(value, LazyStore) else LazyStore(role, instance=value)


class Datalayer:
    """Wires together the databackend, the metadata store and the artifact store.

    Build it with :func:`pinnacledb.pinnacle`. Stores are created (and their packages
    imported) on first use, so building a Datalayer is cheap and touches nothing.
    """

    def __init__(
        self,
        *,
        databackend: DataBackend | LazyStore,
        metadata: MetadataStore | LazyStore,
        artifact_store: ArtifactStore | LazyStore,
        trust_serializers: Iterable[str] = (),
        gc_grace_seconds: float = DEFAULT_GC_GRACE_SECONDS,
        components: Iterable[type[Component]] = (),
        config: ResolvedConfig | None = None,
    ) -> None:
        """Use stores (or lazy store slots); see :func:`pinnacledb.pinnacle` for the usual way.

        Args:
            databackend: The user's data.
            metadata: Component records, lineage and jobs.
            artifact_store: Blobs (weights, large values).
            trust_serializers: Code-executing serializers allowed on load (e.g. ``{"pickle"}``).
            gc_grace_seconds: Unreferenced artifacts younger than this survive ``gc()``.
            components: Extra component classes ``load`` may build.
            config: The resolved configuration (shown by ``pinnacle info``).
        """
        self._slots = {
            "databackend": _slot("databackend", databackend),
            "metadata": _slot("metadata", metadata),
            "artifact_store": _slot("artifact_store", artifact_store),
        }
        self.serializers = SerializerRegistry(trusted=frozenset(trust_serializers))
        self.components = ComponentRegistry()
        for cls in components:
            self.components.register(cls)
        self.gc_grace_seconds = float(gc_grace_seconds)
        self.config = config
        self._io = ComponentIO(
            metadata=lambda: self.metadata,
            artifacts=lambda: self.artifact_store,
            serializers=self.serializers,
            registry=self.components,
            before_apply=self._before_apply,
        )

    # ------------------------------------------------------------------ stores
    @property
    def databackend(self) -> DataBackend:
        """The databackend (built on first access)."""
        return self._slots["databackend"].get()  # type: ignore[no-any-return]

    @property
    def metadata(self) -> MetadataStore:
        """The metadata store (built on first access)."""
        return self._slots["metadata"].get()  # type: ignore[no-any-return]

    @property
    def artifact_store(self) -> ArtifactStore:
        """The artifact store (built on first access)."""
        return self._slots["artifact_store"].get()  # type: ignore[no-any-return]

    @property
    def slots(self) -> Mapping[str, LazyStore]:
        """The three store slots (URI, class and whether connected) without building them."""
        return dict(self._slots)

    @property
    def trusted_serializers(self) -> frozenset[str]:
        """Code-executing serializers this Datalayer will load."""
        return self.serializers.trusted

    def __repr__(self) -> str:
        lines = [
            f"  {name}={slot.uri}  ({slot.class_path}),"
            for name, slot in (
                ("databackend", self._slots["databackend"]),
                ("metadata", self._slots["metadata"]),
                ("artifact_store", self._slots["artifact_store"]),
            )
        ]
        return "Datalayer(\n" + "\n".join(lines) + "\n)"

    def close(self) -> None:
        """Close every store this Datalayer built."""
        for slot in self._slots.values():
            slot.close()

    def __enter__(self) -> Datalayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ data
    def list_tables(self) -> list[str]:
        """User tables of the databackend."""
        return self.databackend.list_tables()

    def create_table(self, name: str, schema: PortableSchema | Mapping[str, str]) -> None:
        """Create a plain table; for encoded columns apply a :class:`Table` component."""
        if not isinstance(schema, PortableSchema):
            schema = PortableSchema.of(**schema)
        self.databackend.create_table(name, schema)

    def drop_table(self, name: str) -> None:
        """Drop a user table (its Table component, if any, stays until removed)."""
        self.databackend.drop_table(name)

    def __getitem__(self, table: str) -> Any:
        """The native handle of a table (an ibis Table, a pymongo Collection)."""
        return self.databackend.native(table)

    def execute(self, query: Any) -> Any:
        """Run a native query of the databackend (ibis expression, MongoDB spec)."""
        return self.databackend.execute(query)

    def insert(self, table: str, rows: Rows | ArrowTableLike) -> int:
        """Append rows; DataType columns of a Table component are encoded first."""
        codec = self._codec(table)
        if codec is None:
            return self.databackend.insert(table, rows)
        if isinstance(rows, ArrowTableLike):
            rows = rows.to_pylist()
        encoded, blobs = self._encode_rows(codec, rows)
        with self._journaled_puts("insert", table, blobs):
            return self.databackend.insert(table, encoded)

    def select(
        self,
        table: str,
        where: Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        order_by: OrderBy | None = None,
        decode: bool = True,
    ) -> list[dict[str, Any]]:
        """Rows matching ``where``; DataType columns are decoded (and hash-verified)."""
        rows = self.databackend.select(
            table, where, columns=columns, limit=limit, order_by=order_by
        )
        codec = self._codec(table) if decode else None
        if codec:
            rows = self._decode_rows(codec, rows)
        return rows

    def update(self, table: str, where: Filter | None, values: Mapping[str, Any]) -> int:
        """Set ``values`` on matching rows (DataType columns encoded); return the match count."""
        codec = self._codec(table)
        if codec is None or not set(values) & set(codec):
            return self.databackend.update(table, where, values)
        encoded, blobs = self._encode_rows(codec, [values])
        with self._journaled_puts("update", table, blobs):
            return self.databackend.update(table, where, encoded[0])

    def delete(self, table: str, where: Filter | None) -> int:
        """Delete matching rows; return how many."""
        return self.databackend.delete(table, where)

    def count(self, table: str, where: Filter | None = None) -> int:
        """How many rows match."""
        return self.databackend.count(table, where)

    def _codec(self, table: str) -> dict[str, DataType] | None:
        try:
            record = self.metadata.get_component(Table.type_id, table)
        except ComponentNotFound:
            return None
        component = self._io.from_record(record, {})
        assert isinstance(component, Table)
        return component.schema.encoded() or None

    def _encode_rows(
        self, codec: Mapping[str, DataType], rows: Iterable[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
        """Encode DataType columns; return the rows and the by-reference blobs (not put yet)."""
        out = [dict(r) for r in rows]
        blobs: dict[str, bytes] = {}
        for row in out:
            for col, dt in codec.items():
                value = row.get(col)
                if value is None:
                    continue
                blob = dt.encode(value, self.serializers)
                if dt.by_reference:
                    sha = hashlib.sha256(blob).hexdigest()
                    blobs[sha] = blob
                    row[col] = sha
                else:
                    row[col] = blob
        return out, blobs

    @contextlib.contextmanager
    def _journaled_puts(self, kind: str, table: str, blobs: Mapping[str, bytes]) -> Iterator[None]:
        """Journal and put ``blobs``, run the body (the row write), then finish the journal job.

        The job stays RUNNING until the rows that reference the blobs are written, so a ``gc``
        running meanwhile counts them as claimed (see :mod:`pinnacledb.gc`). If the put or the
        body raises, the job is marked FAILED with the error and the error propagates.
        """
        if not blobs:
            yield
            return
        store = self.artifact_store
        job = self._io.journal_start(kind, {"table": table}, sorted(blobs))
        try:
            for sha, blob in blobs.items():
                if store.put(blob).sha256 != sha:
                    raise ArtifactCorrupted(f"{store.uri} stored bytes under another sha256")
            yield
        except BaseException as exc:
            with contextlib.suppress(Exception):  # bookkeeping; the error is what matters
                self._io.journal_finish(job, error=exc)
            raise
        self._io.journal_finish(job)

    def _decode_rows(
        self, codec: Mapping[str, DataType], rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        present = [c for c in codec if any(c in r for r in rows)]
        for col in present:
            self.serializers.check_trusted(codec[col].encoder, f"column {col!r}")
        for row in rows:
            for col in present:
                value = row.get(col)
                if value is None:
                    continue
                dt = codec[col]
                blob = self.artifact_store.get(value) if dt.by_reference else bytes(value)
                row[col] = dt.decode(blob, self.serializers)
        return rows

    # ------------------------------------------------------------------ components
    def register_component(self, cls: type[Component]) -> None:
        """Let ``load`` build ``cls`` (classes passed to ``apply`` are registered already)."""
        self.components.register(cls)

    def apply(self, component: Component) -> ComponentRecord:
        """Store a component: artifacts first, then its record; return the stored record.

        Re-applying an unchanged component returns the existing version; a changed one gets
        the next version. Components it references are applied first and recorded as its
        children (lineage). ``component.version`` is set. A :class:`Table` also creates its
        table in the databackend if it does not exist.
        """
        return self._io.apply(component)

    def _before_apply(self, component: Component) -> None:
        if isinstance(component, Table):
            self._ensure_table(component)

    def _ensure_table(self, table: Table) -> None:
        schema = table.schema.portable()
        backend = self.databackend
        if table.identifier not in backend.list_tables():
            backend.create_table(table.identifier, schema)
            return
        try:
            existing = backend.table_schema(table.identifier)
        except (TableNotFound, NotImplementedError):
            return
        if tuple((f.name, f.dtype) for f in existing.fields) != tuple(
            (f.name, f.dtype) for f in schema.fields
        ):
            raise SchemaError(
                f"table {table.identifier!r} already exists in {backend.uri} with columns "
                f"{[(f.name, f.dtype.value) for f in existing.fields]}, which do not match "
                f"{[(f.name, f.dtype.value) for f in schema.fields]}; drop or rename it first"
            )

    def load(self, type_id: str, identifier: str, version: int | None = None) -> Component:
        """Rebuild a stored component (latest version unless ``version``).

        Artifacts are hash-verified by the artifact store before any deserialization, and
        code-executing serializers are refused unless trusted.
        """
        return self._io.load(type_id, identifier, version)

    @overload
    def show(self) -> list[ComponentKey]: ...
    @overload
    def show(self, type_id: str) -> list[str]: ...
    @overload
    def show(self, type_id: str, identifier: str) -> list[int]: ...
    def show(
        self, type_id: str | None = None, identifier: str | None = None
    ) -> list[ComponentKey] | list[str] | list[int]:
        """``show()``: latest key of every component; ``show(type_id)``: identifiers;
        ``show(type_id, identifier)``: versions."""
        if type_id is None:
            if identifier is not None:
                raise TypeError("show(identifier=...) needs type_id too")
            return self.metadata.show_components()
        if identifier is None:
            return [k.identifier for k in self.metadata.show_components(type_id)]
        return self.metadata.show_versions(type_id, identifier)

    def get_record(
        self, type_id: str, identifier: str, version: int | None = None
    ) -> ComponentRecord:
        """The stored record of a component version (no artifacts read)."""
        return self.metadata.get_component(type_id, identifier, version)

    def remove(
        self, type_id: str, identifier: str, version: int | None = None, *, force: bool = False
    ) -> list[ComponentKey]:
        """Delete one version (or all with ``version=None``); return the removed keys.

        Artifacts stay until ``gc()`` finds them unreferenced.

        Raises:
            ComponentNotFound: nothing to remove.
            ComponentInUse: another component depends on a version and ``force`` is False;
                nothing was removed.
        """
        md = self.metadata
        versions = [version] if version is not None else md.show_versions(type_id, identifier)
        if not versions:
            raise ComponentNotFound(f"no component {type_id} {identifier!r} in {md.uri}")
        keys = [ComponentKey(type_id=type_id, identifier=identifier, version=v) for v in versions]
        if version is not None:
            md.get_component(type_id, identifier, version)  # ComponentNotFound if absent
        if not force:
            removing = set(keys)
            for key in keys:
                users = [p for p in md.get_parents(key) if p not in removing]
                if users:
                    shown = ", ".join(f"{p.type_id} {p.identifier!r} v{p.version}" for p in users)
                    raise ComponentInUse(
                        f"{type_id} {identifier!r} v{key.version} is used by {shown}; remove "
                        "those first or pass force=True (nothing was removed)"
                    )
        for key in keys:
            md.delete_component_version(type_id, identifier, key.version, force=force)
        return keys

    def drop(self, *, force: bool = False) -> None:
        """Delete every user table, component record and artifact of the three stores.

        Raises:
            DropRefused: ``force`` is not True; nothing was deleted.
        """
        if force is not True:
            s = self._slots
            raise DropRefused(
                f"db.drop() deletes every table in {s['databackend'].uri}, every component, "
                f"job and lineage record in {s['metadata'].uri} and every artifact in "
                f"{s['artifact_store'].uri}; nothing was deleted. Call db.drop(force=True)."
            )
        self.databackend.drop(force=True)
        self.metadata.drop(force=True)
        self.artifact_store.drop(force=True)

    # ------------------------------------------------------------------ jobs, predict, gc
    def predict(
        self,
        model: str | Model,
        table: str,
        *,
        inputs: str | Sequence[str],
        output: str | None = None,
        where: Filter | None = None,
        version: int | None = None,
        id_column: str | None = None,
        batch_size: int = 1000,
    ) -> PredictResult:
        """Run a model over selected rows and write its outputs to an outputs table.

        See :func:`pinnacledb.predict.predict`.
        """
        from pinnacledb.predict import predict

        return predict(
            self,
            model,
            table,
            inputs=inputs,
            output=output,
            where=where,
            version=version,
            id_column=id_column,
            batch_size=batch_size,
        )

    def show_jobs(self, kind: str | None = None) -> list[JobRecord]:
        """Jobs in the metadata store (optionally of one kind)."""
        jobs = self.metadata.show_jobs()
        return [j for j in jobs if kind is None or j.kind == kind]

    def gc(
        self,
        *,
        dry_run: bool = False,
        grace_seconds: float | None = None,
        progress: Progress | None = None,
    ) -> GCReport:
        """Delete artifacts that nothing references and that are older than the grace period.

        See :mod:`pinnacledb.gc` for how age and in-flight writes are tracked.
        """
        from pinnacledb.gc import collect_garbage

        return collect_garbage(
            self,
            dry_run=dry_run,
            grace_seconds=self.gc_grace_seconds if grace_seconds is None else grace_seconds,
            progress=progress,
        )

    def copy_to(
        self,
        other: Datalayer,
        *,
        tables: Sequence[str] | None = None,
        all_tables: bool = False,
        dry_run: bool = False,
        batch_size: int = 10_000,
        progress: Progress | None = None,
        workers: int = 4,
    ) -> CopyReport:
        """Copy every component version, artifact, lineage edge and job (and tables) to ``other``.

        Idempotent and resumable; conflicting versions raise ``CopyConflict`` and nothing is
        overwritten. See :func:`pinnacledb.copy.copy_deployment`.
        """
        from pinnacledb.copy import copy_deployment

        return copy_deployment(
            self,
            other,
            tables=tables,
            all_tables=all_tables,
            dry_run=dry_run,
            batch_size=batch_size,
            progress=progress,
            workers=workers,
        )

    # internal hooks used by predict/gc
    @property
    def _component_io(self) -> ComponentIO:
        return self._io

    def _table_codec(self, table: str) -> dict[str, DataType] | None:
        return self._codec(table)
