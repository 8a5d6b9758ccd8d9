"""The DataBackend contract suite on every engine this package tests.

Each class gives the contract a factory of fresh, empty backends. Capability flags come from
the backend classes (Polars, DataFusion and PySpark cannot UPDATE or DELETE).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pinnacle_ibis import IbisDataBackend
from pinnacle_ibis.testing import EngineMaker
from pinnacle_protocols.testing import DataBackendContract


class _IbisContract(DataBackendContract[IbisDataBackend]):
    engine: str = ""

    @pytest.fixture
    def make_store(self, maker_for: Callable[[str], EngineMaker]) -> Callable[[], IbisDataBackend]:
        return maker_for(self.engine).make


@pytest.mark.duckdb
class TestDuckDBMemory(_IbisContract):
    engine = "duckdb"


#: Variants that run the same engine code as a full-size class (a file instead of memory, the
#: generic fallback on DuckDB) run a quarter of the ci profile's examples (budget: the whole
#: package under --hypothesis-profile=ci in 12 minutes on 2 cores).
VARIANT_EXAMPLES = 50


@pytest.mark.duckdb
class TestDuckDBFile(_IbisContract):
    engine = "duckdb_file"
    max_examples = VARIANT_EXAMPLES


@pytest.mark.duckdb
class TestGenericDuckDB(_IbisContract):
    """The generic fallback class (ibis inserts, sqlglot DML with literals) on DuckDB."""

    engine = "generic_duckdb"
    max_examples = VARIANT_EXAMPLES


@pytest.mark.sqlite
class TestSQLiteMemory(_IbisContract):
    engine = "sqlite"


@pytest.mark.sqlite
class TestSQLiteFile(_IbisContract):
    engine = "sqlite_file"
    max_examples = VARIANT_EXAMPLES


@pytest.mark.postgres
class TestPostgres(_IbisContract):
    engine = "postgres"


@pytest.mark.mariadb
class TestMariaDB(_IbisContract):
    engine = "mariadb"


@pytest.mark.polars
class TestPolars(_IbisContract):
    engine = "polars"


@pytest.mark.datafusion
class TestDataFusion(_IbisContract):
    engine = "datafusion"


@pytest.mark.pandas
class TestPandasDirectory(_IbisContract):
    """pandas://DIR: Parquet files rewritten atomically, read through DuckDB.

    Every write rewrites and fsyncs the table's file (by design), which makes this the
    slowest engine after Spark: half the ci profile's examples.
    """

    engine = "pandas"
    max_examples = 100


@pytest.mark.pyspark
class TestPySpark(_IbisContract):
    """PySpark local[2]: every Spark job costs ~0.1-1 s here, so the state machine runs fewer,
    shorter examples than the ci profile's 200 x 30 (see the package README)."""

    engine = "pyspark"
    max_examples = 8
    stateful_step_count = 12
