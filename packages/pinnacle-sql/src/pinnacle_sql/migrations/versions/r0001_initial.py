"""Initial ``_pinnacle_*`` tables.

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pinnacle_sql._types import Id, JSONText, Name, Timestamp

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

P = "_pinnacle_"


def upgrade() -> None:
    """Create components, version counters, lineage, artifact refs, jobs and meta."""
    op.create_table(
        f"{P}components",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("type_id", Name, nullable=False),
        sa.Column("identifier", Name, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("record", JSONText, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.UniqueConstraint("type_id", "identifier", "version", name=f"{P}components_key_uq"),
    )
    op.create_table(
        f"{P}version_counters",
        sa.Column("type_id", Name, nullable=False),
        sa.Column("identifier", Name, nullable=False),
        sa.Column("next_version", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("type_id", "identifier", name=f"{P}version_counters_pk"),
    )
    op.create_table(
        f"{P}lineage",
        sa.Column("parent_id", Id, nullable=False),
        sa.Column("child_id", Id, nullable=False),
        sa.ForeignKeyConstraint(["parent_id"], [f"{P}components.id"], name=f"{P}lineage_parent_fk"),
        sa.ForeignKeyConstraint(["child_id"], [f"{P}components.id"], name=f"{P}lineage_child_fk"),
        sa.PrimaryKeyConstraint("parent_id", "child_id", name=f"{P}lineage_pk"),
    )
    op.create_index(f"{P}lineage_child_ix", f"{P}lineage", ["child_id"])
    op.create_table(
        f"{P}component_artifacts",
        sa.Column("component_id", Id, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["component_id"],
            [f"{P}components.id"],
            name=f"{P}component_artifacts_component_fk",
        ),
        sa.PrimaryKeyConstraint("component_id", "sha256", name=f"{P}component_artifacts_pk"),
    )
    op.create_index(f"{P}component_artifacts_sha256_ix", f"{P}component_artifacts", ["sha256"])
    op.create_table(
        f"{P}jobs",
        sa.Column("job_id", Name, nullable=False),
        sa.Column("kind", Name, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("component_type_id", Name, nullable=True),
        sa.Column("component_identifier", Name, nullable=True),
        sa.Column("component_version", sa.BigInteger, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("record", JSONText, nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=f"{P}jobs_pk"),
    )
    op.create_index(
        f"{P}jobs_component_ix",
        f"{P}jobs",
        ["component_type_id", "component_identifier", "component_version"],
    )
    op.create_index(f"{P}jobs_status_ix", f"{P}jobs", ["status"])
    op.create_table(
        f"{P}meta",
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("key", JSONText, nullable=False),
        sa.Column("value", JSONText, nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name=f"{P}meta_pk"),
    )


def downgrade() -> None:
    """Drop every table of revision 0001."""
    for name in ("lineage", "component_artifacts", "jobs", "meta", "version_counters"):
        op.drop_table(f"{P}{name}")
    op.drop_table(f"{P}components")
