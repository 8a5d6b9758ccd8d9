"""What the facade knows about a URI scheme, in one table.

Which package serves a scheme is read from the installed packages' entry points
(:mod:`pinnacledb._registry`); what this table adds is what the facade must know *without* the
package: which distribution to install for it, per role, and how a store of that scheme sits on
this machine (a local file, a local directory, one process at a time, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import attrs

__all__ = ["SCHEMES", "SchemeFacts", "install_hints", "schemes_where"]

HintRole = Literal["databackend", "metadata", "artifact_store", "compute"]


@attrs.frozen(kw_only=True)
class SchemeFacts:
    """The facts of one scheme.

    Attributes:
        databackend: The distribution (with extra) to install for a databackend of the scheme.
        metadata: The same for a metadata store.
        artifact_store: The same for an artifact store.
        compute: The same for a compute backend.
        file_database: A database in one local file: its directory is created on first use.
        local_file: A store in one local file (a relative path moves with the working directory).
        local_dir: A store in a local directory (``file://`` and ``filesystem://``).
        local_publish: An artifact store that publishes a stream with a local rename (a copy
            into it needs no spooling).
        exclusive: One process at a time may open the file (DuckDB).
        databackend_fallback: The scheme whose databackend serves this one when no installed
            package registers it as a databackend.
    """

    databackend: str | None = None
    metadata: str | None = None
    artifact_store: str | None = None
    compute: str | None = None
    file_database: bool = False
    local_file: bool = False
    local_dir: bool = False
    local_publish: bool = False
    exclusive: bool = False
    databackend_fallback: str | None = None


def _ibis(extra: str | None = None) -> str:
    return f"pinnacle-ibis[{extra}]" if extra else "pinnacle-ibis"


def _mongo() -> SchemeFacts:
    return SchemeFacts(
        databackend="pinnacle-mongo", metadata="pinnacle-mongo", artifact_store="pinnacle-mongo"
    )


_PLAIN_IBIS = (
    "clickhouse",
    "bigquery",
    "snowflake",
    "trino",
    "druid",
    "impala",
    "exasol",
    "risingwave",
    "databricks",
    "athena",
    "materialize",
    "singlestoredb",
)

#: scheme -> its facts. A scheme missing here has no facts (no install hint, nothing local).
SCHEMES: Final[Mapping[str, SchemeFacts]] = {
    "memory": SchemeFacts(
        databackend="pinnacle-protocols",
        metadata="pinnacle-protocols",
        artifact_store="pinnacle-protocols",
        local_publish=True,
    ),
    "mongodb": _mongo(),
    "mongodb+srv": _mongo(),
    "duckdb": SchemeFacts(
        databackend=_ibis("duckdb"),
        metadata="pinnacle-sql[duckdb]",
        file_database=True,
        local_file=True,
        exclusive=True,
    ),
    "sqlite": SchemeFacts(
        databackend=_ibis("sqlite"),
        metadata="pinnacle-sql",
        file_database=True,
        local_file=True,
        databackend_fallback="sqlalchemy+sqlite",
    ),
    "sqlalchemy+sqlite": SchemeFacts(databackend="pinnacle-sql", local_file=True),
    "postgres": SchemeFacts(databackend=_ibis("postgres"), metadata="pinnacle-sql[postgres]"),
    "postgresql": SchemeFacts(databackend=_ibis("postgres"), metadata="pinnacle-sql[postgres]"),
    "mysql": SchemeFacts(databackend=_ibis("mysql"), metadata="pinnacle-sql[mysql]"),
    "mariadb": SchemeFacts(databackend=_ibis("mysql"), metadata="pinnacle-sql[mysql]"),
    "mssql": SchemeFacts(databackend=_ibis(), metadata="pinnacle-sql"),
    "oracle": SchemeFacts(databackend=_ibis(), metadata="pinnacle-sql"),
    **{s: SchemeFacts(databackend=_ibis(s)) for s in ("polars", "datafusion", "pyspark", "pandas")},
    **{s: SchemeFacts(databackend=_ibis()) for s in _PLAIN_IBIS},
    "filesystem": SchemeFacts(artifact_store="pinnacle-fs", local_dir=True, local_publish=True),
    "file": SchemeFacts(artifact_store="pinnacle-fs", local_dir=True, local_publish=True),
    "s3": SchemeFacts(artifact_store="pinnacle-fs[s3]"),
    "s3a": SchemeFacts(artifact_store="pinnacle-fs[s3]"),
    "gs": SchemeFacts(artifact_store="pinnacle-fs[gcs]"),
    "gcs": SchemeFacts(artifact_store="pinnacle-fs[gcs]"),
    "local": SchemeFacts(compute="pinnacledb"),
    "processes": SchemeFacts(compute="pinnacledb"),
    "dask": SchemeFacts(compute="pinnacle-dask"),
    "dask+local": SchemeFacts(compute="pinnacle-dask"),
    "ray": SchemeFacts(compute="pinnacle-ray"),
    "ray+local": SchemeFacts(compute="pinnacle-ray"),
}


def install_hints(role: HintRole) -> dict[str, str]:
    """scheme -> the distribution to install for a store of ``role`` on that scheme."""
    hints = {scheme: getattr(facts, role) for scheme, facts in SCHEMES.items()}
    return {scheme: hint for scheme, hint in hints.items() if hint is not None}


def schemes_where(fact: str) -> frozenset[str]:
    """The schemes whose boolean ``fact`` (a :class:`SchemeFacts` field) is true."""
    return frozenset(scheme for scheme, facts in SCHEMES.items() if getattr(facts, fact))
