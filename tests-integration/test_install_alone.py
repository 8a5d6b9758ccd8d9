"""Installing only what you need: every package from its wheel, alone, in a fresh venv.

For each distribution: build its wheel (once per session, ``uv build``), install it with the
``pinnacle-protocols`` wheel and its declared dependencies from PyPI (``uv pip install``) into
a fresh ``uv venv``, then

* check that no other pinnacle distribution got installed;
* import it, exercise its main store on local data, and check that every loaded module belongs
  to the package, to ``pinnacle-protocols`` or to a distribution its requirements declare
  (no other pinnacle package, no undeclared driver);
* run its own tests there (copied without ``src/``, so they import the installed wheel), on
  the backends that need no server or only one started from PyPI.

The facade is also installed with only ``pinnacle-sql`` + ``pinnacle-fs``: ``pinnacle demo``
runs with nothing configured, its data on SQLite through pinnacle-sql's databackend
(``sqlalchemy+sqlite://``), SQLite metadata and filesystem artifacts, without ibis, pyarrow or
pymongo installed; ``pinnacle()``, ``pinnacle("sqlite://my.db")`` and ``pinnacle info`` work
the same way, and asking for a scheme only pinnacle-ibis serves says which package to install.

In the workspace itself (everything installed), importing and using each package must not
import another pinnacle package or a driver it does not declare either.

The venv tests are ``slow``. They share one uv cache, build the wheels once per session and
run in two background threads started when collection ends (``background_start``, called by
the conftest), so they overlap with the rest of the session; each test waits for its job.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import tomllib
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import attrs
import pytest

REPO = Path(__file__).resolve().parents[1]
UV_ENV = {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"}


@attrs.frozen(kw_only=True)
class Pkg:
    """One distribution of the monorepo and how it is tested alone.

    Attributes:
        dist: Distribution name.
        module: Import name.
        path: Its directory in the repository.
        extras: Extras installed with it (only what its selected tests need).
        select: pytest arguments selecting its tests that run here without extra servers.
        exercise: Python code run after ``import <module>`` (``tmp`` is a scratch directory).
        deselect: Its own tests that fail in the workspace too (reported there, not here).
    """

    dist: str
    module: str
    path: str
    extras: tuple[str, ...] = ()
    select: tuple[str, ...] = ()
    exercise: str = ""
    deselect: tuple[str, ...] = ()


NO_SERVERS = "not slow and not postgres and not mariadb and not mongoeco and not mongodb"

PACKAGES: tuple[Pkg, ...] = (
    Pkg(
        dist="pinnacle-protocols",
        module="pinnacle_protocols",
        path="packages/pinnacle-protocols",
        extras=("testing",),
        select=("-m", "not slow", "-k", "not state_machine"),
        exercise="""
            from pinnacle_protocols.memory import MemoryArtifactStore, MemoryMetadataStore
            from pinnacle_protocols import ComponentRecord
            ref = MemoryArtifactStore.from_uri("memory://").put(b"x")
            MemoryMetadataStore.from_uri("memory://").create_component(
                ComponentRecord(type_id="t", identifier="i"))
        """,
    ),
    Pkg(
        dist="pinnacle-fs",
        module="pinnacle_fs",
        path="packages/pinnacle-fs",
        extras=("s3",),
        select=("-m", f"{NO_SERVERS} and not s3", "-k", "not state_machine"),
        exercise="""
            from pinnacle_fs import FsspecArtifactStore
            store = FsspecArtifactStore.from_uri(f"file://{tmp}/art")
            assert store.get(store.put(b"blob")) == b"blob"
        """,
    ),
    Pkg(
        dist="pinnacle-sql",
        module="pinnacle_sql",
        path="packages/pinnacle-sql",
        # its unit tests build PostgreSQL/MySQL engines (no server needed) without a marker;
        # DuckDB runs in-process, so its metadata tests run there too
        extras=("postgres", "mysql", "duckdb"),
        select=("-m", NO_SERVERS, "-k", "not state_machine"),
        exercise="""
            from pinnacle_sql import SQLAlchemyMetadataStore
            from pinnacle_protocols import ComponentRecord
            md = SQLAlchemyMetadataStore.from_uri(f"sqlite://{tmp}/m.db")
            md.create_component(ComponentRecord(type_id="t", identifier="i"))
            assert md.get_component("t", "i").version == 0
        """,
    ),
    Pkg(
        dist="pinnacle-ibis",
        module="pinnacle_ibis",
        path="packages/pinnacle-ibis",
        # tests/test_backend.py uses datafusion and polars in unmarked tests
        extras=("duckdb", "sqlite", "pandas", "polars", "datafusion"),
        select=(
            "-m",
            f"{NO_SERVERS} and not polars and not datafusion and not pyspark and not pandas",
            "-k",
            "not state_machine and not TestDuckDBFile and not TestGenericDuckDB "
            "and not TestSQLiteFile",
        ),
        exercise="""
            from pinnacle_ibis import IbisDataBackend
            from pinnacle_protocols import Schema
            for uri in ("duckdb://", f"sqlite://{tmp}/d.db"):
                b = IbisDataBackend.from_uri(uri)
                b.create_table("t", Schema.of(k="int"))
                b.insert("t", [{"k": 1}])
                assert b.count("t", {"k": 1}) == 1
                b.close()
        """,
    ),
    Pkg(
        dist="pinnacle-mongo",
        module="pinnacle_mongo",
        path="packages/pinnacle-mongo",
        select=("-m", NO_SERVERS, "-k", "not state_machine"),
        exercise="""
            from pinnacle_mongo import GridFSArtifactStore, MongoDataBackend, MongoMetadataStore
            for cls in (GridFSArtifactStore, MongoDataBackend, MongoMetadataStore):
                cls.from_uri("mongodb://127.0.0.1:1/db").close()
        """,
    ),
    Pkg(
        dist="pinnacle-dask",
        module="pinnacle_dask",
        path="packages/pinnacle-dask",
        select=("-m", NO_SERVERS),
        exercise="""
            from pinnacle_dask import DaskComputeBackend
            backend = DaskComputeBackend.from_uri("dask://127.0.0.1:8786")
            assert backend.address == "tcp://127.0.0.1:8786"
            backend.close()
        """,
    ),
    Pkg(
        dist="pinnacle-ray",
        module="pinnacle_ray",
        path="packages/pinnacle-ray",
        # a Ray instance takes 10-30 s to start on 2 cores: its tests (marker `ray`) run in the
        # workspace; here the tests that need no Ray instance
        select=("-m", f"{NO_SERVERS} and not ray"),
        exercise="""
            from pinnacle_ray import RayComputeBackend
            backend = RayComputeBackend.from_uri("ray://127.0.0.1:10001")
            assert backend.target.port == 10001
            backend.close()
        """,
    ),
    Pkg(
        dist="pinnacle-vectors",
        module="pinnacle_vectors",
        path="packages/pinnacle-vectors",
        extras=("faiss", "usearch", "hnswlib"),
        # the example tests of the contract for each engine; the state machines, the recall
        # builds and the no-prefilter reruns take minutes and run in the workspace
        select=("-m", "not slow", "-k", "not state_machine and not recall and not OverFetch"),
        exercise="""
            from pinnacle_vectors.faiss import FaissEngine
            from pinnacle_vectors.hnswlib import HnswlibEngine
            from pinnacle_vectors.usearch import USearchEngine
            for cls in (FaissEngine, HnswlibEngine, USearchEngine):
                e = cls.build([1, "b"], [[1.0, 0.0], [0.0, 1.0]], measure="cosine")
                e = cls.from_bytes(e.to_bytes())
                assert e.search([0.1, 1.0], 1).ids == ("b",)
        """,
    ),
    Pkg(
        dist="pinnacledb",
        module="pinnacledb",
        path="pinnacle-facade",
        # tests/test_predict.py uses cloudpickle (extra "serializers") in an unmarked test
        extras=("embedded", "mongo", "s3", "serializers"),
        select=("-m", f"{NO_SERVERS} and not nx27017 and not s3 and not pyspark"),
        exercise="""
            import numpy as np
            from pinnacledb import LinearModel, pinnacle
            db = pinnacle("memory://", metadata_store="memory://", artifact_store="memory://")
            db.apply(LinearModel(identifier="m", weights=np.arange(3.0)))
            assert db.load("model", "m").version == 0
        """,
    ),
)
#: Distribution -> the wheels of the monorepo its extras pull in.
LOCAL_DEPS = {
    "pinnacledb": ("pinnacle-sql", "pinnacle-fs", "pinnacle-ibis", "pinnacle-mongo"),
}

# Runs inside the venv: import, exercise, then report loaded modules that are not declared.
CHECK_SCRIPT = r"""
import importlib, json, sys, sysconfig, tempfile
from importlib import metadata as md
from packaging.requirements import Requirement

