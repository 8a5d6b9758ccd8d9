"""``pinnacle()``: choose the three stores from arguments, configuration and the default rule."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

from pinnacledb._config import (
    CFG,
    DEFAULT_ARTIFACT_URI,
    DEFAULT_DATABACKEND_URI,
    DEFAULT_GC_GRACE_SECONDS,
    DEFAULT_METADATA_URI,
    Config,
    ResolvedConfig,
    resolve_config,
)

if TYPE_CHECKING:
    from pinnacle_protocols.protocols import ArtifactStore, DataBackend, MetadataStore
    from pinnacledb._registry import Role, StoreRegistry
    from pinnacledb.base._lazy import LazyStore
    from pinnacledb.base.datalayer import Datalayer
    from pinnacledb.components._base import Component

__all__ = ["pinnacle", "resolve_stores"]


def pinnacle(
    databackend: str | DataBackend | None = None,
    *,
    metadata_store: str | MetadataStore | None = None,
    artifact_store: str | ArtifactStore | None = None,
    trust_serializers: Collection[str] | None = None,
    gc_grace_seconds: float | None = None,
    components: Iterable[type[Component]] = (),
    registry: StoreRegistry | None = None,
) -> Datalayer:
    """Build a :class:`~pinnacledb.base.datalayer.Datalayer`.

    Each store comes from the first of: the argument, ``CFG`` set in code, the environment
    (``PINNACLEDB_DATABACKEND``, ``PINNACLEDB_METADATA``, ``PINNACLEDB_ARTIFACT_STORE``), the
    config file (``pinnacledb.toml``, or ``[tool.pinnacledb]`` in ``pyproject.toml``), the
    default rule. The default rule: with nothing configured, DuckDB data, SQLite metadata and
    filesystem artifacts under ``.pinnacledb/``; otherwise metadata and artifacts go where the
    databackend says (``default_metadata_uri()``/``default_artifact_uri()``) when a store for
    that scheme is installed (MongoDB: all three on one database; SQL: metadata in the same
    database), else to ``sqlite://.pinnacledb/metadata.db`` and
    ``filesystem://.pinnacledb/artifacts/``.

    Stores connect on first use. ``CFG`` is read, never written.

    Args:
        databackend: URI (or store object) of the user's data.
        metadata_store: URI (or store object) of the metadata store.
        artifact_store: URI (or store object) of the artifact store.
        trust_serializers: Code-executing serializers (``{"pickle"}``) allowed on load.
        gc_grace_seconds: Grace period of ``db.gc()``.
        components: Extra component classes ``db.load`` may build.
        registry: Scheme registry (default: the installed entry points).

    Raises:
        ConfigError: bad configuration (names the key), an unknown scheme
            (``UnknownSchemeError``, says what to install) or a scheme claimed twice
            (``SchemeConflictError``).
    """
    from pinnacledb.base.datalayer import Datalayer

    resolved, slots = resolve_stores(
        databackend=databackend,
        metadata_store=metadata_store,
        artifact_store=artifact_store,
        trust_serializers=trust_serializers,
        gc_grace_seconds=gc_grace_seconds,
        registry=registry,
    )
    trust = resolved.trust_serializers.value or frozenset()
    grace = resolved.gc_grace_seconds.value
    return Datalayer(
        databackend=slots["databackend"],
        metadata=slots["metadata"],
        artifact_store=slots["artifact_store"],
        trust_serializers=trust,
        gc_grace_seconds=DEFAULT_GC_GRACE_SECONDS if grace is None else grace,
        components=components,
        config=resolved,
    )


def resolve_stores(
    *,
    databackend: Any = None,
    metadata_store: Any = None,
    artifact_store: Any = None,
    trust_serializers: Collection[str] | None = None,
    gc_grace_seconds: float | None = None,
    registry: StoreRegistry | None = None,
    cfg: Config = CFG,
) -> tuple[ResolvedConfig, dict[str, LazyStore]]:
    """The resolved configuration and the three (lazy) store slots, with sources filled in."""
    from attrs import evolve

    from pinnacle_protocols.errors import ConfigError
    from pinnacledb._config import Setting
    from pinnacledb._registry import StoreRegistry
    from pinnacledb.serializers import SerializerRegistry

    explicit: dict[str, Any] = {
        "databackend": databackend,
        "metadata": metadata_store,
        "artifact_store": artifact_store,
        "trust_serializers": None,
        "gc_grace_seconds": gc_grace_seconds,
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
    backend = _slot(reg, "databackend", db_setting.value, embedded=embedded)

    md_setting = resolved.metadata
    art_setting = resolved.artifact_store
    if md_setting.value is None:
        md_setting = _default_for(reg, "metadata", backend, embedded, DEFAULT_METADATA_URI)
    if art_setting.value is None:
        art_setting = _default_for(reg, "artifact_store", backend, embedded, DEFAULT_ARTIFACT_URI)
    slots = {
        "databackend": backend,
        "metadata": _slot(reg, "metadata", md_setting.value, embedded=False),
        "artifact_store": _slot(reg, "artifact_store", art_setting.value, embedded=False),
    }
    resolved = evolve(
        resolved, databackend=db_setting, metadata=md_setting, artifact_store=art_setting
    )
    return resolved, slots


def _slot(reg: StoreRegistry, role: Role, value: Any, *, embedded: bool) -> LazyStore:
    from pinnacle_protocols.errors import UnknownSchemeError
    from pinnacle_protocols.uri import RedactedURI
    from pinnacledb.base._lazy import LazyStore

    if not isinstance(value, str):
        return LazyStore(role, instance=value)
    uri = RedactedURI.parse(value)
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
    return LazyStore(role, uri=value, entry=entry)


def _default_for(
    reg: StoreRegistry, role: Role, backend: LazyStore, embedded: bool, fallback: str
) -> Any:
    from pinnacle_protocols.errors import InvalidURIError
    from pinnacle_protocols.uri import RedactedURI
    from pinnacledb._config import Setting

    if embedded:
        return Setting(value=fallback, source="default (embedded)")
    store = backend.get()
    method = "default_metadata_uri" if role == "metadata" else "default_artifact_uri"
    proposed = getattr(store, method)()
    if proposed:
        try:
            scheme = RedactedURI.parse(proposed).scheme
        except InvalidURIError:
            scheme = ""
        if scheme and reg.has(role, scheme):
            return Setting(value=proposed, source=f"default (databackend.{method}())")
    return Setting(
        value=fallback, source=f"default (fallback: no {role} store for the databackend)"
    )
