"""Alembic environment: runs on the connection that :mod:`pinnacle_sql._migrate` passes in.

pinnacle-sql runs its migrations programmatically (``SQLAlchemyMetadataStore.migrate()`` or
``pinnacle migrate``), under a lock, on a connection it opened; there is no ``alembic.ini``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from pinnacle_sql._migrate import VERSION_TABLE

config = context.config
connection = config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "pinnacle_sql migrations run programmatically: call SQLAlchemyMetadataStore.migrate() "
        "or `pinnacle migrate` instead of the alembic command line"
    )

context.configure(
    connection=connection,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
