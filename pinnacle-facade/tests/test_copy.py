"""``pinnacle copy`` / ``db.copy_to``: between real deployments, resumable, conflicts, dry run."""

from __future__ import annotations

import itertools
import os
import random
import re
import select
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
from pinnacle_protocols.protocols import SupportsNativeCopy
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

    # a kill in the middle of a table: as soon as the progress output shows rows of it
    dst_dir = tmp_path / "mid-table"
    argv = argv_for(dst_dir)
    for _ in range(2):
        shown = _kill_on_progress(
            [sys.executable, "-c", _CHILD, *argv], env=env, cwd=tmp_path, phase="rows points"
        )
        print(f"mid-table: SIGKILL when the progress showed {shown!r}: {state(dst_dir)}")
    dst = pinnacle(**_dst_args(dst_dir))
    assert 0 < dst.count("points") < 20_000
    dst.close()
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
    src.close()
    dst.close()


def _kill_on_progress(
    cmd: list[str], *, env: dict[str, str], cwd: Path, phase: str, timeout: float = 300.0
) -> str:
    """Run ``cmd``; SIGKILL it once its progress output shows ``phase`` past where the run
    started (a resumed copy starts after the rows present) and before its total. Returns the
    progress text that was seen."""
    # A bar on a terminal, a plain "phase done/total (pct%)" line otherwise (stderr is a pipe).
    pattern = re.compile(rf"{re.escape(phase)} +(?:\[[#.]*\] )?(\d+)/(\d+)")
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], 0.2)
            if not ready:
                continue
            chunk = os.read(proc.stderr.fileno(), 1 << 16)
            if not chunk:
                break
            seen += chunk
            matches = list(pattern.finditer(seen.decode(errors="replace")))
            for match in matches:
                done, total = int(match.group(1)), int(match.group(2))
                if int(matches[0].group(1)) < done < total:
                    proc.send_signal(signal.SIGKILL)
                    return match.group(0)
        raise AssertionError(f"no {phase!r} progress before the end: {seen.decode()[-2000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()


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


# ---------------------------------------------------------------- MongoDB -> MongoDB, natively
def _wire(request: pytest.FixtureRequest, kind: str) -> Any:
    return request.getfixturevalue("mongoeco_server" if kind == "mongoeco" else "mongo_server")


def _pair(server: Any) -> tuple[Datalayer, Datalayer]:
    """Two MongoDB deployments (data, metadata and GridFS artifacts) on one wire server."""
    from pinnacle_mongo.testing import fresh_database_name

    return pinnacle(server.uri(fresh_database_name("cps"))), pinnacle(
        server.uri(fresh_database_name("cpd"))
    )


def _raw_documents(db: Datalayer, table: str) -> list[bytes]:
    """The collection's documents as BSON bytes, in ``_id`` order."""
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    coll = db.databackend.native_database().get_collection(  # type: ignore[attr-defined]
        table, codec_options=CodecOptions(document_class=RawBSONDocument)
    )
    return [d.raw for d in coll.find({}, sort=[("_id", 1)])]


def _loose_documents(n: int) -> list[dict[str, Any]]:
    """Documents no portable schema describes: BSON types, nested values, mixed ``_id`` types."""
    from datetime import UTC, datetime

    from bson import Binary, Int64, ObjectId

    base = datetime(2024, 5, 17, 12, 30, 15, 123000, tzinfo=UTC)
    docs: list[dict[str, Any]] = [
        {
            "_id": ObjectId(),
            "i32": i,
            "i64": Int64(i * 10**12),
            "when": base + timedelta(minutes=i),
            "raw": bytes([i % 256, 0, 255]),
            "uuid": Binary(uuid.UUID(int=i).bytes, 4),
            "nested": {"list": [i, "x", None, {"deep": i * 0.5}], "flag": i % 2 == 0},
        }
        for i in range(n)
    ]
    docs += [{"_id": "a string id", "v": 1}, {"_id": 12345, "v": [1, 2]}]
    return docs


MONGO_KINDS = [
    pytest.param("mongoeco", marks=pytest.mark.mongoeco, id="mongoeco"),
    pytest.param("nx27017", marks=pytest.mark.nx27017, id="nx27017"),
]


@pytest.mark.parametrize("kind", MONGO_KINDS)
def test_mongo_to_mongo_copies_documents_natively_in_batches(
    request: pytest.FixtureRequest, kind: str
) -> None:
    """Collections without a Schema too; documents byte-identical, ``_id`` kept; re-run no-op."""
    src, dst = _pair(_wire(request, kind))
    docs = _loose_documents(40)
    src.databackend.native_database()["loose"].insert_many(docs)  # type: ignore[attr-defined]
    src.create_table("points", {"id": "int", "x": "float", "at": "datetime", "doc": "json"})
    src.insert("points", [{"id": i, "x": i / 4, "doc": {"i": [i]}} for i in range(12)])
    seen: list[tuple[str, int]] = []

    def record(phase: str, done: int, total: int) -> None:
        seen.append((phase, done))

    plan = src.copy_to(dst, tables=["loose", "points"], dry_run=True).plan
    assert [(t.name, t.rows, t.state) for t in plan.tables] == [
        ("loose", 42, "new"),
        ("points", 12, "new"),
    ]
    assert dst.list_tables() == []
    report = src.copy_to(dst, tables=["loose", "points"], batch_size=7, progress=record)
    assert report.rows_copied == {"loose": 42, "points": 12}
    assert _raw_documents(dst, "loose") == _raw_documents(src, "loose")
    assert _raw_documents(dst, "points") == _raw_documents(src, "points")
    assert dst.databackend.table_schema("points") == src.databackend.table_schema("points")
    assert [d for p, d in seen if p == "rows loose"] == [0, 7, 14, 21, 28, 35, 42]
    assert [d for p, d in seen if p == "rows points"] == [0, 7, 12]
    assert src.copy_to(dst, tables=["loose", "points"]).rows_copied == {"loose": 0, "points": 0}
    assert _raw_documents(dst, "loose") == _raw_documents(src, "loose")
    src.close()
    dst.close()


@pytest.mark.parametrize("kind", MONGO_KINDS)
@pytest.mark.parametrize("after", [7, 21])
def test_interrupted_mongo_to_mongo_copy_resumes(
    request: pytest.FixtureRequest, kind: str, after: int
) -> None:
    src, dst = _pair(_wire(request, kind))
    src.databackend.native_database()["loose"].insert_many(  # type: ignore[attr-defined]
        _loose_documents(30)
    )

    def stop(name: str, done: int, total: int) -> None:
        if name == "rows loose" and done >= after:
            raise _Stop(f"{name} {done}/{total}")

    with pytest.raises(_Stop):
        src.copy_to(dst, tables=["loose"], batch_size=7, progress=stop)
    assert dst.count("loose") == after
    report = src.copy_to(dst, tables=["loose"], batch_size=5)
    assert report.rows_copied == {"loose": 32 - after}
    assert _raw_documents(dst, "loose") == _raw_documents(src, "loose")
    assert dst.metadata.get_metadata(progress_key(src, "loose")) == {"state": "done", "rows": 32}
    src.close()
    dst.close()


@pytest.mark.parametrize("kind", MONGO_KINDS)
def test_mongo_insert_skips_documents_already_there(
    request: pytest.FixtureRequest, kind: str
) -> None:
    """The writer of the native copy inserts what is missing and skips existing ``_id``."""
    src, dst = _pair(_wire(request, kind))
    backend = dst.databackend
    assert isinstance(backend, SupportsNativeCopy)
    target = dst.databackend.native_database()["t"]  # type: ignore[attr-defined]
    docs = [{"_id": i, "v": i} for i in range(10)]
    assert backend.insert_native("t", docs[2:4] + docs[6:7]) == 3
    assert backend.insert_native("t", docs) == 7
    assert backend.insert_native("t", docs) == 0
    assert list(target.find({}, sort=[("_id", 1)])) == docs
    src.close()
    dst.close()


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("mongoeco", marks=pytest.mark.mongoeco, id="mongoeco"),
        pytest.param(
            "nx27017",
            marks=[
                pytest.mark.nx27017,
                pytest.mark.notyet(
                    reason="nx-27017 cannot store Decimal128 ('Object of type Decimal128 is not "
                    "JSON serializable')",
                    raises=__import__("pymongo").errors.WriteError,
                ),
            ],
            id="nx27017",
        ),
    ],
)
def test_mongo_to_mongo_keeps_decimal128(request: pytest.FixtureRequest, kind: str) -> None:
    from bson import Decimal128

    src, dst = _pair(_wire(request, kind))
    coll = src.databackend.native_database()["money"]  # type: ignore[attr-defined]
    coll.insert_one({"_id": 1, "amount": Decimal128("12.30"), "tiny": Decimal128("1E-6143")})
    src.copy_to(dst, tables=["money"])
    assert _raw_documents(dst, "money") == _raw_documents(src, "money")
    got = dst.databackend.native_database()["money"].find_one({"_id": 1})  # type: ignore[attr-defined]
    assert got["amount"] == Decimal128("12.30")
    assert str(got["amount"]) == "12.30"
    src.close()
    dst.close()


