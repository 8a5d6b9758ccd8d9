"""The shared MetadataStore contract suite on SQLite (file and memory), PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import settings

from pinnacle_protocols.testing import MetadataStoreContract
from pinnacle_protocols.testing.plugin import CI_PROFILE
from pinnacle_sql import SQLAlchemyMetadataStore
from pinnacle_sql.testing import StoreMaker


class TestSQLAlchemyMetadataStore(MetadataStoreContract[SQLAlchemyMetadataStore]):
    """Parametrized over the ``backend`` fixture (conftest): one class, four databases."""

    #: State machine examples on DuckDB under the ci profile: a metadata transaction through
    #: duckdb_engine costs about five times SQLite's, so 200 examples took 80 s a database
    #: under CI load. The matrix (TestMetadata_duckdb) and scripts/fuzz run it further.
    duckdb_ci_examples = 60
    _backend = ""

    @pytest.fixture
    def make_store(self, maker: StoreMaker, backend: str) -> Callable[[], SQLAlchemyMetadataStore]:
        """Each call: the backend's session database with its rows deleted, as a new store."""
        self._backend = backend
        return maker

    def state_machine_settings(self) -> settings:
        """The profile's settings; fewer examples on DuckDB under the ci profile."""
        base = super().state_machine_settings()
        if self._backend.startswith("duckdb") and (
            settings.get_current_profile_name() == CI_PROFILE
        ):
            return settings(base, max_examples=min(base.max_examples, self.duckdb_ci_examples))
        return base

    def release_store(self, store: SQLAlchemyMetadataStore) -> None:
        """Close only: the maker deletes the rows before the next store (dropping is slow)."""
        store.close()
