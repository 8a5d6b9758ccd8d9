"""What ``pinnacle ui`` shows, as JSON-safe dicts read through the Datalayer.

Every function here takes a :class:`~pinnacledb.base.datalayer.Datalayer` and returns plain
data (dicts, lists, str, int, float, bool, None) that the JSON API returns as is and the pages
render. Nothing here writes: only reading methods of the stores are called.

Rules kept by every function:

- Store URIs are shown redacted (:class:`~pinnacle_protocols.uri.RedactedURI`), and every
  string of the result goes through :meth:`Deployment.clean`, which masks the configured
  passwords and secret query values and any ``user:password@`` left in text (job errors,
  table cells): a second line of defence, as in the CLI.
- Lists are paginated (``offset``, ``limit`` <= :data:`MAX_LIMIT`); a table page reads at most
  :data:`MAX_ROWS` rows; the whole-deployment lineage graph holds at most
  :data:`MAX_GRAPH_COMPONENTS` components. Nothing loads a whole table or every record.
- Bytes are never returned: a bytes cell, an encoded (``DataType``) column and a by-reference
  column are described by their dtype, size and sha256 prefix.
- A parameter that cannot name anything (a negative offset, a version that is not a number)
  raises :class:`BadParameter`; a name that names nothing raises the store's ``NotFoundError``.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final

from pinnacle_protocols.errors import (
    ComponentNotFound,
    InvalidArtifactRef,
    PinnacleError,
    TableNotFound,
)
from pinnacle_protocols.records import (
    ComponentKey,
    ComponentRecord,
    JobRecord,
    JobStatus,
    validate_sha256,
)
from pinnacledb._secrets import Scrubber

if TYPE_CHECKING:
    from pinnacle_protocols.protocols import MetadataStore
    from pinnacledb.base.datalayer import Datalayer

__all__ = [
    "MAX_GRAPH_COMPONENTS",
    "MAX_LIMIT",
    "MAX_ROWS",
    "BadParameter",
    "Deployment",
    "int_param",
    "page_params",
    "version_param",
]

#: The largest page of any list.
MAX_LIMIT: Final = 200
#: The most rows a table page shows.
MAX_ROWS: Final = 100
#: The most components drawn in the whole-deployment lineage graph (a component's own graph
#: shows its neighbourhood instead).
MAX_GRAPH_COMPONENTS: Final = 150
#: The most jobs read to find which outputs tables predict jobs wrote (for the graph).
_GRAPH_JOBS: Final = 500
#: How long the artifact count and bytes (a listing of the artifact store) are reused.
_ARTIFACT_STATS_TTL: Final = 30.0
#: The most artifacts counted (a larger store is shown as "at least").
_ARTIFACT_SCAN_CAP: Final = 200_000
_TEXT_CAP: Final = 300
_LIST_CAP: Final = 16
_ROLES: Final = ("databackend", "metadata", "artifact_store", "compute")


class BadParameter(PinnacleError, ValueError):
    """A query parameter of the UI cannot name anything (wrong type or out of range)."""


def int_param(value: str | int | None, name: str, default: int, lo: int, hi: int) -> int:
    """A whole number from a query parameter (``default`` if absent), from ``lo`` to ``hi``."""
    if value is None or value == "":
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value)
        if not (text.isascii() and text.isdigit()) or len(text) > 12:
            raise BadParameter(f"{name} must be a whole number from {lo} to {hi}, got {text!r:.40}")
        number = int(text)
    if not lo <= number <= hi:
        raise BadParameter(f"{name} must be from {lo} to {hi}, got {number}")
    return number


def page_params(
    offset: str | int | None, limit: str | int | None, default: int = 50
) -> tuple[int, int]:
    """``(offset, limit)`` from query parameters (limit 1..MAX_LIMIT)."""
    return (
        int_param(offset, "offset", 0, 0, 10**12),
        int_param(limit, "limit", default, 1, MAX_LIMIT),
    )


def version_param(value: str | int | None) -> int | None:
    """A version number from a query parameter (None or empty: the latest)."""
    if value is None or value == "":
        return None
    return int_param(value, "version", 0, 0, 2**62)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _key(key: ComponentKey) -> dict[str, Any]:
    return {"type_id": key.type_id, "identifier": key.identifier, "version": key.version}


def _describe_bytes(value: bytes) -> dict[str, Any]:
    return {
        "kind": "bytes",
        "size": len(value),
        "sha256": hashlib.sha256(value).hexdigest()[:12],
    }


def _cell(value: Any, depth: int = 0) -> Any:
    """A table cell as short JSON-safe data (bytes described, long text and lists cut)."""
    if value is None or isinstance(value, (bool, int, str)):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**53:
            return str(value)
        if isinstance(value, str) and len(value) > _TEXT_CAP:
            return value[:_TEXT_CAP] + f"… ({len(value)} characters)"
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _describe_bytes(bytes(value))
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if depth >= 3:
        return "…"
    if isinstance(value, Mapping):
        items = list(value.items())
        out = {str(k)[:_TEXT_CAP]: _cell(v, depth + 1) for k, v in items[:_LIST_CAP]}
        if len(items) > _LIST_CAP:
            out["…"] = f"{len(items) - _LIST_CAP} more keys"
        return out
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        seq = value.tolist() if hasattr(value, "tolist") else value
        if not isinstance(seq, list):
            return _cell(seq, depth + 1)
        shown = [_cell(v, depth + 1) for v in seq[:_LIST_CAP]]
        if len(seq) > _LIST_CAP:
            shown.append(f"… ({len(seq)} items)")
        return shown
    return str(value)[:_TEXT_CAP]


class Deployment:
    """Read-only views of one Datalayer, with secrets scrubbed from every result.

    Not thread-safe: the app calls it from one worker thread (stores are built and used on
    that thread, which drivers with thread-affine connections need).
    """

    def __init__(self, db: Datalayer) -> None:
        """Show ``db``; the secrets of its store URIs are masked in everything returned."""
        self.db = db
        secrets: set[str] = set()
        for role in _ROLES:
            slot = db.compute_slot if role == "compute" else db.slots[role]
            secrets |= slot.uri.secrets()
        self._scrub = Scrubber(secrets)
        self._artifact_stats: tuple[float, dict[str, Any]] | None = None
        self._stats_lock = threading.Lock()

    # ------------------------------------------------------------------ scrubbing
    def clean(self, value: Any) -> Any:
        """``value`` with every string (keys too) scrubbed of secrets."""
        if isinstance(value, str):
            return self._scrub(value)
        if isinstance(value, Mapping):
            return {self.clean(str(k)): self.clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.clean(v) for v in value]
        return value

    def _out(self, value: dict[str, Any]) -> dict[str, Any]:
        cleaned = self.clean(value)
        assert isinstance(cleaned, dict)
        return cleaned

    def message(self, exc: BaseException) -> str:
        """An error's message for a page or an API response (scrubbed)."""
        return str(self.clean(f"{type(exc).__name__}: {exc}"))

    # ------------------------------------------------------------------ overview
    def stores(self) -> list[dict[str, Any]]:
        """The stores: role, redacted URI, scheme, implementing class and package."""
        out = []
        for role in _ROLES:
            slot = self.db.compute_slot if role == "compute" else self.db.slots[role]
            entry = slot.entry
            out.append(
                {
                    "role": role,
                    "uri": str(slot.uri),
                    "scheme": slot.uri.scheme,
                    "class": slot.class_path,
                    "package": None if entry is None else f"{entry.distribution} {entry.version}",
                }
            )
        return out

    def artifact_stats(self) -> dict[str, Any]:
        """How many artifacts the artifact store holds and their bytes (cached briefly)."""
        with self._stats_lock:
            now = time.monotonic()
            if (
                self._artifact_stats is not None
                and now - self._artifact_stats[0] < _ARTIFACT_STATS_TTL
            ):
                return self._artifact_stats[1]
            count = size = 0
            complete = True
            for ref in self.db.artifact_store.iter_refs():
                count += 1
                size += ref.size
                if count >= _ARTIFACT_SCAN_CAP:
                    complete = False
                    break
            stats = {"count": count, "bytes": size, "complete": complete}
            self._artifact_stats = (now, stats)
            return stats

    def overview(self) -> dict[str, Any]:
        """Stores, components by type, tables, jobs by status, artifact count and bytes."""
        keys = self.db.metadata.show_components()
        by_type = Counter(k.type_id for k in keys)
        jobs = Counter(j.status.value for j in self.db.metadata.show_jobs())
        tables = self.db.list_tables()
        return self._out(
            {
                "stores": self.stores(),
                "components": {"total": len(keys), "by_type": dict(sorted(by_type.items()))},
                "tables": {"total": len(tables)},
                "jobs": {
                    "total": sum(jobs.values()),
                    "by_status": {s.value: jobs.get(s.value, 0) for s in JobStatus},
                },
                "artifacts": self.artifact_stats(),
            }
        )

    # ------------------------------------------------------------------ components
    def components(
        self, type_id: str | None = None, offset: int = 0, limit: int = 50
    ) -> dict[str, Any]:
        """A page of components (latest version and every version number), by type then id."""
        keys = self.db.metadata.show_components(type_id or None)
        keys = sorted(keys, key=lambda k: (k.type_id, k.identifier))
        types = sorted({k.type_id for k in self.db.metadata.show_components()})
        page = keys[offset : offset + limit]
        items = []
        for key in page:
            items.append(
                {
                    "type_id": key.type_id,
                    "identifier": key.identifier,
                    "latest": key.version,
                    "versions": self.db.metadata.show_versions(key.type_id, key.identifier),
                }
            )
        return self._out(
            {
                "type_id": type_id or None,
                "types": types,
                "total": len(keys),
                "offset": offset,
                "limit": limit,
                "items": items,
            }
        )

    def _record(self, type_id: str, identifier: str, version: int | None) -> ComponentRecord:
        return self.db.metadata.get_component(type_id, identifier, version)

    def component(
        self, type_id: str, identifier: str, version: int | None = None
    ) -> dict[str, Any]:
        """One component version: its versions, fields, artifacts, parents, children, jobs."""
        md = self.db.metadata
        rec = self._record(type_id, identifier, version)
        key = rec.key
        data = dict(rec.data)
        serializers = data.get("serializers")
        serializers = serializers if isinstance(serializers, Mapping) else {}
        fields = data.get("fields")
        artifacts = [
            {
                "name": name,
                "sha256": ref.sha256,
                "size": ref.size,
                "serializer": serializers.get(name)
                if isinstance(serializers.get(name), str)
                else None,
            }
            for name, ref in sorted(rec.artifacts.items())
        ]
        jobs = md.show_jobs(component=key)
        jobs.reverse()
        return self._out(
            {
                "type_id": rec.type_id,
                "identifier": rec.identifier,
                "version": key.version,
                "versions": md.show_versions(rec.type_id, rec.identifier),
                "created_at": _iso(rec.created_at),
                "class": data.get("class") if isinstance(data.get("class"), str) else None,
                "fields": _cell(fields) if fields is not None else _cell(data),
                "content_hash": rec.content_hash,
                "artifacts": artifacts,
                "parents": [_key(k) for k in md.get_parents(key)],
                "children": [_key(k) for k in md.get_children(key)],
                "tables": self._component_tables(rec),
                "jobs": [self._job(j) for j in jobs[:20]],
                "jobs_total": len(jobs),
            }
        )

    @staticmethod
    def _component_tables(rec: ComponentRecord) -> list[dict[str, str]]:
        """Tables a record names: a listener's source and outputs table, a Table's own."""
        fields = rec.data.get("fields")
        fields = fields if isinstance(fields, Mapping) else {}
        out: list[dict[str, str]] = []
        if rec.type_id == "table":
            out.append({"table": rec.identifier, "relation": "defines"})
        source = fields.get("table")
        if isinstance(source, str) and source:
            out.append({"table": source, "relation": "reads"})
        if rec.type_id == "listener":
            from pinnacledb.predict import output_table_name

            output = fields.get("output")
            name = (
                output if isinstance(output, str) and output else output_table_name(rec.identifier)
            )
            out.append({"table": name, "relation": "writes"})
        return out

    # ------------------------------------------------------------------ lineage
    def lineage(
        self,
        type_id: str | None = None,
        identifier: str | None = None,
        version: int | None = None,
        depth: int = 2,
    ) -> dict[str, Any]:
        """The lineage graph: components and tables as nodes, uses/reads/writes as edges.

        Without a component: the latest version of up to :data:`MAX_GRAPH_COMPONENTS`
        components and the tables they touch. With one: its neighbourhood up to ``depth``
        edges away (every version it is linked to). Node positions and edge paths come from
        :func:`pinnacledb.ui.layout.layered_layout`.
        """
        md = self.db.metadata
        graph = _Graph(md, set(self.db.list_tables()))
        if type_id is None:
            keys = sorted(md.show_components(), key=lambda k: (k.type_id, k.identifier))
            if len(keys) > MAX_GRAPH_COMPONENTS:
                graph.truncated = True
                keys = keys[:MAX_GRAPH_COMPONENTS]
            for key in keys:
                graph.expand(key)  # neighbours outside the drawn set are drawn too (one hop)
            graph.predict_edges({(k.type_id, k.identifier) for k in keys})
            return self._out(graph.result(center=None))
        if identifier is None:
            raise BadParameter("lineage of a component needs both type and id")
        start = md.get_component(type_id, identifier, version).key
        seen = {start}
        queue = deque([(start, 0)])
        while queue:
            key, dist = queue.popleft()
            linked = graph.expand(key, center=key == start)
            if dist >= depth:
                continue
            for other in linked:
                if other in seen:
                    continue
                if len(seen) >= MAX_GRAPH_COMPONENTS:
                    graph.truncated = True
                    continue
                seen.add(other)
                queue.append((other, dist + 1))
        graph.predict_edges({(start.type_id, start.identifier)}, only=start)
        return self._out(graph.result(center=graph.component_node(start)))

    # ------------------------------------------------------------------ jobs
    @staticmethod
    def _job(job: JobRecord) -> dict[str, Any]:
        if job.rows_total:
            fraction: float | None = min(1.0, job.rows_done / job.rows_total)
        elif job.tasks_total:
            fraction = min(1.0, (job.tasks_done + job.tasks_failed) / job.tasks_total)
        else:
            fraction = 1.0 if job.status is JobStatus.SUCCESS else None
        end = job.finished_at
        seconds = None
        if job.started_at is not None:
            from pinnacle_protocols.serialization import utcnow

            seconds = round(((end or utcnow()) - job.started_at).total_seconds(), 3)
        return {
            "job_id": job.job_id,
            "kind": job.kind,
            "status": job.status.value,
            "component": None if job.component is None else _key(job.component),
            "runner": job.runner,
            "rows_done": job.rows_done,
            "rows_total": job.rows_total,
            "tasks_done": job.tasks_done,
            "tasks_total": job.tasks_total,
            "tasks_failed": job.tasks_failed,
            "fraction": fraction,
            "created_at": _iso(job.created_at),
            "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at),
            "updated_at": _iso(job.updated_at),
            "seconds": seconds,
            "error": None if job.error is None else job.error[:2000],
            "failed_sources": list(job.failed_sources[:20]),
        }

    def jobs(
        self,
        *,
        status: str | None = None,
        component: str | None = None,
        offset: int = 0,
        limit: int = 50,
        type_id: str | None = None,
        version: int | None = None,
    ) -> dict[str, Any]:
        """A page of jobs, newest first, optionally of one status and one component.

        ``component`` alone matches the identifier (any type and version); with ``type_id``
        and ``version`` it names exactly one component version.
        """
        wanted = None
        if status:
            try:
                wanted = JobStatus(status)
            except ValueError:
                choices = ", ".join(s.value for s in JobStatus)
                raise BadParameter(f"status must be one of {choices}, got {status!r:.40}") from None
        which: str | ComponentKey | None = component or None
        if component and type_id and version is not None:
            try:
                which = ComponentKey(type_id=type_id, identifier=component, version=version)
            except PinnacleError as exc:
                raise BadParameter(str(exc)) from None
        found = self.db.jobs(status=wanted, component=which, limit=None)
        return self._out(
            {
                "status": status or None,
                "component": component or None,
                "total": len(found),
                "offset": offset,
                "limit": limit,
                "items": [self._job(j) for j in found[offset : offset + limit]],
            }
        )

    def job(self, job_id: str) -> dict[str, Any]:
        """One job (with its arguments)."""
        job = self.db.metadata.get_job(job_id)
        out = self._job(job)
        out["args"] = _cell(dict(job.args))
        return self._out(out)

    # ------------------------------------------------------------------ tables
    def tables(self, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        """A page of the databackend's tables with their row counts."""
        names = sorted(self.db.list_tables())
        typed = {k.identifier for k in self.db.metadata.show_components("table")}
        items = []
        for name in names[offset : offset + limit]:
            try:
                rows: int | None = self.db.count(name)
            except PinnacleError:
                rows = None
            items.append({"name": name, "rows": rows, "component": name in typed})
        return self._out({"total": len(names), "offset": offset, "limit": limit, "items": items})

    def table(self, name: str, rows: int = 20) -> dict[str, Any]:
        """A table: schema, row count and its first ``rows`` rows (encoded columns described).

        Raises:
            TableNotFound: the databackend has no table ``name``.
        """
        if name not in self.db.list_tables():
            raise TableNotFound(f"no table {name!r} in {self.db.slots['databackend'].uri}")
        backend = self.db.databackend
        columns: list[dict[str, Any]]
        try:
            schema = backend.table_schema(name)
            columns = [
                {"name": f.name, "dtype": f.dtype.value, "nullable": f.nullable, "dim": f.dim}
                for f in schema.fields
            ]
        except (PinnacleError, NotImplementedError):
            columns = []
        codec_error = None
        try:
            codec = self.db.table_codec(name) or {}
        except PinnacleError as exc:
            codec, codec_error = {}, self.message(exc)
        encoded: dict[str, dict[str, Any]] = {
            col: {
                "datatype": dt.identifier,
                "encoder": dt.encoder,
                "by_reference": dt.by_reference,
            }
            for col, dt in codec.items()
        }
        for column in columns:
            column["encoded"] = encoded.get(str(column["name"]))
        raw = self.db.select(name, limit=rows, decode=False)
        shown = []
        for row in raw:
            out: dict[str, Any] = {}
            for col, value in row.items():
                enc = encoded.get(col)
                if enc is not None and value is not None:
                    out[col] = self._encoded_cell(value, enc)
                else:
                    out[col] = _cell(value)
            shown.append(out)
        return self._out(
            {
                "name": name,
                "rows": self.db.count(name),
                "columns": columns,
                "codec_error": codec_error,
                "first_rows": shown,
                "limit": rows,
            }
        )

    def _encoded_cell(self, value: Any, enc: Mapping[str, Any]) -> dict[str, Any]:
        """An encoded value described: its datatype, encoder, size and sha256 prefix."""
        base = {"kind": "encoded", "datatype": enc["datatype"], "encoder": enc["encoder"]}
        if enc["by_reference"]:
            try:
                sha = validate_sha256(value)
            except InvalidArtifactRef:
                return {**base, "by_reference": True, "sha256": None, "size": None, "invalid": True}
            try:
                size: int | None = self.db.artifact_store.size(sha)
            except PinnacleError:
                size = None  # missing: shown as unknown size, gc/doctor report it
            return {**base, "by_reference": True, "sha256": sha[:12], "size": size}
        if isinstance(value, (bytes, bytearray, memoryview)):
            blob = bytes(value)
            return {
                **base,
                "by_reference": False,
                "sha256": hashlib.sha256(blob).hexdigest()[:12],
                "size": len(blob),
            }
        return {**base, "by_reference": False, "sha256": None, "size": None, "invalid": True}


class _Graph:
    """Nodes and edges of a lineage graph, built by following records, lineage and jobs."""

    def __init__(self, md: MetadataStore, tables: set[str]) -> None:
        self.md = md
        self.tables = tables
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.truncated = False

    def component_node(self, key: ComponentKey, center: bool = False) -> str:
        node_id = f"c:{key.type_id}/{key.identifier}/{key.version}"
        if node_id not in self.nodes:
            self.nodes[node_id] = {
                "id": node_id,
                "kind": "component",
                "type_id": key.type_id,
                "identifier": key.identifier,
                "version": key.version,
                "label": f"{key.identifier} v{key.version}",
                "center": False,
            }
        if center:
            self.nodes[node_id]["center"] = True
        return node_id

    def table_node(self, name: str) -> str:
        node_id = f"t:{name}"
        if node_id not in self.nodes:
            self.nodes[node_id] = {
                "id": node_id,
                "kind": "table",
                "type_id": "outputs" if name.startswith("outputs__") else "table",
                "identifier": name,
                "version": None,
                "label": name,
                "exists": name in self.tables,
                "center": False,
            }
        return node_id

    def edge(self, source: str, target: str, relation: str) -> None:
        self.edges.setdefault(
            (source, target, relation), {"source": source, "target": target, "relation": relation}
        )

    def expand(self, key: ComponentKey, center: bool = False) -> list[ComponentKey]:
        """Add ``key``, its lineage and its tables; return the component keys it links to."""
        me = self.component_node(key, center)
        linked: list[ComponentKey] = []
        # a parent uses its children: drawn child -> parent (what flows where)
        for child in self.md.get_children(key):
            self.edge(self.component_node(child), me, "used by")
            linked.append(child)
        for parent in self.md.get_parents(key):
            self.edge(me, self.component_node(parent), "used by")
            linked.append(parent)
        try:
            rec = self.md.get_component(key.type_id, key.identifier, key.version)
        except ComponentNotFound:
            return linked
        for item in Deployment._component_tables(rec):
            table = self.table_node(item["table"])
            if item["relation"] == "reads":
                self.edge(table, me, "reads")
            else:
                self.edge(me, table, item["relation"])
        return linked

    def predict_edges(self, wanted: set[tuple[str, str]], only: ComponentKey | None = None) -> None:
        """Edges of the recent predict jobs: source table -> model -> outputs table."""
        jobs = self.md.show_jobs(component=only) if only is not None else self.md.show_jobs()
        for job in jobs[-_GRAPH_JOBS:]:
            key = job.component
            if job.kind != "predict" or key is None:
                continue
            if (key.type_id, key.identifier) not in wanted:
                continue
            me = self.component_node(key)
            source, output = job.args.get("table"), job.args.get("output")
            if isinstance(source, str) and source:
                self.edge(self.table_node(source), me, "reads")
            if isinstance(output, str) and output:
                self.edge(me, self.table_node(output), "writes")

    def result(self, center: str | None) -> dict[str, Any]:
        """The graph with its layout: nodes with positions, edges with SVG paths."""
        from pinnacledb.ui.layout import layered_layout

        nodes = list(self.nodes.values())
        edges = list(self.edges.values())
        layout = layered_layout(
            [n["id"] for n in nodes], [(e["source"], e["target"]) for e in edges]
        )
        for n in nodes:
            n["x"], n["y"] = layout.positions[n["id"]]
        for e in edges:
            e["path"] = layout.paths[(e["source"], e["target"])]
        return {
            "nodes": nodes,
            "edges": edges,
            "width": layout.width,
            "height": layout.height,
            "truncated": self.truncated,
            "center": center,
        }
