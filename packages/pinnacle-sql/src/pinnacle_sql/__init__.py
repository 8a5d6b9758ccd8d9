"""pinnacle-sql: the pinnacledb MetadataStore on SQLAlchemy, with Alembic migrations, and a
SQLite DataBackend on SQLAlchemy Core (scheme ``sqlalchemy+sqlite``).

``import pinnacle_sql`` is cheap: SQLAlchemy (about 1.3 s to import) and the drivers load when
:class:`SQLAlchemyMetadataStore` or :class:`SQLAlchemyDataBackend` is first accessed and when
it first connects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pinnacle_sql._engine import DRIVERS, EngineOptions
    from pinnacle_sql.data import SQLAlchemyDataBackend
    from pinnacle_sql.store import SQLAlchemyMetadataStore

__version__ = "0.1.0"

__all__ = [
    "DRIVERS",
    "EngineOptions",
    "SQLAlchemyDataBackend",
    "SQLAlchemyMetadataStore",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "SQLAlchemyMetadataStore":
        from pinnacle_sql.store import SQLAlchemyMetadataStore

        return SQLAlchemyMetadataStore
    if name == "SQLAlchemyDataBackend":
        from pinnacle_sql.data import SQLAlchemyDataBackend

        return SQLAlchemyDataBackend
    if name == "EngineOptions":
        from pinnacle_sql._engine import EngineOptions

        return EngineOptions
    if name == "DRIVERS":
        from pinnacle_sql._engine import DRIVERS

        return DRIVERS
    raise AttributeError(f"module 'pinnacle_sql' has no attribute {name!r}")
