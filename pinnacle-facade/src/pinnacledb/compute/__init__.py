"""Compute backends that ship with the facade: ``local://`` and ``processes://?workers=N``.

Others (``dask://``, ``dask+local://``) come from packages found through the entry point group
``pinnacle.compute``. Importing this package imports neither ``multiprocessing`` nor
``concurrent.futures``: the process pool is built on first submit.
"""

from __future__ import annotations

from typing import Any

from pinnacle_protocols.compute import InlineComputeBackend

__all__ = ["local_backend", "processes_backend"]


def local_backend(uri: str = "local://", **_options: Any) -> InlineComputeBackend:
    """``local://``: tasks run one after another in the caller's thread (today's behaviour)."""
    from pinnacle_protocols.errors import ConfigError
    from pinnacle_protocols.uri import RedactedURI

    parsed = RedactedURI.parse(uri)
    if parsed.host or parsed.path.strip("/") or parsed.query:
        raise ConfigError(f"local:// takes no host, path or options, got {parsed}")
    return InlineComputeBackend(uri)


def processes_backend(uri: str, **options: Any) -> Any:
    """``processes://?workers=N``: a spawn-context process pool on this machine."""
    from pinnacledb.compute._processes import ProcessesComputeBackend

    return ProcessesComputeBackend.from_uri(uri, **options)
