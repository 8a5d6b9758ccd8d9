"""A store that is built (and its package imported) on first use."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pinnacle_protocols.uri import RedactedURI

if TYPE_CHECKING:
    from pinnacledb._registry import Role, StoreEntry

__all__ = ["LazyStore"]

logger = logging.getLogger("pinnacledb")

_FILE_SCHEMES = frozenset({"sqlite", "duckdb"})


class LazyStore:
    """Holds a store, or what is needed to build it when first asked for.

    The full URI (with its password) is kept privately and only handed to the store's factory;
    ``repr`` and ``uri`` show the redacted form.
    """

    def __init__(
        self,
        role: Role,
        *,
        uri: str | None = None,
        entry: StoreEntry | None = None,
        instance: Any = None,
    ) -> None:
        """Either ``instance`` (an existing store) or ``uri`` plus its registry ``entry``."""
        self.role = role
        self._lock = threading.Lock()
        self._instance = instance
        self._raw_uri = uri
        self._entry = entry
        if instance is not None:
            self.uri: RedactedURI = _instance_uri(instance)
        else:
            assert uri is not None
            assert entry is not None
            self.uri = RedactedURI.parse(uri)

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
        return self._raw_uri

    @property
    def class_path(self) -> str:
        """``module.Class`` of the store (without building it)."""
        if self._instance is not None:
            cls = type(self._instance)
            return f"{cls.__module__}.{cls.__qualname__}"
        assert self._entry is not None
        return self._entry.class_path

    def get(self) -> Any:
        """The store, built on first call (thread-safe)."""
        inst = self._instance
        if inst is not None:
            return inst
        with self._lock:
            if self._instance is None:
                assert self._entry is not None
                assert self._raw_uri is not None
                factory = self._entry.load()
                _prepare_local_path(self.uri)
                self._instance = factory(self._raw_uri)
                logger.info("%s: %s (%s)", self.role, self.uri, self.class_path)
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


def _instance_uri(store: Any) -> RedactedURI:
    uri = getattr(store, "uri", None)
    if isinstance(uri, RedactedURI):
        return uri
    if isinstance(uri, str):
        return RedactedURI.parse(uri)
    return RedactedURI(scheme="object", path=type(store).__name__)


def _prepare_local_path(uri: RedactedURI) -> None:
    """Create the parent directory of a relative/absolute SQLite or DuckDB file."""
    if uri.scheme in _FILE_SCHEMES and uri.path not in ("", ":memory:"):
        Path(uri.path).parent.mkdir(parents=True, exist_ok=True)