dist_name, module, extras = sys.argv[1], sys.argv[2], sys.argv[3].split(",") if sys.argv[3] else []
if extras == ["*"]:
    extras = md.metadata(dist_name).get_all("Provides-Extra") or []
tmp = tempfile.mkdtemp()
before = set(sys.modules)
importlib.import_module(module)
exec(sys.argv[4], {"tmp": tmp})

def closure(name, wanted):
    seen, todo = set(), [(name, tuple(wanted))]
    while todo:
        n, ex = todo.pop()
        key = n.lower().replace("_", "-")
        if (key, ex) in seen:
            continue
        seen.add((key, ex))
        try:
            reqs = md.requires(n) or []
        except md.PackageNotFoundError:
            continue
        for text in reqs:
            r = Requirement(text)
            envs = [{"extra": e} for e in ex] or [{"extra": ""}]
            if r.marker is None or any(r.marker.evaluate(e) for e in envs):
                todo.append((r.name, tuple(r.extras)))
    return {k for k, _ in seen}

declared = closure(dist_name, extras) | {"pytest", "hypothesis", "pluggy", "iniconfig",
                                           "packaging", "pygments", "sortedcontainers"}
owners = md.packages_distributions()
stdlib = set(sys.stdlib_module_names)
loaded = {m.split(".")[0] for m in sys.modules} - {m.split(".")[0] for m in before}
only = set(json.loads(sys.argv[5])) if len(sys.argv) > 5 else None
report = {"pinnacle": [], "undeclared": []}
for top in sorted(loaded):
    if top in stdlib or top.startswith("_") or top == "__main__":
        continue
    if only is not None and not top.startswith("pinnacle") and top not in only:
        continue
    dists = {d.lower().replace("_", "-") for d in owners.get(top, [])}
    if top.startswith("pinnacle") and top not in (module, "pinnacle_protocols"):
        report["pinnacle"].append(top)
    elif dists and not dists & declared:
        report["undeclared"].append(f"{top} ({', '.join(sorted(dists))})")
