"""Vector engines: the ``exact`` reference engine and the ``pinnacle.vector_engines`` registry.

Engines are found by name through entry points (``exact`` here; ``faiss``, ``usearch`` and
``hnswlib`` in ``pinnacle-vectors``); a name's package is imported only when it is used.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from pinnacle_protocols.errors import ConfigError, SchemeConflictError
from pinnacle_protocols.vectors import (
    ENTRY_POINT_GROUP,
    Measure,
    VectorEngine,
    VectorEngineType,
    VectorId,
    VectorsLike,
    engine_name_of,
)

__all__ = ["INSTALL_HINTS", "build_engine", "engine_from_bytes", "engine_names", "engine_type"]

#: Which distribution provides an engine that is not installed.
INSTALL_HINTS = {
    "faiss": "pinnacle-vectors[faiss]",
    "usearch": "pinnacle-vectors[usearch]",
    "hnswlib": "pinnacle-vectors[hnswlib]",
}


def engine_names() -> list[str]:
    """Names of the installed engines (entry points listed, nothing imported)."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def engine_type(name: str) -> VectorEngineType:
    """The engine type registered as ``name`` (imports its package now).

    Raises:
        ConfigError: No engine of that name is installed (the message says what to install), or
            its package fails to import (e.g. the library extra is missing).
        SchemeConflictError: Two installed distributions register the name.
    """
    eps = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not eps:
        hint = INSTALL_HINTS.get(name)
        fix = f"`pip install {hint}`" if hint else "install the package that provides it"
        raise ConfigError(
            f"no vector engine named {name!r} is installed (installed: "
            f"{', '.join(engine_names()) or 'none'}); {fix}"
        )
    if len({ep.value for ep in eps}) > 1:
        raise SchemeConflictError(
            f"vector engine {name!r} is registered twice: {', '.join(ep.value for ep in eps)}; "
            "uninstall one of the packages"
        )
    try:
        loaded: VectorEngineType = eps[0].load()
    except ImportError as exc:
        hint = INSTALL_HINTS.get(name, "the engine's library")
        raise ConfigError(
            f"vector engine {name!r} cannot be imported ({exc}); `pip install {hint}`"
        ) from exc
    return loaded


def build_engine(
    name: str,
    ids: list[VectorId],
    vectors: VectorsLike,
    *,
    measure: Measure,
    dim: int | None = None,
    **options: Any,
) -> VectorEngine:
    """Build engine ``name`` over these vectors (see :meth:`VectorEngineType.build`)."""
    return engine_type(name).build(ids, vectors, measure=measure, dim=dim, **options)


def engine_from_bytes(data: bytes) -> VectorEngine:
    """Restore an engine of whichever type wrote ``data`` (no pickle; checksum verified)."""
    return engine_type(engine_name_of(data)).from_bytes(data)
