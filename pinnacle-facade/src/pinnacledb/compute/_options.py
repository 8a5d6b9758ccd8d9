"""Parsing ``?workers=N`` and friends of a compute URI, with errors that say what to fix."""

from __future__ import annotations

from collections.abc import Mapping

from pinnacle_protocols.compute import positive_int_option
from pinnacle_protocols.errors import ConfigError
from pinnacle_protocols.uri import RedactedURI

__all__ = ["workers_option"]


def workers_option(
    uri: RedactedURI, options: Mapping[str, object], *, default: int, allowed: set[str]
) -> int:
    """The ``workers`` option (query or keyword), an int >= 1; unknown options are errors."""
    merged: dict[str, object] = {**uri.query_dict, **options}
    unknown = sorted(set(merged) - allowed)
    if unknown:
        raise ConfigError(
            f"{uri}: unknown option(s) {unknown}; {uri.scheme}:// accepts {sorted(allowed)}"
        )
    return positive_int_option(uri, "workers", merged.get("workers", default))
