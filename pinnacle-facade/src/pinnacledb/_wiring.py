"""``pinnacle()``: choose the three stores from arguments, configuration and the default rule."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

from pinnacledb._config import (
    CFG,
    DEFAULT_ARTIFACT_URI,
    DEFAULT_COMPUTE_URI,
    DEFAULT_DATABACKEND_URI,
    DEFAULT_GC_GRACE_SECONDS,
    DEFAULT_METADATA_URI,
    DEFAULT_TRIGGER_JOB_ROWS,
    DEFAULT_VECTOR_COMPACT_FRACTION,
    DEFAULT_VECTOR_COMPACT_MIN_ROWS,
    DEFAULT_VECTOR_FOLD_MIN_ROWS,
    DEFAULT_VECTOR_MAX_DELTAS,
    Config,
    ResolvedConfig,
    Setting,
    check_fraction,
    check_grace_seconds,
    check_positive_int,
    check_trigger_job_rows,
    resolve_config,
)
from pinnacledb._schemes import SCHEMES

if TYPE_CHECKING:
    from pinnacle_protocols.compute import ComputeBackend
    from pinnacle_protocols.protocols import ArtifactStore, DataBackend, MetadataStore
    from pinnacle_protocols.uri import RedactedURI
    from pinnacledb._registry import Role, StoreRegistry
    from pinnacledb.base._lazy import LazyStore
    from pinnacledb.base.datalayer import Datalayer
    from pinnacledb.components._base import Component

__all__ = [
    "DATABACKEND_SCHEME_FALLBACKS",
    "EMBEDDED_FALLBACK_DATABACKEND",
    "EMBEDDED_FALLBACK_SOURCE",
    "pinnacle",
    "resolve_stores",
]

#: The embedded default's databackend when DuckDB (pinnacle-ibis) is not installed:
#: SQLite through pinnacle-sql's SQLAlchemy databackend, next to the metadata.
EMBEDDED_FALLBACK_DATABACKEND = "sqlalchemy+sqlite://.pinnacledb/data.db"
#: Where ``pinnacle info`` says the databackend came from when the fallback was taken.
EMBEDDED_FALLBACK_SOURCE = (
    f"default (embedded; its DuckDB databackend ({DEFAULT_DATABACKEND_URI}) needs "
    "pinnacle-ibis[duckdb], which is not installed, so SQLite through pinnacle-sql)"
)
#: Databackend scheme -> the scheme whose store serves it when no package registers it.
#: pinnacle-sql's SQLAlchemy databackend reads and writes the same SQLite files as
#: pinnacle-ibis's ``sqlite://`` (same column storage, same schema table).
DATABACKEND_SCHEME_FALLBACKS = {
    scheme: facts.databackend_fallback
    for scheme, facts in SCHEMES.items()
    if facts.databackend_fallback is not None
}


def pinnacle(
    databackend: str | DataBackend | None = None,
    *,
    metadata_store: str | MetadataStore | None = None,
    artifact_store: str | ArtifactStore | None = None,
    compute: str | ComputeBackend | None = None,
    trust_serializers: Collection[str] | None = None,
    gc_grace_seconds: float | None = None,
    trigger_job_rows: int | None = None,
    vector_max_deltas: int | None = None,
    vector_compact_min_rows: int | None = None,
    vector_compact_fraction: float | None = None,
    vector_fold_min_rows: int | None = None,
    components: Iterable[type[Component]] = (),
    registry: StoreRegistry | None = None,
    relocate_artifacts: bool = False,
) -> Datalayer:
    """Build a :class:`~pinnacledb.base.datalayer.Datalayer`.

    Each store comes from the first of: the argument, ``CFG`` set in code, the environment
    (``PINNACLEDB_DATABACKEND``, ``PINNACLEDB_METADATA``, ``PINNACLEDB_ARTIFACT_STORE``), the
    config file (``pinnacledb.toml``, or ``[tool.pinnacledb]`` in ``pyproject.toml``), the
    default rule. The default rule: with nothing configured, DuckDB data, SQLite metadata and
    filesystem artifacts under ``.pinnacledb/`` (without pinnacle-ibis, the data goes to
    SQLite, ``sqlalchemy+sqlite://.pinnacledb/data.db``, through pinnacle-sql); otherwise
    metadata and artifacts go where the databackend says
    (``default_metadata_uri()``/``default_artifact_uri()``) when a store for that scheme is
    installed (MongoDB: all three on one database; SQL: metadata in the same database), else
    to ``sqlite://.pinnacledb/metadata.db`` and
    ``filesystem://.pinnacledb/artifacts/``.

    A ``sqlite://`` databackend is pinnacle-ibis's; without it, pinnacle-sql's SQLAlchemy
    databackend serves the same file. Stores connect on first use. ``CFG`` is read, never
    written.

    Args:
        databackend: URI (or store object) of the user's data.
        metadata_store: URI (or store object) of the metadata store.
        artifact_store: URI (or store object) of the artifact store.
        compute: URI (or object) of the compute backend jobs such as ``db.predict`` run on:
            ``local://`` (default, in this process), ``processes://?workers=N``,
            ``dask://HOST:PORT`` or ``dask+local://?workers=N`` (``pip install pinnacle-dask``),
            ``ray://HOST:PORT`` or ``ray+local://?workers=N`` (``pip install pinnacle-ray``).
            Also ``CFG.compute``, ``PINNACLEDB_COMPUTE`` or the config file key ``compute``.
        trust_serializers: Code-executing serializers (``{"pickle"}``) allowed on load.
        gc_grace_seconds: Grace period of ``db.gc()``: a finite number of seconds >= 0.
        trigger_job_rows: On a compute backend other than ``local://``, an insert or update
            changing at least this many rows (per written batch) runs its listeners' work as
            a partitioned job on that backend and waits for it; smaller writes compute in
            this process. Default 10,000; also ``CFG.trigger_job_rows``,
            ``PINNACLEDB_TRIGGER_JOB_ROWS`` or the config file key ``trigger_job_rows``.
        vector_max_deltas: Vector index upkeep (:mod:`pinnacledb.vector_search`): a write
            that finds this many change files after the base build stores the whole engine
            as a new base instead (compaction). An int >= 1, default 100.
        vector_compact_min_rows: A write also compacts when the change files touch more than
            ``max(vector_compact_min_rows, vector_compact_fraction * count)`` ids. An int
            >= 1, default 1,000.
        vector_compact_fraction: That fraction of the index's vectors: a number in (0, 1],
            default 0.1.
        vector_fold_min_rows: What ``vector_compact_min_rows`` is for an approximate engine
            (faiss, usearch, hnswlib), whose compaction folds the pending segment into the
            graph. An int >= 1, default 10,000. Each of the four is also ``CFG.<name>``,
            ``PINNACLEDB_<NAME>`` or the config file key ``<name>``.
        components: Extra component classes ``db.load`` may build.
        registry: Scheme registry (default: the installed entry points).
        relocate_artifacts: The artifacts were moved: record ``artifact_store`` as this
            deployment's artifact store, replacing the location recorded in the metadata store.
            (On first use the resolved artifact store URI is recorded there; later Datalayers
            whose artifact store is left to the default use it, from any directory, and one
            configured elsewhere raises ``ConfigError``.)

    Raises:
        ConfigError: bad configuration (names the key or argument: a store that is neither a
            URI string nor an object with the methods of its Protocol, a grace period that is
            not a finite number >= 0, a count that is not an int >= 1, a fraction outside
            (0, 1]), an unknown scheme
            (``UnknownSchemeError``, says what to install) or a scheme claimed twice
            (``SchemeConflictError``).
    """
    from pinnacledb.base._artifact_home import ArtifactHome
    from pinnacledb.base.datalayer import Datalayer

    resolved, slots = resolve_stores(
        databackend=databackend,
        metadata_store=metadata_store,
        artifact_store=artifact_store,
        compute=compute,
        trust_serializers=trust_serializers,
        gc_grace_seconds=gc_grace_seconds,
        trigger_job_rows=trigger_job_rows,
        vector_max_deltas=vector_max_deltas,
        vector_compact_min_rows=vector_compact_min_rows,
        vector_compact_fraction=vector_compact_fraction,
        vector_fold_min_rows=vector_fold_min_rows,
        registry=registry,
    )
    trust = resolved.trust_serializers.value or frozenset()
    grace = resolved.gc_grace_seconds.value
    rows = resolved.trigger_job_rows.value

    def chosen(setting: Setting, default: Any) -> Any:
        return default if setting.value is None else setting.value

    return Datalayer(
        databackend=slots["databackend"],
        metadata=slots["metadata"],
        artifact_store=slots["artifact_store"],
        compute=slots["compute"],
        trust_serializers=trust,
        gc_grace_seconds=DEFAULT_GC_GRACE_SECONDS if grace is None else grace,
        trigger_job_rows=DEFAULT_TRIGGER_JOB_ROWS if rows is None else rows,
        vector_max_deltas=chosen(resolved.vector_max_deltas, DEFAULT_VECTOR_MAX_DELTAS),
        vector_compact_min_rows=chosen(
            resolved.vector_compact_min_rows, DEFAULT_VECTOR_COMPACT_MIN_ROWS
        ),
        vector_compact_fraction=chosen(
            resolved.vector_compact_fraction, DEFAULT_VECTOR_COMPACT_FRACTION
        ),
        vector_fold_min_rows=chosen(resolved.vector_fold_min_rows, DEFAULT_VECTOR_FOLD_MIN_ROWS),
        components=components,
        config=resolved,
        artifact_home=ArtifactHome(
            defaulted=resolved.artifact_store.source.startswith("default"),
            relocate=relocate_artifacts,
            source=resolved.artifact_store.source,
            registry=registry,
        ),
    )


def resolve_stores(
    *,
    databackend: Any = None,
    metadata_store: Any = None,
    artifact_store: Any = None,
    compute: Any = None,
    trust_serializers: Collection[str] | None = None,
    gc_grace_seconds: float | None = None,
    trigger_job_rows: int | None = None,
    vector_max_deltas: int | None = None,
    vector_compact_min_rows: int | None = None,
    vector_compact_fraction: float | None = None,
    vector_fold_min_rows: int | None = None,
    registry: StoreRegistry | None = None,
    cfg: Config = CFG,
) -> tuple[ResolvedConfig, dict[str, LazyStore[Any]]]:
    """The resolved configuration and the (lazy) slots of the three stores and the compute
    backend, with sources filled in."""
    from attrs import evolve

    from pinnacle_protocols.errors import ConfigError
    from pinnacle_protocols.uri import RedactedURI
    from pinnacledb._registry import StoreRegistry
    from pinnacledb.serializers import SerializerRegistry

    if gc_grace_seconds is not None:
        gc_grace_seconds = check_grace_seconds(gc_grace_seconds)
    if trigger_job_rows is not None:
        trigger_job_rows = check_trigger_job_rows(trigger_job_rows)
    counts = {
        "vector_max_deltas": (vector_max_deltas, "change files"),
        "vector_compact_min_rows": (vector_compact_min_rows, "ids"),
        "vector_fold_min_rows": (vector_fold_min_rows, "ids"),
    }
    for name, (count, what) in counts.items():
        if count is not None:
            check_positive_int(count, name, what)
    if vector_compact_fraction is not None:
        vector_compact_fraction = check_fraction(vector_compact_fraction)
    explicit: dict[str, Any] = {
        "databackend": databackend,
        "metadata": metadata_store,
        "artifact_store": artifact_store,
        "trust_serializers": None,
        "gc_grace_seconds": gc_grace_seconds,
        "compute": compute,
        "trigger_job_rows": trigger_job_rows,
        "vector_max_deltas": vector_max_deltas,
        "vector_compact_min_rows": vector_compact_min_rows,
        "vector_compact_fraction": vector_compact_fraction,
        "vector_fold_min_rows": vector_fold_min_rows,
    }
    if trust_serializers is not None:
        if isinstance(trust_serializers, str):
            trust_serializers = {trust_serializers}
        explicit["trust_serializers"] = frozenset(trust_serializers)
    resolved = resolve_config(explicit, cfg=cfg)
    known = set(SerializerRegistry().names(available_only=False))
    unknown = sorted(set(resolved.trust_serializers.value or ()) - known)
    if unknown:
        raise ConfigError(
            f"trust_serializers (from {resolved.trust_serializers.source}) names unknown "
            f"serializers {unknown}; known: {', '.join(sorted(known))}"
        )
    reg = StoreRegistry.from_entry_points() if registry is None else registry

    db_setting = resolved.databackend
    embedded = db_setting.value is None
    if embedded:
        db_setting = Setting(value=DEFAULT_DATABACKEND_URI, source="default (embedded)")
        duckdb = RedactedURI.parse(DEFAULT_DATABACKEND_URI).scheme
        fallback = RedactedURI.parse(EMBEDDED_FALLBACK_DATABACKEND).scheme
        if not reg.has("databackend", duckdb) and reg.has("databackend", fallback):
            db_setting = Setting(
                value=EMBEDDED_FALLBACK_DATABACKEND, source=EMBEDDED_FALLBACK_SOURCE
            )
    backend, note = _slot(reg, "databackend", db_setting.value, embedded=embedded)
    if note:
        db_setting = Setting(value=db_setting.value, source=f"{db_setting.source}; {note}")

    md_setting = resolved.metadata
    art_setting = resolved.artifact_store
    if md_setting.value is None:
        md_setting = _default_for(reg, "metadata", backend, embedded, DEFAULT_METADATA_URI)
    if art_setting.value is None:
        art_setting = _default_for(reg, "artifact_store", backend, embedded, DEFAULT_ARTIFACT_URI)
    slots = {
        "databackend": backend,
        "metadata": _slot(reg, "metadata", md_setting.value, embedded=False)[0],
        "artifact_store": _slot(reg, "artifact_store", art_setting.value, embedded=False)[0],
    }
    compute_setting = resolved.compute
    if compute_setting.value is None:
        compute_setting = Setting(value=DEFAULT_COMPUTE_URI, source="default")
    slots["compute"] = _slot(reg, "compute", compute_setting.value, embedded=False)[0]
    resolved = evolve(
        resolved,
        databackend=db_setting,
        metadata=md_setting,
        artifact_store=art_setting,
        compute=compute_setting,
    )
    return resolved, slots


def _slot(
    reg: StoreRegistry, role: Role, value: Any, *, embedded: bool
) -> tuple[LazyStore[Any], str | None]:
    """The slot for ``value``, and a note when another package's store serves its scheme."""
    from pinnacle_protocols.errors import UnknownSchemeError
    from pinnacle_protocols.uri import RedactedURI
    from pinnacledb.base._lazy import LazyStore

    if not isinstance(value, (str, RedactedURI)):
        return LazyStore(role, instance=value), None
    uri = RedactedURI.parse(value)  # a RedactedURI is used as it is
    substitute = DATABACKEND_SCHEME_FALLBACKS.get(uri.scheme) if role == "databackend" else None
    if substitute and not reg.has(role, uri.scheme) and reg.has(role, substitute):
        entry = reg.entry(role, substitute, shown_uri=str(uri))
        note = (
            f"{uri.scheme}:// served by {entry.distribution}'s {entry.class_path} "
            f"(pinnacle-ibis, which registers {uri.scheme}://, is not installed)"
        )
        return LazyStore(role, uri=value, entry=entry), note
    try:
        entry = reg.entry(role, uri.scheme, shown_uri=str(uri))
    except UnknownSchemeError as exc:
        if embedded:
            raise UnknownSchemeError(
                f"nothing is configured, so pinnacledb uses the embedded default "
                f"({DEFAULT_DATABACKEND_URI}, {DEFAULT_METADATA_URI}, {DEFAULT_ARTIFACT_URI}), "
                f"but {exc} Install it with: pip install 'pinnacledb[embedded]', or configure "
                "a databackend (pinnacle('postgres://...'), CFG.databackend, "
                "PINNACLEDB_DATABACKEND)."
            ) from exc
        raise
    return LazyStore(role, uri=value, entry=entry), None


def _default_for(
    reg: StoreRegistry,
    role: Role,
    backend: LazyStore[DataBackend],
    embedded: bool,
    fallback: str,
) -> Setting:
    """The databackend's proposal for ``role`` when a store for its scheme is installed, else
    ``fallback``. The proposal stays a :class:`RedactedURI` (its password is revealed only to
    the store's factory); a plain string from a third-party backend is parsed here, once.
    The databackend is not built for it when its class declares the proposal
    (:class:`~pinnacle_protocols.protocols.SupportsDefaultsFromURI`)."""
    from pinnacle_protocols.errors import InvalidURIError
    from pinnacle_protocols.uri import RedactedURI

    if embedded:
        return Setting(value=fallback, source="default (embedded)")
    method = "default_metadata_uri" if role == "metadata" else "default_artifact_uri"
    proposed = _proposal(backend, role)
    if proposed:
        try:
            uri: RedactedURI | None = RedactedURI.parse(proposed)
        except InvalidURIError:
            uri = None
        if uri is not None and uri.scheme and reg.has(role, uri.scheme):
            return Setting(value=uri, source=f"default (databackend.{method}())")
    return Setting(
        value=fallback, source=f"default (fallback: no {role} store for the databackend)"
    )


def _proposal(backend: LazyStore[DataBackend], role: Role) -> RedactedURI | str | None:
    """``default_metadata_uri()`` (or ``default_artifact_uri()``) of the databackend.

    Asked of the class the entry point names when it declares the proposal (the backend is
    not built: nothing connects, no client starts); else of the (then built) backend.
    """
    from pinnacle_protocols.protocols import SupportsDefaultsFromURI

    entry = backend.entry
    if not backend.loaded and entry is not None:
        factory = entry.load()
        # ``module:Class.from_uri`` loads a bound classmethod: its class is ``__self__``.
        owner = getattr(factory, "__self__", factory)
        if isinstance(owner, type) and isinstance(owner, SupportsDefaultsFromURI):
            if role == "metadata":
                return owner.default_metadata_uri_for(backend.uri)
            return owner.default_artifact_uri_for(backend.uri)
    store = backend.get()
    if role == "metadata":
        return store.default_metadata_uri()
    return store.default_artifact_uri()
