"""Alembic migration scripts of the ``_pinnacle_*`` tables (run them with ``migrate()``)."""
