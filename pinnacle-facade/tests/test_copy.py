"""``pinnacle copy`` / ``db.copy_to``: between real deployments, resumable, conflicts, dry run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pinnacle_protocols.errors import SchemaError
from pinnacle_protocols.records import ComponentKey
from pinnacledb import DataType, LinearModel, Table, pinnacle
from pinnacledb.base.datalayer import Datalayer
from pinnacledb.cli import main
from pinnacledb.copy import CopyConflict, progress_key

S3_SECRET = f"s3secret{uuid.uuid4().hex[:12]}"
TABLES = ["points", "docs", "outputs__line"]


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One SeaweedFS server for this module (each test uses a fresh bucket)."""
    from pinnacle_fs.testing import run_seaweedfs

    with run_seaweedfs(tmp_path_factory.mktemp("weed"), secret_key=S3_SECRET) as server:
        yield server


@pytest.fixture
def maria_uri() -> Iterator[str]:
    """A fresh MariaDB database (dropped afterwards)."""
    import pymysql  # type: ignore[import-untyped]

    name = f"pc_{uuid.uuid4().hex[:16]}"

    def run(sql: str) -> None:
        conn = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    run(f"CREATE DATABASE `{name}`")
    yield f"mysql://root@127.0.0.1:3306/{name}"
    run(f"DROP DATABASE IF EXISTS `{name}`")


def _s3_uri(server: Any) -> str:
    bucket = f"copy-{uuid.uuid4().hex[:12]}"
    server.create_bucket(bucket)
    host = server.endpoint_url
    return f"s3://{server.access_key}:{S3_SECRET}@{bucket}/art?endpoint_url={host}"


# ---------------------------------------------------------------- a source deployment
def _populate(db: Datalayer, *, models: int = 2, rows: int = 30) -> None:
    """Tables, model versions with artifacts, lineage (Table -> Schema -> DataType), a job."""
    db.create_table("points", {"id": "int", "x": "float", "y": "float"})
    db.insert("points", [{"id": i, "x": float(i), "y": 2.0 * i + 1} for i in range(rows)])
    xs = np.array([[float(i)] for i in range(rows)])
    for v in range(models):
        db.apply(LinearModel.fit("line", xs, 2.0 * xs[:, 0] + 1, ridge=float(v)))
    table = Table.of("docs", id="int", body="str", vec=DataType(identifier="vec", encoder="numpy"))
    db.apply(table)
    db.insert("docs", [{"id": i, "body": f"doc {i}", "vec": np.arange(3.0) * i} for i in range(5)])
    db.predict("line", "points", inputs=["x"])


def _keys(db: Datalayer) -> list[ComponentKey]:
    md = db.metadata
    return [
        ComponentKey(type_id=k.type_id, identifier=k.identifier, version=v)
        for k in md.show_components()
        for v in md.show_versions(k.type_id, k.identifier)
    ]


def _sorted_rows(db: Datalayer, table: str, *, decode: bool = False) -> list[dict[str, Any]]:
    rows = db.select(table, decode=decode)
    out = [{k: v for k, v in r.items() if k != "_id"} for r in rows]
    return sorted(out, key=repr)


def assert_same(src: Datalayer, dst: Datalayer, tables: list[str]) -> None:
    """Records equal, artifacts byte-identical, lineage and jobs equal, loads and predicts alike."""
    keys = _keys(src)
    assert keys
    assert _keys(dst) == keys
    for key in keys:
        a = src.get_record(key.type_id, key.identifier, key.version)
        b = dst.get_record(key.type_id, key.identifier, key.version)
        assert (b.data, b.artifacts, b.content_hash) == (a.data, a.artifacts, a.content_hash)
        assert a.created_at is not None
        assert b.created_at is not None
        assert abs(a.created_at - b.created_at) < timedelta(milliseconds=1)
        for ref in a.artifacts.values():
            assert dst.artifact_store.get(ref) == src.artifact_store.get(ref)
        assert dst.metadata.get_children(key) == src.metadata.get_children(key)
        loaded = dst.load(key.type_id, key.identifier, key.version)
        assert loaded == src.load(key.type_id, key.identifier, key.version)
        if isinstance(loaded, LinearModel):
            width = len(loaded.weights)
            probe = [[0.5 * (i + 1) - j for i in range(width)] for j in range(3)]
            original = src.load(key.type_id, key.identifier, key.version)
            assert isinstance(original, LinearModel)
            assert loaded.predict(probe) == original.predict(probe)

    def jobs(db: Datalayer) -> list[tuple[Any, ...]]:
        return sorted(
            (j.job_id, j.kind, j.status, j.component, dict(j.args), j.error)
            for j in db.metadata.show_jobs()
        )

    assert jobs(dst) == jobs(src)
    for table in tables:
        assert _sorted_rows(dst, table) == _sorted_rows(src, table)
        # decoded through the copied Table component
        decoded = repr(_sorted_rows(dst, table, decode=True))
        assert decoded == repr(_sorted_rows(src, table, decode=True))


