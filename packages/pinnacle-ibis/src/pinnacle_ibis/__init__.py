"""pinnacle-ibis: one pinnacledb DataBackend for every ibis engine.

``IbisDataBackend.from_uri("duckdb://data.db")`` (or ``sqlite://``, ``postgres://``,
``mysql://``, ``polars://``, ``datafusion://``, ``pyspark://``, ``pandas://DIR`` and every other
ibis scheme) gives portable CRUD with the filter language plus native ibis expressions.

Importing this package imports neither ibis nor any driver; they load on first use.
"""

from __future__ import annotations

from pinnacle_ibis.backend import RESERVED_PREFIX, SCHEMAS_TABLE, IbisDataBackend
from pinnacle_ibis.filters import to_ibis

__version__ = "0.1.0"

__all__ = ["RESERVED_PREFIX", "SCHEMAS_TABLE", "IbisDataBackend", "__version__", "to_ibis"]
