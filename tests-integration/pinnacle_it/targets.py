"""The store matrix: installed entry points x the test targets available here.

Every scheme an installed distribution registers (entry point groups ``pinnacle.databackends``,
``pinnacle.metadata_stores``, ``pinnacle.artifact_stores``) must be one of:

* the scheme of a :class:`Target` (a store the contract suites run against),
* an :data:`ALIASES` entry (another name for a target's scheme, checked by a round trip), or
* listed in :data:`NOT_TESTABLE` with the reason.

``test_coverage.py`` fails for any other scheme, so a package that registers a new scheme
without a test target here breaks the build.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Final, Literal

import attrs

__all__ = [
    "ALIASES",
    "GROUPS",
    "NOT_TESTABLE",
    "TARGETS",
    "Role",
    "Target",
    "active_targets",
    "coverage_problem",
    "entry_point",
    "entry_point_class",
    "known_gaps",
    "registered_schemes",
]

Role = Literal["databackend", "metadata", "artifact_store"]

#: Entry point group of each role.
GROUPS: Final[Mapping[Role, str]] = {
    "databackend": "pinnacle.databackends",
    "metadata": "pinnacle.metadata_stores",
    "artifact_store": "pinnacle.artifact_stores",
}


def registered_schemes(role: Role) -> dict[str, list[EntryPoint]]:
    """Every scheme installed distributions register for ``role`` (nothing is imported)."""
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=GROUPS[role]):
        found.setdefault(ep.name.lower(), []).append(ep)
    return found


def entry_point(role: Role, scheme: str) -> EntryPoint:
    """The one entry point of ``scheme`` for ``role`` (AssertionError if none or several)."""
    claims = registered_schemes(role).get(scheme, [])
    assert len({ep.value for ep in claims}) == 1, (
        f"{role} scheme {scheme!r} has {len(claims)} entry points: {claims}"
    )
    return claims[0]


def entry_point_class(role: Role, scheme: str) -> type:
    """The class whose factory (``Class.from_uri``) the entry point of ``scheme`` loads."""
    factory = entry_point(role, scheme).load()
    owner = getattr(factory, "__self__", None)
    if isinstance(owner, type):
        return owner
    assert isinstance(factory, type), f"{role} {scheme}: cannot tell the class of {factory!r}"
    return factory


@attrs.frozen(kw_only=True)
class Target:
    """One store the contract suites run against.

    Attributes:
        role: Which contract.
        name: Id in test names (``postgres``, ``gridfs-nx27017``).
        scheme: The scheme whose entry point builds the store.
        marks: pytest markers (``pytest -m postgres``).
        service: The service it needs (see :mod:`pinnacle_it.services`), if any.
        knobs: Contract class attributes (``max_blob_size``, ``unordered_dtypes``...).
        corruptible: Whether the corruption contract runs (needs a way to tamper with blobs).
        release: ``"drop"`` (drop(force) then close) or ``"close"`` (the fixture cleans up).
        shrink: Whether Hypothesis shrinks a failing state machine. False for machines known
            to fail on a test server (a strict xfail): find the failure, don't spend minutes
            shrinking the server's bug, and raise the first error (not an ExceptionGroup).
        only: The contract tests this target runs here; empty (default) runs all of them. For
            a store whose own package already runs the whole contract on the same engine at
            the ci size and where each test is expensive (PySpark: a Spark job per call), the
            matrix keeps the cross-check that matters here, the state machine on a store built
            through the entry point, and leaves the rest to the package.
    """

    role: Role
    name: str
    scheme: str
    marks: tuple[str, ...]
    service: str | None = None
    knobs: Mapping[str, Any] = attrs.field(factory=dict)
    corruptible: bool = False
    release: Literal["drop", "close"] = "drop"
    shrink: bool = True
    only: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """``role-name``."""
        return f"{self.role}-{self.name}"


# State machines here are a cross-check, not the packages' own deep testing: each package runs
# its contract under the ci profile (200 examples). The matrix uses the dev size whatever the
# profile, so the whole matrix fits its budget.
DEV_SIZE: Final[Mapping[str, Any]] = {"max_examples": 25, "stateful_step_count": 20}
# Every Spark job costs 0.1-1 s: the same reduced size as pinnacle-ibis's own PySpark class.
SPARK_SIZE: Final[Mapping[str, Any]] = {"max_examples": 8, "stateful_step_count": 12}
# Each mongoeco wire round trip is slow (about 5 ms per insert).
MONGOECO_SIZE: Final[Mapping[str, Any]] = {"max_examples": 10, "stateful_step_count": 15}


def _gaps() -> dict[str, dict[str, Any]]:
    """Known gaps per target id: the MongoDB test servers' list, which pinnacle-mongo keeps
    (:data:`pinnacle_mongo.testing.CONTRACT_GAPS`) for its own contract tests and this matrix."""
    try:
        from pinnacle_mongo.testing import CONTRACT_GAPS, contract_gap_marks
    except ImportError:  # pinnacle-mongo not installed: no mongo targets either
        return {}
    gaps: dict[str, dict[str, Any]] = {}
    for role, kind in CONTRACT_GAPS:
        name = f"gridfs-{kind}" if role == "artifact_store" else kind
        gaps[f"{role}-{name}"] = contract_gap_marks(role, kind)
    return gaps


def known_gaps(target_id: str) -> dict[str, Any]:
    """The known gaps of one target (test name -> mark)."""
    return _gaps().get(target_id, {})


def _t(role: Role, name: str, scheme: str, *marks: str, **kw: Any) -> Target:
    knobs = {**DEV_SIZE, **kw.pop("knobs", {})}
    return Target(role=role, name=name, scheme=scheme, marks=marks or (name,), knobs=knobs, **kw)


def _mongo_targets(role: Role, *, include_real: bool) -> list[Target]:
    kinds = ["nx27017", "mongoeco", *(["mongodb"] if include_real else [])]
    out = []
    for kind in kinds:
        knobs: dict[str, Any] = dict(MONGOECO_SIZE) if kind == "mongoeco" else {}
        if role == "artifact_store":
            knobs["max_blob_size"] = 2**20  # every GridFS chunk is a wire round trip
            name = f"gridfs-{kind}"
            marks: tuple[str, ...] = ("gridfs", kind)
        else:
            name, marks = kind, (kind,)
        if role == "databackend" and kind == "mongoeco":
            from pinnacle_protocols.records import DType

            # pinnacle-mongo: keep the state machine off mongoeco's $lt/$lte-on-null bug.
            knobs["unordered_dtypes"] = frozenset(
                {DType.INT, DType.FLOAT, DType.STR, DType.BYTES, DType.DATETIME}
            )
        if kind == "nx27017" and role != "metadata":
            knobs["max_examples"] = 10  # its state machines are known to fail (see gaps)
        out.append(
            _t(
                role,
                name,
                "mongodb",
                *marks,
                service=kind,
                knobs=knobs,
                corruptible=role == "artifact_store",
                release="close" if kind == "nx27017" and role == "artifact_store" else "drop",
                shrink=not (kind == "nx27017" and role != "metadata"),
            )
        )
    return out


def _targets() -> list[Target]:
    real_mongo = bool(os.environ.get("PINNACLE_TEST_MONGODB_URI"))
    return [
        # ---------------------------------------------------------------- databackends
        _t("databackend", "memory", "memory"),
        _t("databackend", "duckdb", "duckdb"),
        _t("databackend", "sqlite", "sqlite"),
        # pinnacle-sql's SQLAlchemy Core databackend (no ibis), marked like the ibis one
        _t("databackend", "sqlalchemy-sqlite", "sqlalchemy+sqlite", "sqlite"),
        _t("databackend", "postgres", "postgres", service="postgres"),
        _t("databackend", "mariadb", "mysql", service="mariadb"),
        _t("databackend", "polars", "polars"),
        _t("databackend", "datafusion", "datafusion"),
        _t("databackend", "pandas", "pandas"),
        # pinnacle-ibis's TestPySpark runs the whole DataBackendContract on the same Spark
        # session (4-5 min under CI load); here only its state machine, through the entry point
        _t(
            "databackend",
            "pyspark",
            "pyspark",
            service="pyspark",
            knobs=SPARK_SIZE,
            only=("test_state_machine",),
        ),
        *_mongo_targets("databackend", include_real=real_mongo),
        # ---------------------------------------------------------------- metadata stores
        _t("metadata", "memory", "memory"),
        _t("metadata", "sqlite", "sqlite"),
        _t("metadata", "duckdb", "duckdb"),  # pinnacle-sql[duckdb] (duckdb-engine)
        _t("metadata", "postgres", "postgres", service="postgres", release="close"),
        _t("metadata", "mariadb", "mysql", service="mariadb", release="close"),
        *_mongo_targets("metadata", include_real=real_mongo),
        # ---------------------------------------------------------------- artifact stores
        _t("artifact_store", "memory", "memory"),
        _t("artifact_store", "file", "file", corruptible=True),
        _t(
            "artifact_store",
            "s3",
            "s3",
            service="s3",
            corruptible=True,
            # pinnacle-fs: every step is several HTTP requests; multipart is tested there.
            knobs={"max_blob_size": 2**20, "stateful_step_count": 15},
        ),
        *_mongo_targets("artifact_store", include_real=real_mongo),
    ]


TARGETS: Final[tuple[Target, ...]] = tuple(_targets())

#: Other names of a target's scheme: (role, alias) -> the target's scheme.
ALIASES: Final[Mapping[tuple[Role, str], str]] = {
    ("databackend", "postgresql"): "postgres",
    ("databackend", "mariadb"): "mysql",
    ("metadata", "postgresql"): "postgres",
    ("metadata", "mariadb"): "mysql",
    ("artifact_store", "filesystem"): "file",
    ("artifact_store", "s3a"): "s3",
}

_NO_SERVER = "no server of this kind can run on the CI machine (only package registries)"
_SRV = "mongodb+srv:// needs DNS SRV records; the same store class is tested as mongodb://"

#: Registered schemes that cannot be tested here, with the reason.
NOT_TESTABLE: Final[Mapping[tuple[Role, str], str]] = {
    **{
        ("databackend", s): f"{s}: {_NO_SERVER}; served by pinnacle-ibis's generic class"
        for s in (
            "athena",
            "bigquery",
            "clickhouse",
            "databricks",
            "druid",
            "exasol",
            "impala",
            "materialize",
            "mssql",
            "oracle",
            "risingwave",
            "singlestoredb",
            "snowflake",
            "trino",
        )
    },
    ("databackend", "mongodb+srv"): _SRV,
    ("metadata", "mssql"): f"mssql: {_NO_SERVER} (and no ODBC driver)",
    ("metadata", "oracle"): f"oracle: {_NO_SERVER}",
    ("metadata", "mongodb+srv"): _SRV,
    ("artifact_store", "gs"): "gs: Google Cloud Storage needs a GCS server or emulator",
    ("artifact_store", "gcs"): "gcs: Google Cloud Storage needs a GCS server or emulator",
    ("artifact_store", "mongodb+srv"): _SRV,
}


def coverage_problem(role: Role, scheme: str) -> str | None:
    """Why ``scheme`` (registered for ``role``) is not properly covered, or None if it is.

    Covered means exactly one of: a target's scheme, an alias, a not-testable reason.
    """
    targets = [t.name for t in active_targets(role) if t.scheme == scheme]
    alias = ALIASES.get((role, scheme))
    reason = NOT_TESTABLE.get((role, scheme))
    listed = sum(map(bool, (targets, alias, reason)))
    if listed == 0:
        return (
            f"{role} scheme {scheme!r} (entry point group {GROUPS[role]}) has no test target: "
            "add a Target (or an alias, or a NOT_TESTABLE reason) to "
            "tests-integration/pinnacle_it/targets.py"
        )
    if listed > 1:
        return (
            f"{role} {scheme!r} is listed more than once: targets {targets}, alias {alias}, "
            f"not testable {reason!r}"
        )
    return None


def active_targets(role: Role | None = None) -> list[Target]:
    """Targets whose scheme an installed distribution registers (the generated matrix)."""
    out = []
    for target in TARGETS:
        if role is not None and target.role != role:
            continue
        if target.scheme in registered_schemes(target.role):
            out.append(target)
    return out