# ---------------------------------------------------------------- real deployments
@pytest.mark.duckdb
@pytest.mark.sqlite
@pytest.mark.postgres
@pytest.mark.s3
def test_embedded_to_postgres_s3_via_cli(
    seaweed: Any, pg_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = pinnacle()  # the embedded default under the test's working directory
    _populate(src)
    s3 = _s3_uri(seaweed)
    argv = ["copy", "--to", pg_uri, "--to-artifact-store", s3, "--tables", ",".join(TABLES)]
    assert main(argv) == 0, capsys.readouterr().err
    first = capsys.readouterr()
    assert "copied 5 component versions" in first.out
    assert S3_SECRET not in first.out + first.err
    assert "artifacts" in first.err
    assert "rows points" in first.err

    dst = pinnacle(pg_uri, artifact_store=s3)
    assert dst.slots["artifact_store"].class_path.endswith("FsspecArtifactStore")
    assert_same(src, dst, TABLES)
    # idempotent: a second run copies nothing
    assert main(argv) == 0
    again = capsys.readouterr()
    assert "copied 0 component versions, 0 artifacts (0 B), 0 jobs" in again.out
    assert S3_SECRET not in again.out + again.err
    assert_same(src, dst, TABLES)
    dst.close()
    src.close()


@pytest.mark.nx27017
@pytest.mark.sqlite
@pytest.mark.file
def test_mongo_to_sqlite_and_files(mongo_server: Any, tmp_path: Path) -> None:
    from pinnacle_mongo.testing import fresh_database_name

    src = pinnacle(mongo_server.uri(fresh_database_name("cp")))
    _populate(src)
    dst = pinnacle(f"sqlite://{tmp_path}/dst.db", artifact_store=f"filesystem://{tmp_path}/art/")
    report = src.copy_to(dst, tables=TABLES, batch_size=7)
    assert report.versions_copied == 5
    assert report.rows_copied == {"points": 30, "docs": 5, "outputs__line": 30}
    assert_same(src, dst, TABLES)

    # a collection without a declared schema cannot cross families
    src.databackend.native_database()["loose"].insert_one({"a": 1})  # type: ignore[attr-defined]
    with pytest.raises(SchemaError, match=r"'loose'.*no declared portable schema"):
        src.copy_to(dst, tables=["loose"])
    src.close()
    dst.close()


@pytest.mark.postgres
@pytest.mark.mariadb
def test_postgres_to_mariadb(
    tmp_path: Path, pg_uri: str, maria_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # trust auth ignores the password: it is there to check that it is never printed
    secret = f"pw{uuid.uuid4().hex[:10]}"
    pg_uri = pg_uri.replace("postgres@", f"postgres:{secret}@")
    src = pinnacle(pg_uri, artifact_store=f"filesystem://{tmp_path}/src-art/")
    _populate(src)
    dst = pinnacle(maria_uri, artifact_store=f"filesystem://{tmp_path}/dst-art/")
    report = src.copy_to(dst, all_tables=True)
    assert report.artifacts_copied == len(
        {r.sha256 for k in _keys(src) for r in src.get_record(*_args(k)).artifacts.values()}
    )
    assert_same(src, dst, TABLES)
    # the CLI: dry run after the copy, then a conflict; the password never appears
    argv = [
        "copy",
        "--from", pg_uri,
        "--from-artifact-store", f"filesystem://{tmp_path}/src-art/",
        "--to", maria_uri,
        "--to-artifact-store", f"filesystem://{tmp_path}/dst-art/",
        "--all-tables",
    ]  # fmt: skip
    assert main([*argv, "--dry-run"]) == 0
    plan = capsys.readouterr()
    assert "5 at the source, 0 to copy, 5 already present" in plan.out
    assert "to copy (done)" in plan.out
    src.apply(LinearModel.fit("other", [[1.0], [2.0]], [1.0, 2.0]))
    dst.apply(LinearModel.fit("other", [[1.0], [2.0]], [3.0, 0.0]))
    assert main(argv) == 1
    failed = capsys.readouterr()
    assert "model 'other' v0" in failed.err
    assert "nothing was written" in failed.err
    assert secret not in plan.out + plan.err + failed.out + failed.err
    src.close()
    dst.close()


def _args(key: ComponentKey) -> tuple[str, str, int]:
    return key.type_id, key.identifier, key.version


# ---------------------------------------------------------------- conflicts and dry run
@pytest.mark.sqlite
@pytest.mark.file
def test_conflicting_version_is_an_error_and_nothing_is_overwritten(tmp_path: Path) -> None:
    src = pinnacle("memory://")
    _populate(src)
    dst = pinnacle(
        "memory://",
        metadata_store=f"sqlite://{tmp_path}/dst.db",
        artifact_store=f"filesystem://{tmp_path}/art/",
    )
    xs = np.array([[1.0], [2.0], [3.0]])
    theirs = dst.apply(LinearModel.fit("line", xs, np.array([5.0, 1.0, 0.0])))  # v0, different
    dst.create_table("points", {"id": "int"})  # a table the copy did not create
    plan = src.copy_to(dst, tables=["points"], dry_run=True).plan
    assert [str(c.name) for c in plan.conflicts] == ["model 'line' v0", "'points'"]
    with pytest.raises(CopyConflict) as info:
        src.copy_to(dst, tables=["points"])
    text = str(info.value)
    assert "2 conflict(s)" in text
    assert "model 'line' v0" in text
    assert "'points'" in text
    assert len(info.value.conflicts) == 2
    # nothing was written
    assert _keys(dst) == [ComponentKey(type_id="model", identifier="line", version=0)]
    assert dst.get_record("model", "line", 0) == theirs
    assert dst.count("points") == 0
    assert dst.metadata.show_jobs() == [j for j in dst.metadata.show_jobs() if j.kind == "apply"]


def test_dry_run_prints_the_plan_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = pinnacle()  # embedded default in the test's directory
    _populate(src)
    src.close()
    dst_db = f"sqlite://{tmp_path}/dst.db"
    art = f"filesystem://{tmp_path}/dst-art/"
    argv = ["copy", "--to", dst_db, "--to-artifact-store", art, "--all-tables", "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "component versions: 5 at the source, 5 to copy, 0 already present" in out
    assert "artifacts to copy: 2 (" in out
    assert "table points: 30 rows at the source, 0 at the destination, 30 to copy (new)" in out
    assert "rows to copy: 65" in out
    assert "conflicts: 0" in out
    dst = pinnacle(dst_db, artifact_store=art)
    assert dst.list_tables() == []
    assert list(dst.artifact_store.iter_refs()) == []
    dst.close()


# ---------------------------------------------------------------- SIGKILL and resume
_CHILD = textwrap.dedent(
    """
    import sys
    from pinnacledb.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def _big_source(db: Datalayer) -> None:
    rng = np.random.default_rng(3)
    db.create_table("points", {"id": "int", "x": "float", "y": "float"})
    db.insert("points", [{"id": i, "x": float(i), "y": 0.5 * i} for i in range(20_000)])
    for i in range(25):
        xs = rng.normal(size=(200, 4))
        db.apply(LinearModel.fit(f"m{i}", xs, xs @ np.arange(4.0), features=list("abcd")))
    big = DataType(identifier="blob", encoder="numpy", by_reference=True)
    db.apply(Table.of("blobs", id="int", arr=big))
    db.insert("blobs", [{"id": i, "arr": rng.normal(size=60_000)} for i in range(20)])


def _dst_args(dst_dir: Path) -> dict[str, Any]:
    return {
        "databackend": f"duckdb://{dst_dir}/data.duckdb",
        "metadata_store": f"sqlite://{dst_dir}/md.db",
        "artifact_store": f"filesystem://{dst_dir}/art/",
    }


@pytest.mark.slow
@pytest.mark.duckdb
@pytest.mark.sqlite
@pytest.mark.file
def test_sigkill_at_random_points_then_rerun_gives_the_same_result(tmp_path: Path) -> None:
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    src_args: dict[str, Any] = {
        "databackend": f"duckdb://{src_dir}/data.duckdb",
        "metadata_store": f"sqlite://{src_dir}/md.db",
        "artifact_store": f"filesystem://{src_dir}/art/",
    }
    src = pinnacle(**src_args)
    _big_source(src)
    src.close()
    seed = int(os.environ.get("PINNACLE_COPY_SEED", random.SystemRandom().randrange(10**6)))
    print(f"SIGKILL copy test seed: {seed} (rerun with PINNACLE_COPY_SEED={seed})")
    rnd = random.Random(seed)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    tables = ["points", "blobs"]

    def argv_for(dst_dir: Path) -> list[str]:
        return [
            "copy",
            "--from", src_args["databackend"],
            "--from-metadata", src_args["metadata_store"],
            "--from-artifact-store", src_args["artifact_store"],
            "--to", f"duckdb://{dst_dir}/data.duckdb",
            "--to-metadata", f"sqlite://{dst_dir}/md.db",
            "--to-artifact-store", f"filesystem://{dst_dir}/art/",
            "--tables", ",".join(tables),
            "--batch-size", "197",
        ]  # fmt: skip

    def state(dst_dir: Path) -> str:
        dst = pinnacle(**_dst_args(dst_dir))
        try:
            versions = len(_keys(dst))
            arts = len(list(dst.artifact_store.iter_refs()))
            rows = {t: dst.count(t) for t in dst.list_tables()}
        finally:
            dst.close()
        return f"{versions} versions, {arts} artifacts, rows {rows}"

    # one uninterrupted run: its duration scales the kill points
    started = time.perf_counter()
    ref = subprocess.run(
        [sys.executable, "-c", _CHILD, *argv_for(tmp_path / "ref")],
        check=False,
        env=env,
        cwd=tmp_path,
        capture_output=True,
    )
    assert ref.returncode == 0, ref.stderr.decode()[-2000:]
    full = time.perf_counter() - started
    print(f"uninterrupted copy: {full:.2f} s, {state(tmp_path / 'ref')}")
    kills = 0
    for trial in range(3):
        dst_dir = tmp_path / f"dst{trial}"
        argv = argv_for(dst_dir)
        for _ in range(2):  # two interrupted runs, then one that finishes
            proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, *argv],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            delay = rnd.uniform(0.2, 0.8) * full
            try:
                proc.wait(timeout=delay)
                what = f"finished before the kill at {delay:.2f} s"
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                what = f"SIGKILL after {delay:.2f} s"
            print(f"trial {trial}: {what} (exit {proc.returncode}): ", end="")
            print(state(dst_dir) if (dst_dir / "md.db").exists() else "nothing written")
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, *argv],
            check=False,
            env=env,
            cwd=tmp_path,
            capture_output=True,
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        src = pinnacle(**src_args)
        dst = pinnacle(**_dst_args(dst_dir))
        assert_same(src, dst, tables)
        assert dst.count("points") == 20_000
        assert dst.metadata.get_metadata(progress_key(src, "points")) == {
            "state": "done",
            "rows": 20_000,
        }
        src.close()
        dst.close()
    assert kills >= 1, "no run was interrupted: the kill points are too late"


class _Stop(Exception):
    """Raised by a progress callback to interrupt a copy at a known point."""


@pytest.mark.duckdb
@pytest.mark.sqlite
@pytest.mark.file
@pytest.mark.parametrize(
    ("phase", "after"),
    [("artifacts", 1), ("rows points", 10), ("rows docs", 2), ("rows outputs__line", 20)],
)
def test_interrupted_table_copy_resumes_to_the_same_result(
    tmp_path: Path, phase: str, after: int
) -> None:
    """Ordered tables continue after the rows present; ``docs`` (a bytes column) restarts."""
    src = pinnacle()
    _populate(src)
    dst = pinnacle(**_dst_args(tmp_path / "dst"))

    def stop(name: str, done: int, total: int) -> None:
        if name == phase and done >= after:
            raise _Stop(f"{name} {done}/{total}")

    with pytest.raises(_Stop):
        src.copy_to(dst, tables=TABLES, batch_size=3, progress=stop)
    report = src.copy_to(dst, tables=TABLES, batch_size=3)
    assert sum(report.rows_copied.values()) <= 65
    assert_same(src, dst, TABLES)
    assert src.copy_to(dst, tables=TABLES).rows_copied == dict.fromkeys(TABLES, 0)
    src.close()
    dst.close()