# ---------------------------------------------------------------- streamed reads
def _typed_rows(n: int) -> list[dict[str, Any]]:
    """Rows with every non-plain column type; keys repeat (groups of 3) and some are NULL."""
    from datetime import UTC, datetime

    base = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    return [
        {
            "k": None if i % 17 == 0 else i // 3,
            "at": base + timedelta(seconds=i % 5),
            "tag": f"t{i % 4}",
            "doc": {"i": i, "l": [i, None]},
            "emb": [float(i), -0.5],
            "raw": bytes([i % 256]) * 3,
        }
        for i in range(n)
    ]


TYPED = {"k": "int", "at": "datetime", "tag": "str", "doc": "json", "emb": "vector", "raw": "bytes"}


@pytest.mark.duckdb
@pytest.mark.sqlite
@pytest.mark.file
def test_tables_of_every_column_type_are_read_and_written_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """datetime/json/vector/bytes columns: keyset pages of ``batch_size``, never the whole
    table (a recording wrapper around the real source's ``select``)."""
    src = pinnacle(
        f"duckdb://{tmp_path}/src.duckdb",
        metadata_store=f"sqlite://{tmp_path}/src.db",
        artifact_store=f"filesystem://{tmp_path}/src-art/",
    )
    src.create_table("events", TYPED)
    src.insert("events", _typed_rows(100))
    src.create_table("stamps", {"id": "int", "at": "datetime", "name": "str"})
    src.insert(
        "stamps",
        [{"id": i % 20, "at": r["at"], "name": r["tag"]} for i, r in enumerate(_typed_rows(50))],
    )
    dst = pinnacle(f"sqlite://{tmp_path}/dst.db", artifact_store=f"filesystem://{tmp_path}/art/")
    backend = src.databackend
    select = backend.select
    reads: list[tuple[Any, Any, int]] = []

    def recording_select(table: str, where: Any = None, **kw: Any) -> list[dict[str, Any]]:
        rows = select(table, where, **kw)
        reads.append((where, kw.get("limit"), len(rows)))
        return rows

    monkeypatch.setattr(backend, "select", recording_select)
    writes: dict[str, list[int]] = {"rows events": [], "rows stamps": []}

    def record(phase: str, done: int, total: int) -> None:
        if phase in writes:
            writes[phase].append(done)

    report = src.copy_to(dst, tables=["events", "stamps"], batch_size=7, progress=record)
    assert report.rows_copied == {"events": 100, "stamps": 50}
    assert reads, "the keyset reader did not go through select()"
    assert all(limit == 7 or "$or" not in (where or {}) for where, limit, _ in reads)
    assert max(n for _, _, n in reads) <= 7
    assert len(reads) >= 2 * (100 + 50) // 7
    for phase, total in (("rows events", 100), ("rows stamps", 50)):
        steps = [b - a for a, b in itertools.pairwise(writes[phase])]
        assert steps
        assert max(steps) <= 7
        assert writes[phase][-1] == total
        assert len(steps) >= total // 7
    monkeypatch.undo()
    for table in ("events", "stamps"):
        assert _sorted_rows(dst, table) == _sorted_rows(src, table)
    src.close()
    dst.close()