print(json.dumps(report))
"""


def _run(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False
    )


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH (the venv tests use it to build and install)")
    return uv


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    env.update(UV_ENV)
    env.update(extra)
    return env


def build_wheels(out: Path) -> dict[str, Path]:
    """Every distribution of the monorepo built as a wheel into ``out``."""
    done = _run(
        [_uv(), "build", "--all-packages", "--wheel", "-q", "--out-dir", str(out)],
        env=_clean_env(),
        cwd=REPO,
    )
    assert done.returncode == 0, f"uv build failed:\n{done.stdout}\n{done.stderr}"
    found = {}
    for pkg in PACKAGES:
        matches = list(out.glob(f"{pkg.dist.replace('-', '_')}-*.whl"))
        assert len(matches) == 1, f"no (or several) wheels for {pkg.dist}: {matches}"
        found[pkg.dist] = matches[0]
    return found


def _venv(root: Path, requirements: list[str]) -> Path:
    """A fresh venv at ``root`` with ``requirements``; returns its python."""
    python = sys.executable
    base = getattr(sys, "_base_executable", python)
    made = _run([_uv(), "venv", "-q", "-p", base, str(root)], env=_clean_env())
    assert made.returncode == 0, made.stderr
    vpython = root / "bin" / "python"
    done = _run(
        [_uv(), "pip", "install", "-q", "-p", str(vpython), *requirements],
        env=_clean_env(),
        timeout=900,
    )
    assert done.returncode == 0, f"uv pip install {requirements} failed:\n{done.stderr}"
    return vpython


def _installed(vpython: Path) -> set[str]:
    done = _run([_uv(), "pip", "list", "--format", "json", "-p", str(vpython)], env=_clean_env())
    assert done.returncode == 0, done.stderr
    return {d["name"].lower() for d in json.loads(done.stdout)}


def _requirement(wheel: Path, extras: tuple[str, ...]) -> str:
    return f"{wheel}[{','.join(extras)}]" if extras else str(wheel)


def _pytest_ini(target: Path) -> None:
    """The root pytest configuration (markers, import mode), for tests run outside the repo."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    markers = "\n".join(f"    {m}" for m in config["markers"])
    target.write_text(
        "[pytest]\naddopts = --strict-markers --import-mode=importlib -p no:cacheprovider -ra\n"
        f"xfail_strict = true\nmarkers =\n{markers}\n"
    )


