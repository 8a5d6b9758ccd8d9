"""A store that is built (and its package imported) on first use."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pinnacle_protocols.uri import RedactedURI
from pinnacledb._schemes import schemes_where

if TYPE_CHECKING:
    from pinnacledb._registry import Role, StoreEntry

__all__ = ["LazyStore"]

logger = logging.getLogger("pinnacledb")

_FILE_SCHEMES = schemes_where("file_database")


class _Closeable(Protocol):
    def close(self) -> None: ...


#: The store a slot holds (``DataBackend``, ``MetadataStore``, ``ArtifactStore`` or
#: ``ComputeBackend``): every one of them can be closed.
S = TypeVar("S", bound=_Closeable)


class LazyStore(Generic[S]):
    """Holds a store, or what is needed to build it when first asked for.

    ``LazyStore[MetadataStore]`` is a slot whose :meth:`get` returns a ``MetadataStore``; a
    slot built from a URI trusts its registry entry to build a store of the role's Protocol.

    The full URI (with its password) is kept privately, as given (a string, or a
    :class:`RedactedURI` that is revealed only when handed to the store's factory); ``repr``
    and ``uri`` show the redacted form.
    """

    def __init__(
        self,
        role: Role,
        *,
        uri: str | RedactedURI | None = None,
        entry: StoreEntry | None = None,
        instance: S | None = None,
    ) -> None:
        """Either ``instance`` (an existing store) or ``uri`` plus its registry ``entry``."""
        self.role = role
        self._lock = threading.Lock()
        self._instance = instance
        self._raw_uri = uri
        self._entry = entry
        if instance is not None:
            _check_store_object(role, instance)
            self.uri: RedactedURI = _instance_uri(instance)
        else:
            assert uri is not None
            assert entry is not None
            self.uri = RedactedURI.parse(uri)  # a RedactedURI is kept as it is

    @property
    def loaded(self) -> bool:
        """Whether the store object exists yet."""
        return self._instance is not None

    @property
    def entry(self) -> StoreEntry | None:
        """The registry entry that builds this store (None for a store passed as an object)."""
        return self._entry

    def reveal_uri(self) -> str | None:
        """The full URI including any password (to hand to a driver or child process, never to
        print); None for a store passed as an object."""
        raw = self._raw_uri
        return raw.reveal() if isinstance(raw, RedactedURI) else raw

    @property
    def class_path(self) -> str:
        """``module.Class`` of the store (without building it)."""
        if self._instance is not None:
            cls = type(self._instance)
            return f"{cls.__module__}.{cls.__qualname__}"
        assert self._entry is not None
        return self._entry.class_path

    def get(self) -> S:
        """The store, built on first call (thread-safe)."""
        inst = self._instance
        if inst is not None:
            return inst
        with self._lock:
            if self._instance is None:
                assert self._entry is not None
                raw = self.reveal_uri()
                assert raw is not None
                factory = self._entry.load()
                _prepare_local_path(self.role, self.uri)
                built: S = factory(raw)
                self._instance = built
                logger.info("%s: %s (%s)", self.role, self.uri, self.class_path)
                return built
            return self._instance

    def close(self) -> None:
        """Close the store if it was built."""
        with self._lock:
            inst = self._instance
            if inst is not None and self._entry is not None:
                self._instance = None
        if inst is not None and self._entry is not None:
            inst.close()

    def __repr__(self) -> str:
        return f"<{self.class_path} {self.uri}{'' if self.loaded else ' (not connected)'}>"


#: The argument of ``pinnacle()`` (and ``Datalayer``) that fills each role.
_ARGUMENT = {
    "databackend": "databackend",
    "metadata": "metadata_store",
    "artifact_store": "artifact_store",
    "compute": "compute",
}


def _protocol_members(proto: type) -> list[str]:
    names = {*vars(proto), *getattr(proto, "__annotations__", {})}
    return sorted(n for n in names if not n.startswith("_"))


def _check_store_object(role: Role, store: object) -> None:
    """Refuse a store object that does not satisfy the role's Protocol (at the call, not later).

    Raises:
        ConfigError: ``store`` is not a URI string and misses methods of the Protocol; the
            message names the argument, what is expected and what is missing.
    """
    from pinnacle_protocols.compute import ComputeBackend
    from pinnacle_protocols.errors import ConfigError
    from pinnacle_protocols.protocols import ArtifactStore, DataBackend, MetadataStore

    proto: type = {
        "databackend": DataBackend,
        "metadata": MetadataStore,
        "artifact_store": ArtifactStore,
        "compute": ComputeBackend,
    }[role]
    if isinstance(store, proto):
        return
    argument = _ARGUMENT.get(role, role)
    expected = (
        f"a URI string (such as 'sqlite://data.db') or an object with the methods of the "
        f"{proto.__name__} Protocol"
    )
    members = _protocol_members(proto)
    missing = [n for n in members if not hasattr(store, n)]
    if isinstance(store, str):
        got = "Datalayer(...) takes store objects: build from URIs with pinnacle(...)"
    elif isinstance(store, Path):
        got = f"got a Path; pass a URI string such as 'sqlite://{store}'"
    elif len(missing) == len(members):
        got = f"got {type(store).__name__} {store!r:.60}"
    else:
        got = f"the {type(store).__name__} object given lacks {', '.join(missing)}"
    raise ConfigError(
        f"{argument} must be {expected}; {got} (see pinnacle_protocols.protocols.{proto.__name__})"
    )


def _instance_uri(store: Any) -> RedactedURI:
    uri = getattr(store, "uri", None)
    if isinstance(uri, RedactedURI):
        return uri
    if isinstance(uri, str):
        return RedactedURI.parse(uri)
    return RedactedURI(scheme="object", path=type(store).__name__)


def _prepare_local_path(role: Role, uri: RedactedURI) -> None:
    """Create the parent directory of a relative/absolute SQLite or DuckDB file.

    Raises:
        BackendUnavailable: the directory cannot be created (names it and what to do).
    """
    if uri.scheme in _FILE_SCHEMES and uri.path not in ("", ":memory:"):
        directory = Path(uri.path).parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from pinnacle_protocols.errors import BackendUnavailable

            raise BackendUnavailable(
                f"{role} {uri}: cannot create the directory {str(directory)!r} for the "
                f"{uri.scheme} file ({exc.strerror or exc}); choose a path in a directory you "
                f"can write to (e.g. {uri.scheme}:///home/me/data.db), or create the directory "
                "first"
            ) from exc
