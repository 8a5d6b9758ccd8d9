"""Add ``content_hash`` to components, backfilled from the stored records, and index it.

The hash (``ComponentRecord.content_hash``) lets a client find an existing version with the same
content (re-applying an unchanged component is a no-op) without reading every record.

Revision ID: 0002_content_hash
Revises: 0001_initial
Create Date: 2025-01-02
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from pinnacle_protocols import ComponentRecord, structure

revision: str = "0002_content_hash"
down_revision: str | None = "0001_initial"
branch_labels: str | None = None
depends_on: str | None = None

P = "_pinnacle_"
_BATCH = 500


def upgrade() -> None:
    """Add the column, compute the hash of every stored record, then add the index."""
    op.add_column(f"{P}components", sa.Column("content_hash", sa.String(64), nullable=True))
    components = sa.table(
        f"{P}components",
        sa.column("id", sa.BigInteger),
        sa.column("record", sa.UnicodeText),
        sa.column("content_hash", sa.String(64)),
    )
    bind = op.get_bind()
    last_id = -1
    while True:
        rows = bind.execute(
            sa.select(components.c.id, components.c.record)
            .where(components.c.id > last_id)
            .order_by(components.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        updates = [
            {
                "_id": row.id,
                "_hash": structure(json.loads(row.record), ComponentRecord).content_hash,
            }
            for row in rows
        ]
        bind.execute(
            sa.update(components)
            .where(components.c.id == sa.bindparam("_id"))
            .values(content_hash=sa.bindparam("_hash")),
            updates,
        )
        last_id = rows[-1].id
    op.create_index(
        f"{P}components_hash_ix", f"{P}components", ["type_id", "identifier", "content_hash"]
    )


def downgrade() -> None:
    """Drop the index and the column."""
    op.drop_index(f"{P}components_hash_ix", table_name=f"{P}components")
    with op.batch_alter_table(f"{P}components") as batch:
        batch.drop_column("content_hash")