def _copy_without_src(pkg: Pkg, dest: Path) -> Path:
    shutil.copytree(
        REPO / pkg.path, dest, ignore=shutil.ignore_patterns("src", "__pycache__", ".pytest_cache")
    )
    _pytest_ini(dest / "pytest.ini")
    return dest


def _test_env(venv_python: Path) -> dict[str, str]:
    bindir = Path(sys.executable).parent
    env = _clean_env(
        HYPOTHESIS_PROFILE="dev",
        PATH=f"{venv_python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        VIRTUAL_ENV=str(venv_python.parent.parent),
        # servers from the workspace's dev dependencies (their binaries, not Python packages)
        PINNACLE_WEED=str(bindir / "weed"),
        PINNACLE_NX27017=str(bindir / "nx-27017"),
    )
    for name in list(env):
        if name.startswith("PINNACLEDB_"):
            del env[name]
    return env


def _check_imports(
    vpython: Path, pkg: Pkg, extras: tuple[str, ...], only: Iterable[str] | None = None
) -> dict[str, list[str]]:
    args = [
        str(vpython),
        "-c",
        CHECK_SCRIPT,
        pkg.dist,
        pkg.module,
        ",".join(extras),
        textwrap.dedent(pkg.exercise),
    ]
    if only is not None:
        args.append(json.dumps(sorted(only)))
    done = _run(args, env=_test_env(vpython))
    assert done.returncode == 0, f"{pkg.dist}: import/exercise failed:\n{done.stderr[-3000:]}"
    report: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def _job_alone(pkg: Pkg, wheels: dict[str, Path], tmp_path: Path) -> None:
    """The wheel alone: only declared dependencies, declared imports, its own tests pass."""
    venv_root = tmp_path / "venv"
    reqs = [_requirement(wheels[pkg.dist], pkg.extras)]
    reqs += [str(wheels[d]) for d in LOCAL_DEPS.get(pkg.dist, ())]
    if pkg.dist != "pinnacle-protocols":
        reqs.append(_requirement(wheels["pinnacle-protocols"], ("testing",)))
    vpython = _venv(venv_root, reqs)

    installed = _installed(vpython)
    ours = {"pinnacle-protocols", pkg.dist, *LOCAL_DEPS.get(pkg.dist, ())}
    others = {d for d in installed if d.startswith("pinnacle")} - ours
    assert not others, f"{pkg.dist} pulled in other pinnacle distributions: {others}"

    report = _check_imports(vpython, pkg, pkg.extras)
    assert report == {"pinnacle": [], "undeclared": []}, f"{pkg.dist}: {report}"

    tests = _copy_without_src(pkg, tmp_path / "pkg")
    args = [str(vpython), "-m", "pytest", "tests", "-q", "-x", "-W", "ignore", *pkg.select]
    args += [f"--deselect={d}" for d in pkg.deselect]
    done = _run(args, env=_test_env(vpython), cwd=tests, timeout=900)
    tail = (done.stdout + done.stderr)[-4000:]
    assert done.returncode == 0, f"{pkg.dist}: its tests failed in the venv:\n{tail}"
    assert " passed" in tail