@pytest.mark.duckdb
@pytest.mark.sqlite
@pytest.mark.file
@pytest.mark.parametrize("after", [7, 28])
def test_interrupted_keyset_copy_continues_after_the_rows_present(
    tmp_path: Path, after: int
) -> None:
    """A datetime table (ordered, read by keyset pages) resumes where it stopped."""
    src = pinnacle(
        f"duckdb://{tmp_path}/src.duckdb",
        metadata_store=f"sqlite://{tmp_path}/src.db",
        artifact_store=f"filesystem://{tmp_path}/src-art/",
    )
    src.create_table("stamps", {"id": "int", "at": "datetime", "name": "str"})
    rows = [{"id": i % 20, "at": r["at"], "name": r["tag"]} for i, r in enumerate(_typed_rows(50))]
    src.insert("stamps", rows + rows[:5])  # identical rows too
    dst = pinnacle(**_dst_args(tmp_path / "dst"))

    def stop(name: str, done: int, total: int) -> None:
        if name == "rows stamps" and done >= after:
            raise _Stop(f"{name} {done}/{total}")

    with pytest.raises(_Stop):
        src.copy_to(dst, tables=["stamps"], batch_size=7, progress=stop)
    assert dst.count("stamps") == after
    report = src.copy_to(dst, tables=["stamps"], batch_size=4)
    assert report.rows_copied == {"stamps": 55 - after}
    assert _sorted_rows(dst, "stamps") == _sorted_rows(src, "stamps")
    src.close()
    dst.close()


@pytest.mark.nx27017
def test_mongo_source_is_read_with_one_cursor_in_batches(mongo_server: Any) -> None:
    from pinnacle_mongo.testing import fresh_database_name
    from pinnacledb.copy import read_batches

    src = pinnacle(mongo_server.uri(fresh_database_name("cpr")))
    src.create_table("events", TYPED)
    src.insert("events", _typed_rows(60))
    schema = src.databackend.table_schema("events")
    total, batches = read_batches(src.databackend, "events", schema=schema, batch_size=8)
    sizes = [len(b) for b in batches]
    assert total == 60
    assert sizes == [8] * 7 + [4]
    total, batches = read_batches(
        src.databackend, "events", schema=schema, skip=50, batch_size=8, keep_id=True
    )
    rest = [r for b in batches for r in b]
    everything = sorted(src.select("events"), key=lambda r: r["_id"])
    assert rest == everything[50:]
    assert [set(r) for r in rest] == [{"_id", *TYPED}] * 10
    src.close()
