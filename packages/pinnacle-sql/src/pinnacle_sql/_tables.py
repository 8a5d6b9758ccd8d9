"""The head schema of the ``_pinnacle_*`` tables, as SQLAlchemy Core tables.

The migration scripts in :mod:`pinnacle_sql.migrations` are the source of truth for what is in
a database; this module describes the result of running them all, for queries. A test checks
that the two agree on every dialect.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    event,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateColumn

from pinnacle_sql._types import Id, JSONText, Name, Timestamp

__all__ = [
    "COMPONENTS_ID_SEQUENCE",
    "PREFIX",
    "artifacts",
    "components",
    "counters",
    "jobs",
    "lineage",
    "meta",
    "metadata",
    "tables_in_drop_order",
]

PREFIX = "_pinnacle_"

metadata = MetaData()

#: One row per component version; ``record`` is the full record as JSON (unstructure()).
components = Table(
    f"{PREFIX}components",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("type_id", Name, nullable=False),
    Column("identifier", Name, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("record", JSONText, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    # Added by revision 0002 (nullable there so the backfill can run); always written.
    Column("content_hash", String(64), nullable=True),
    UniqueConstraint("type_id", "identifier", "version", name=f"{PREFIX}components_key_uq"),
    Index(f"{PREFIX}components_hash_ix", "type_id", "identifier", "content_hash"),
)

#: DuckDB has no auto-increment columns: ``components.id`` takes its default from this sequence
#: there (created and dropped with the table). Other dialects' DDL is unchanged.
COMPONENTS_ID_SEQUENCE = f"{PREFIX}components_id_seq"
event.listen(
    components,
    "before_create",
    DDL(f"CREATE SEQUENCE IF NOT EXISTS {COMPONENTS_ID_SEQUENCE}").execute_if(  # type: ignore[no-untyped-call]
        dialect="duckdb"
    ),
)
event.listen(
    components,
    "after_drop",
    DDL(f"DROP SEQUENCE IF EXISTS {COMPONENTS_ID_SEQUENCE}").execute_if(  # type: ignore[no-untyped-call]
        dialect="duckdb"
    ),
)


@compiles(CreateColumn, "duckdb")
def _duckdb_column(element: CreateColumn, compiler: Any, **kw: Any) -> str:
    """``components.id`` on DuckDB: BIGINT with the sequence as default (not BIGSERIAL)."""
    column = element.element
    if column.table is not None and column.table.name == components.name and column.name == "id":
        name = compiler.preparer.format_column(column)
        return f"{name} BIGINT DEFAULT nextval('{COMPONENTS_ID_SEQUENCE}') NOT NULL"
    text: str = compiler.visit_create_column(element, **kw)
    return text


#: The next version to allocate per component; never decreases, so versions are never reused.
counters = Table(
    f"{PREFIX}version_counters",
    metadata,
    Column("type_id", Name, nullable=False),
    Column("identifier", Name, nullable=False),
    Column("next_version", BigInteger, nullable=False),
    PrimaryKeyConstraint("type_id", "identifier", name=f"{PREFIX}version_counters_pk"),
)

#: ``parent`` depends on ``child``. Rows are deleted in code before either component.
lineage = Table(
    f"{PREFIX}lineage",
    metadata,
    Column(
        "parent_id",
        Id,
        ForeignKey(components.c.id, name=f"{PREFIX}lineage_parent_fk"),
        nullable=False,
    ),
    Column(
        "child_id",
        Id,
        ForeignKey(components.c.id, name=f"{PREFIX}lineage_child_fk"),
        nullable=False,
    ),
    PrimaryKeyConstraint("parent_id", "child_id", name=f"{PREFIX}lineage_pk"),
    Index(f"{PREFIX}lineage_child_ix", "child_id"),
)

#: The artifacts a component version references (for garbage collection).
artifacts = Table(
    f"{PREFIX}component_artifacts",
    metadata,
    Column(
        "component_id",
        Id,
        ForeignKey(components.c.id, name=f"{PREFIX}component_artifacts_component_fk"),
        nullable=False,
    ),
    Column("sha256", String(64), nullable=False),
    PrimaryKeyConstraint("component_id", "sha256", name=f"{PREFIX}component_artifacts_pk"),
    Index(f"{PREFIX}component_artifacts_sha256_ix", "sha256"),
)

#: Jobs; ``record`` is the full JobRecord as JSON, the other columns are for filtering.
jobs = Table(
    f"{PREFIX}jobs",
    metadata,
    Column("job_id", Name, nullable=False),
    Column("kind", Name, nullable=False),
    Column("status", String(16), nullable=False),
    Column("component_type_id", Name, nullable=True),
    Column("component_identifier", Name, nullable=True),
    Column("component_version", BigInteger, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("record", JSONText, nullable=False),
    PrimaryKeyConstraint("job_id", name=f"{PREFIX}jobs_pk"),
    Index(
        f"{PREFIX}jobs_component_ix",
        "component_type_id",
        "component_identifier",
        "component_version",
    ),
    Index(f"{PREFIX}jobs_status_ix", "status"),
)

#: Small key/value metadata. Keys of any length are addressed by their sha256; ``key`` keeps
#: the key itself as a JSON string (so even unusual characters survive every dialect).
meta = Table(
    f"{PREFIX}meta",
    metadata,
    Column("key_hash", String(64), nullable=False),
    Column("key", JSONText, nullable=False),
    Column("value", JSONText, nullable=False),
    PrimaryKeyConstraint("key_hash", name=f"{PREFIX}meta_pk"),
)


def tables_in_drop_order() -> list[Table]:
    """Every ``_pinnacle_*`` table, dependents first."""
    return [lineage, artifacts, jobs, meta, counters, components]
