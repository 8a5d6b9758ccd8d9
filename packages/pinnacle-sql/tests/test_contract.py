"""The shared MetadataStore contract suite on SQLite (file and memory), PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pinnacle_protocols.testing import MetadataStoreContract
from pinnacle_sql import SQLAlchemyMetadataStore
from pinnacle_sql.testing import StoreMaker


class TestSQLAlchemyMetadataStore(MetadataStoreContract[SQLAlchemyMetadataStore]):
    """Parametrized over the ``backend`` fixture (conftest): one class, four databases."""

    @pytest.fixture
    def make_store(self, maker: StoreMaker) -> Callable[[], SQLAlchemyMetadataStore]:
        """Each call: the backend's session database with its rows deleted, as a new store."""
        return maker

    def release_store(self, store: SQLAlchemyMetadataStore) -> None:
        """Close only: the maker deletes the rows before the next store (dropping is slow)."""
        store.close()