def _job_facade_sql_fs(wheels: dict[str, Path], tmp_path: Path) -> None:
    """``pinnacle demo`` with only pinnacle-sql + pinnacle-fs: no ibis, no pymongo needed."""
    venv_root = tmp_path / "venv"
    vpython = _venv(
        venv_root,
        [
            str(wheels["pinnacledb"]),
            str(wheels["pinnacle-sql"]),
            str(wheels["pinnacle-fs"]),
            str(wheels["pinnacle-protocols"]),
        ],
    )
    installed = _installed(vpython)
    for absent in (
        "ibis-framework",
        "pymongo",
        "pinnacle-ibis",
        "pinnacle-mongo",
        "duckdb",
        "pyarrow",
    ):
        assert absent not in installed
    work = tmp_path / "work"
    work.mkdir()
    pinnacle = str(vpython.parent / "pinnacle")
    # nothing configured: DuckDB is absent, so the demo's data goes to pinnacle-sql's SQLite
    demo = _run([pinnacle, "demo"], env=_test_env(vpython), cwd=work)
    assert demo.returncode == 0, f"demo failed:\n{demo.stdout}\n{demo.stderr}"
    data_uri = "sqlalchemy+sqlite://.pinnacledb/data.db"
    assert f"keeps its table data on SQLite at {data_uri}" in demo.stdout
    assert f"databackend={data_uri}  (pinnacle_sql.SQLAlchemyDataBackend)" in demo.stdout
    assert "pinnacle_sql.SQLAlchemyMetadataStore" in demo.stdout
    assert "a fresh process (pid" in demo.stdout
    assert "table outputs__iris_petal_width    150 rows" in demo.stdout
    assert "iris-petal-width" in demo.stdout
    state = work / ".pinnacledb"
    assert (state / "metadata.db").is_file()
    assert list((state / "artifacts").glob("??/*")), "no artifact was written"
    # the rows are in the SQLite file, as any SQLite client sees them
    con = sqlite3.connect(state / "data.db")
    try:
        assert con.execute("SELECT COUNT(*) FROM iris").fetchone() == (150,)
        assert con.execute("SELECT COUNT(*) FROM outputs__iris_petal_width").fetchone() == (150,)
    finally:
        con.close()

    # a later process finds data and model: data and metadata on SQLite, weights on files
    stores = [
        "--databackend",
        data_uri,
        "--metadata",
        "sqlite://.pinnacledb/metadata.db",
        "--artifact-store",
        "filesystem://.pinnacledb/artifacts/",
    ]
    show = _run(
        [pinnacle, "show", "model", "iris-petal-width", *stores], env=_test_env(vpython), cwd=work
    )
    assert show.returncode == 0, show.stderr
    assert show.stdout.startswith("v0")

    loaded = _run(
        [
            str(vpython),
            "-c",
            textwrap.dedent("""
            import sys
            from pinnacledb import pinnacle
            db = pinnacle("sqlalchemy+sqlite://.pinnacledb/data.db",
                          metadata_store="sqlite://.pinnacledb/metadata.db",
                          artifact_store="filesystem://.pinnacledb/artifacts/")
            assert db.count("iris", {"species": "setosa"}) == 50
            m = db.load("model", "iris-petal-width")
            assert len(m.weights) == 3
            bad = sorted(n for n in sys.modules if n.split(".")[0] in
                         ("ibis", "pymongo", "pinnacle_ibis", "pinnacle_mongo", "duckdb",
                          "pyarrow"))
            print("loaded", bad)
        """),
        ],
        env=_test_env(vpython),
        cwd=work,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "loaded []"

    # pinnacle() and pinnacle("sqlite://my.db") (the specification's example) work as the demo
    # does: pinnacle-sql's databackend serves them, without ibis
    used = _run(
        [
            str(vpython),
            "-c",
            textwrap.dedent("""
            import sys
            from pinnacledb import LinearModel, pinnacle
            db = pinnacle()
            assert db.count("iris") == 150, "the embedded default sees the demo's data"
            assert db.load("model", "iris-petal-width").version == 1
            db.close()
            db = pinnacle("sqlite://my.db")
            db.create_table("docs", {"id": "int"})
            db.insert("docs", [{"id": 1}])
            db.apply(LinearModel.fit("m", [[1.0], [2.0]], [1.0, 2.0]))
            print(db.config.databackend.source)
            db.close()
            bad = sorted(n for n in sys.modules if n.split(".")[0] in
                         ("ibis", "pymongo", "pinnacle_ibis", "pinnacle_mongo", "duckdb",
                          "pyarrow"))
            print("loaded", bad)
        """),
        ],
        env=_test_env(vpython),
        cwd=work,
    )
    assert used.returncode == 0, used.stderr
    assert used.stdout.splitlines()[-2].startswith("argument; sqlite:// served by pinnacle-sql")
    assert used.stdout.splitlines()[-1] == "loaded []"
    con = sqlite3.connect(work / "my.db")
    try:
        assert con.execute("SELECT COUNT(*) FROM docs").fetchone() == (1,)
    finally:
        con.close()

    # pinnacle info says which databackend the embedded default chose
    info = _run([pinnacle, "info"], env=_test_env(vpython), cwd=work)
    assert info.returncode == 0, info.stdout + info.stderr
    assert f"databackend     {data_uri}" in info.stdout
    assert "needs pinnacle-ibis[duckdb], which is not installed" in info.stdout

    # a scheme only pinnacle-ibis serves: info reports it (exit 2) and says what to install
    duck = _run(
        [pinnacle, "info", "--databackend", "duckdb://x.duckdb"], env=_test_env(vpython), cwd=work
    )
    assert duck.returncode == 2, duck.stdout + duck.stderr
    assert "installed schemes" in duck.stdout
    assert "pinnacle-ibis[duckdb]" in duck.stderr
    assert not (work / "x.duckdb").exists()


# ---------------------------------------------------------------------------- background runs
FACADE_SQL_FS = "pinnacledb+pinnacle-sql+pinnacle-fs"


class Runner:
    """Runs the venv jobs in two background threads, started when collection ends.

    Each job waits for a subprocess most of the time, so they overlap with the rest of the
    session on the second core. The tests only wait for their job's result.
    """

    def __init__(self) -> None:
        """Nothing starts before :meth:`start`."""
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._root: Path | None = None
        self._wheels: Future[dict[str, Path]] | None = None
        self._jobs: dict[str, Future[None]] = {}

    def _run_job(self, key: str, root: Path) -> None:
        assert self._wheels is not None
        wheels = self._wheels.result()
        work = root / key
        work.mkdir()
        try:
            if key == FACADE_SQL_FS:
                _job_facade_sql_fs(wheels, work)
            else:
                _job_alone(next(p for p in PACKAGES if p.dist == key), wheels, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)  # a venv with ibis is ~1 GB

    def start(self, keys: Iterable[str]) -> None:
        """Build the wheels, then run the jobs ``keys`` (idempotent per key)."""
        with self._lock:
            if self._pool is None:
                self._root = Path(tempfile.mkdtemp(prefix="pinnacle-it-venvs-"))
                self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="venv")
                self._wheels = self._pool.submit(build_wheels, self._root / "wheels")
            root = self._root
            assert root is not None
            for key in keys:
                if key not in self._jobs:
                    self._jobs[key] = self._pool.submit(self._run_job, key, root)

    def result(self, key: str) -> None:
        """Wait for job ``key`` (starting it if nobody did); re-raise its failure."""
        self.start([key])
        self._jobs[key].result(timeout=1800)

    def close(self) -> None:
        """Cancel what has not started, wait for the rest, remove the files."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
            self._pool, self._root, self._wheels, self._jobs = None, None, None, {}


RUNNER = Runner()


def _key(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and isinstance(callspec.params.get("pkg"), Pkg):
        dist: str = callspec.params["pkg"].dist
        return dist if item.name.startswith("test_installed_alone") else None
    return FACADE_SQL_FS if item.name == "test_facade_with_sql_and_fs_only" else None


def background_start(items: list[pytest.Item]) -> None:
    """conftest hook: start the venv jobs of the selected tests when collection ends."""
    keys = [k for k in map(_key, items) if k is not None]
    if keys:
        RUNNER.start(keys)


def background_stop() -> None:
    """conftest hook: at the end of the session."""
    RUNNER.close()


@pytest.mark.slow
@pytest.mark.parametrize("pkg", [pytest.param(p, id=p.dist) for p in PACKAGES])
def test_installed_alone(pkg: Pkg) -> None:
    """The wheel alone: only declared dependencies, declared imports, its own tests pass."""
    RUNNER.result(pkg.dist)


@pytest.mark.slow
@pytest.mark.sqlite
@pytest.mark.file
def test_facade_with_sql_and_fs_only() -> None:
    """``pinnacle demo`` with only pinnacle-sql + pinnacle-fs: no ibis, no pymongo needed."""
    RUNNER.result(FACADE_SQL_FS)


# ---------------------------------------------------------------------------- in the workspace
#: Drivers and heavy libraries some pinnacle package declares (top-level module names).
#: Libraries that dependencies import opportunistically when present (pyarrow tries
#: cloudpickle, sqlglot mypy_extensions) are not drivers and not listed.
DRIVERS = (
    "sqlalchemy",
    "alembic",
    "psycopg",
    "pymysql",
    "MySQLdb",
    "ibis",
    "duckdb",
    "sqlglot",
    "polars",
    "datafusion",
    "pyspark",
    "pandas",
    "pyarrow",
    "pymongo",
    "bson",
    "gridfs",
    "fsspec",
    "s3fs",
    "gcsfs",
    "botocore",
    "aiobotocore",
    "numpy",
    "torch",
    "safetensors",
    "dill",
)


@pytest.mark.parametrize("pkg", [pytest.param(p, id=p.dist) for p in PACKAGES])
def test_no_foreign_imports_in_the_workspace(pkg: Pkg) -> None:
    """With every package installed, using one loads no other pinnacle package and no driver
    outside its declared requirements (with all its extras)."""
    report = _check_imports(Path(sys.executable), pkg, ("*",), DRIVERS)
    assert report == {"pinnacle": [], "undeclared": []}, f"{pkg.dist}: {report}"
