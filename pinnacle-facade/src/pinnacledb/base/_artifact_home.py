"""Where a deployment's artifacts live, remembered in its metadata store.

A default artifact store such as ``filesystem://.pinnacledb/artifacts/`` is relative to the
working directory, while a metadata store such as PostgreSQL is not: a model applied from one
directory would not be found from another. So on first use the resolved (absolute, redacted)
artifact store URI is recorded in the metadata store under :data:`ARTIFACT_STORE_KEY`, and
later Datalayers on the same metadata store use it when their artifact store is left to the
default. An artifact store given explicitly (argument, ``CFG``, environment, config file) that
disagrees with the record is a :class:`~pinnacle_protocols.errors.ConfigError`, unless
``relocate_artifacts=True`` (CLI ``--relocate-artifacts``) says the artifacts were moved there.

Nothing is recorded when the metadata store's own location depends on the working directory
(a relative SQLite/DuckDB path: the embedded default), since a directory moved as a whole
must keep working, nor for ``memory://`` stores or store objects.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final

import attrs

from pinnacle_protocols.errors import BackendUnavailable, ConfigError
from pinnacle_protocols.uri import RedactedURI
from pinnacledb._schemes import schemes_where

if TYPE_CHECKING:
    from pinnacle_protocols.protocols import ArtifactStore, MetadataStore
    from pinnacledb._registry import StoreRegistry
    from pinnacledb.base._lazy import LazyStore

__all__ = ["ARTIFACT_STORE_KEY", "ArtifactHome", "describe_location", "resolved_location"]

#: Metadata key of the recorded artifact store: ``{"uri": <redacted URI>, "masked": bool}``.
ARTIFACT_STORE_KEY: Final = "pinnacle.artifact_store"
_LOCAL_DIR_SCHEMES: Final = schemes_where("local_dir")
_LOCAL_FILE_SCHEMES: Final = schemes_where("local_file")


def resolved_location(uri: str | RedactedURI) -> RedactedURI:
    """``uri`` with a relative (or ``~``) local directory made absolute, as ``filesystem://``
    (``file://`` names the same store); other URIs unchanged."""
    parsed = RedactedURI.parse(uri)
    if parsed.scheme not in _LOCAL_DIR_SCHEMES:
        return parsed
    path = parsed.path
    if parsed.scheme == "file" and path.startswith("localhost/"):
        path = path[len("localhost") :]
    absolute = os.path.abspath(os.path.expanduser(path or "."))
    if path.endswith("/") and not absolute.endswith("/"):
        absolute += "/"
    return attrs.evolve(parsed, scheme="filesystem", path=absolute)


def _cwd_relative(uri: RedactedURI) -> bool:
    """Whether a store at ``uri`` moves with the working directory."""
    if uri.scheme not in _LOCAL_FILE_SCHEMES | _LOCAL_DIR_SCHEMES:
        return False
    path = uri.path
    return path not in ("", ":memory:") and not os.path.isabs(path)


def describe_location(uri: str | RedactedURI) -> str:
    """``uri`` redacted, plus the absolute path when it names a relative local file or
    directory (``sqlite://.pinnacledb/metadata.db (= /home/me/app/.pinnacledb/metadata.db)``),
    for messages read from another working directory."""
    parsed = RedactedURI.parse(uri)
    if not _cwd_relative(parsed) and not parsed.path.startswith("~"):
        return str(parsed)
    return f"{parsed} (= {os.path.abspath(os.path.expanduser(parsed.path))})"


@attrs.define(kw_only=True)
class ArtifactHome:
    """Checks (and records) the artifact store against the metadata store on first use.

    Attributes:
        defaulted: The artifact store URI came from the default rule (not configured).
        relocate: Record the configured artifact store even if another one is recorded.
        source: Where the artifact store setting came from (for messages).
        registry: Builds a store for a recorded URI.
    """

    defaulted: bool
    relocate: bool = False
    source: str = "argument"
    registry: StoreRegistry | None = None
    checked: bool = attrs.field(default=False, init=False)  # set by the Datalayer on success
    recorded: str | None = attrs.field(default=None, init=False)

    def check(
        self, metadata: LazyStore[MetadataStore], artifacts: LazyStore[ArtifactStore]
    ) -> tuple[LazyStore[ArtifactStore], bool]:
        """The artifact slot to use (``artifacts`` or one for the recorded location), and
        whether that is settled: not when the metadata store is unavailable (the artifact
        store stays usable on its own; the next access checks again).

        Raises:
            ConfigError: the configured artifact store disagrees with the recorded one.
        """
        md_uri = metadata.reveal_uri()
        art_uri = artifacts.reveal_uri()
        if md_uri is None or art_uri is None:
            return artifacts, True  # store objects: their locations are the caller's business
        md, art = RedactedURI.parse(md_uri), RedactedURI.parse(art_uri)
        if "memory" in (md.scheme, art.scheme) or _cwd_relative(md):
            return artifacts, True
        here = resolved_location(art)
        shown, masked = str(here), here.reveal() != str(here)
        try:
            store = metadata.get()
            record: Any = store.get_metadata(ARTIFACT_STORE_KEY)
        except BackendUnavailable:
            return artifacts, False
        recorded = record.get("uri") if isinstance(record, dict) else None
        self.recorded = recorded if isinstance(recorded, str) else None
        if self.recorded is None or self.recorded == shown or self.relocate:
            if self.recorded != shown:
                store.set_metadata(ARTIFACT_STORE_KEY, {"uri": shown, "masked": masked})
                self.recorded = shown
            return artifacts, True
        if self.defaulted and isinstance(record, dict) and not record.get("masked"):
            return self._slot_for(self.recorded, artifacts), True
        raise ConfigError(self._disagreement(metadata, shown))

    def _slot_for(self, uri: str, artifacts: LazyStore[ArtifactStore]) -> LazyStore[ArtifactStore]:
        from pinnacledb._registry import StoreRegistry
        from pinnacledb.base._lazy import LazyStore

        reg = StoreRegistry.from_entry_points() if self.registry is None else self.registry
        entry = reg.entry("artifact_store", RedactedURI.parse(uri).scheme, shown_uri=uri)
        return LazyStore(artifacts.role, uri=uri, entry=entry)

    def _disagreement(self, metadata: LazyStore[MetadataStore], shown: str) -> str:
        if self.defaulted:
            return (
                f"this deployment's artifacts are recorded at {self.recorded} (in the metadata "
                f"store {metadata.uri}, key {ARTIFACT_STORE_KEY!r}), a URI with credentials that "
                "cannot be reused from the record: pass the artifact store explicitly "
                "(artifact_store=..., --artifact-store, PINNACLEDB_ARTIFACT_STORE)"
            )
        return (
            f"the artifact store {shown} (from {self.source}) is not this deployment's: its "
            f"artifacts are recorded at {self.recorded} (in the metadata store {metadata.uri}, "
            f"key {ARTIFACT_STORE_KEY!r}). Leave the artifact store unset, or set it to "
            f"{self.recorded}, to use them; if you moved the artifacts to {shown}, pass "
            "relocate_artifacts=True (CLI: --relocate-artifacts) once to record the new location"
        )
