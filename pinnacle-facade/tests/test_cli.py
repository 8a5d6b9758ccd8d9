"""The ``pinnacle`` command line."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pinnacledb import LinearModel, pinnacle
from pinnacledb.cli import main

LOCAL = [
    "--databackend",
    "memory://",
    "--metadata",
    "sqlite://.pinnacledb/metadata.db",
    "--artifact-store",
    "filesystem://.pinnacledb/artifacts/",
]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _apply_two_versions() -> None:
    db = pinnacle(
        "memory://",
        metadata_store="sqlite://.pinnacledb/metadata.db",
        artifact_store="filesystem://.pinnacledb/artifacts/",
    )
    db.apply(LinearModel.fit("m", [[1.0], [2.0]], [1.0, 2.0]))
    db.apply(LinearModel.fit("m", [[1.0], [2.0]], [3.0, 2.0]))
    db.close()


def test_info_shows_stores_sources_and_versions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "info", *LOCAL)
    assert code == 0
    assert "sqlite://.pinnacledb/metadata.db" in out
    assert "pinnacle_sql.SQLAlchemyMetadataStore (pinnacle-sql" in out
    assert "from argument" in out
    assert "pinnacledb 0.1.0" in out
    assert "installed schemes" in out


def test_info_uses_the_configuration(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINNACLEDB_DATABACKEND", "memory://from-env")
    code, out, _ = _run(capsys, "info")
    assert code == 0
    assert "memory://from-env" in out
    assert "environment PINNACLEDB_DATABACKEND" in out


def test_options_work_before_and_after_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--databackend", "memory://before", "info")
    assert code == 0
    assert "memory://before" in out


def test_doctor_passes_on_working_stores(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "doctor", *LOCAL)
    assert code == 0, out
    assert out.count("ok ") == 5
    assert "schema at head" in out
    assert "all checks passed" in out


def _blob(ref_sha: str) -> Path:
    return Path(".pinnacledb/artifacts") / ref_sha[:2] / ref_sha


def test_doctor_deep_finds_each_planted_corruption(capsys: pytest.CaptureFixture[str]) -> None:
    """Flipped, truncated and deleted blobs and a malformed record: each reported, exit 1."""
    db = pinnacle(
        "memory://",
        metadata_store="sqlite://.pinnacledb/metadata.db",
        artifact_store="filesystem://.pinnacledb/artifacts/",
    )
    shas = {}
    for i, name in enumerate(["flipped", "truncated", "deleted", "intact", "malformed"]):
        rec = db.apply(LinearModel.fit(name, [[1.0], [2.0]], [1.0, 2.0 + i]))
        shas[name] = rec.artifacts["weights"].sha256
    db.close()
    code, out, err = _run(capsys, "doctor", "--deep", *LOCAL)
    assert code == 0, out
    assert "5 records parsed, 5 referenced artifacts hashed" in out
    assert "0 problem(s)" in out

    path = _blob(shas["flipped"])
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    path = _blob(shas["truncated"])
    path.write_bytes(path.read_bytes()[:-3])
    _blob(shas["deleted"]).unlink()
    with sqlite3.connect(".pinnacledb/metadata.db") as con:
        con.execute(
            "UPDATE _pinnacle_components SET record = ? WHERE identifier = ?",
            ('{"type_id": "model"}', "malformed"),
        )
    code, out, err = _run(capsys, "doctor", *LOCAL)
    assert code == 0, "the shallow doctor only probes the stores"
    code, out, err = _run(capsys, "doctor", "--deep", *LOCAL)
    assert code == 1, out
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert any("corrupt" in f and shas["flipped"] in f and "'flipped' v0" in f for f in fails)
    assert any("truncated" in f and shas["truncated"] in f for f in fails), out
    assert any("missing" in f and shas["deleted"] in f for f in fails), out
    assert any("malformed" in f and "'malformed' v0" in f for f in fails), out
    assert not any(shas["intact"] in f for f in fails)
    assert "4 problem(s)" in out
    assert "hint: re-applying" in out
    # stderr is not a terminal here: one plain line per bar change, no carriage returns
    assert "\r" not in err
    assert "blobs" in err
    assert "records" in err


@pytest.mark.duckdb
@pytest.mark.sqlite
def test_doctor_passes_on_the_embedded_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "doctor")
    assert code == 0, out


@pytest.mark.postgres
def test_doctor_fails_clearly_on_an_unreachable_store(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "doctor", *LOCAL[:2], "--metadata", "postgresql://u@127.0.0.1:1/x")
    assert code == 1
    assert "FAIL  metadata" in out
    assert "BackendUnavailable" in out
    assert "1 check(s) failed" in out
    assert "skip  metadata" in out


def test_show(capsys: pytest.CaptureFixture[str]) -> None:
    _apply_two_versions()
    code, out, _ = _run(capsys, "show", *LOCAL)
    assert code == 0
    assert "model" in out
    assert "versions [0, 1]" in out
    assert _run(capsys, "show", "model", *LOCAL)[1].split() == ["m"]
    code, out, _ = _run(capsys, "show", "model", "m", *LOCAL)
    assert out.startswith("v0")
    assert "weights=" in out


def test_show_empty(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "show", *LOCAL)
    assert code == 0
    assert "no components" in out


def test_migrate(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "migrate", *LOCAL)
    assert code == 0
    assert "sqlite://.pinnacledb/metadata.db: schema" in out
    code, _, _ = _run(capsys, "migrate", *LOCAL)
    assert code == 0


def test_gc_dry_run_then_gc_with_progress(capsys: pytest.CaptureFixture[str]) -> None:
    _apply_two_versions()
    db = pinnacle(
        "memory://",
        metadata_store="sqlite://.pinnacledb/metadata.db",
        artifact_store="filesystem://.pinnacledb/artifacts/",
    )
    db.remove("model", "m", 0)
    db.close()
    code, out, err = _run(capsys, "gc", "--dry-run", "--grace", "0", *LOCAL)
    assert code == 0
    assert "would delete" in out
    assert "scanning  2/2 (100%)\n" in err
    assert "\r" not in err, "stderr is not a terminal: plain lines, no \\r frames"
    code, out, err = _run(capsys, "gc", "--grace", "3600", *LOCAL)
    assert "1 unreferenced but within the grace period" in out
    assert "deleted 0" in out
    code, out, err = _run(capsys, "gc", "--grace", "0", *LOCAL)
    assert code == 0
    assert "deleted 1" in out
    assert "deleting" in err


def test_gc_reports_removed_temp_files(capsys: pytest.CaptureFixture[str]) -> None:
    _apply_two_versions()
    part = Path(".pinnacledb/artifacts/.pinnacle-tmp") / ("a" * 32 + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"left by a killed put")
    os.utime(part, (1_000_000_000, 1_000_000_000))
    code, out, _ = _run(capsys, "gc", "--dry-run", *LOCAL)
    assert code == 0
    assert "would delete 1 temp file(s)" in out
    assert part.exists()
    code, out, _ = _run(capsys, "gc", *LOCAL)
    assert "deleted 1 temp file(s)" in out
    assert not part.exists()


def test_configuration_errors_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINNACLEDB_BOGUS", "1")
    code, _, err = _run(capsys, "info")
    assert code == 2
    assert "PINNACLEDB_BOGUS" in err
    monkeypatch.delenv("PINNACLEDB_BOGUS")
    code, _, err = _run(capsys, "info", "--databackend", "nosuch://x")
    assert code == 2
    assert "UnknownSchemeError" in err


def test_console_script_is_installed(tmp_path: Path) -> None:
    exe = shutil.which("pinnacle", path=str(Path(sys.executable).parent))
    assert exe is not None
    out = subprocess.run(
        [exe, "--version"], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "pinnacledb 0.1.0"


@pytest.mark.slow
@pytest.mark.duckdb
@pytest.mark.sqlite
def test_demo_on_the_embedded_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PINNACLEDB_")}
    exe = str(Path(sys.executable).parent / "pinnacle")
    first = subprocess.run(
        [exe, "demo"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
        check=False,
    )
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert "inserted 150 rows of Fisher's Iris" in out
    assert "new version v0" in out
    assert "applying it again unchanged returns v0" in out
    assert "a fresh process (pid" in out
    assert "predicted 150 rows into 'outputs__iris_petal_width'" in out
    assert ": success," in out
    assert "applied as v1" in out
    assert "duckdb://.pinnacledb/data.duckdb" in out
    assert "table outputs__iris_petal_width    150 rows" in out
    assert "6. listen  listener 'iris-petal-width__iris' v0" in out
    assert "inserted rows [1000, 1001]; their predictions appeared" in out
    assert "predicted petal_width is now" in out
    assert "deleted both rows: 0 of their outputs remain" in out
    assert (tmp_path / ".pinnacledb" / "data.duckdb").is_file()
    # what the demo reports is really there, seen from this process
    db = pinnacle()
    assert db.show("model", "iris-petal-width") == [0, 1]
    assert db.count("iris") == 150
    (job,) = db.show_jobs("predict")
    assert job.status.value == "success"
    db.close()
    again = subprocess.run(
        [exe, "demo"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already holds 150 rows" in again.stdout


def test_demo_on_memory_stores_runs_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "demo", "--databackend", "memory://")
    assert code == 0, out
    assert "this process (memory:// stores cannot be shared" in out
    assert "versions of 'iris-petal-width': [0, 1]" in out
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if "inserted rows [1000, 1001]" in line)
    before = float(lines[first + 1].rsplit(" ", 1)[1])
    after = float(lines[first + 3].rsplit(" ", 1)[1])
    assert lines[first + 1].startswith("           id 1000")
    assert before != after  # the update changed the prediction


def test_listen_catches_up_once_and_following_by_polling(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pinnacledb import Listener

    db = pinnacle(
        "sqlite://data.db",
        metadata_store="sqlite://.pinnacledb/metadata.db",
        artifact_store="filesystem://.pinnacledb/artifacts/",
    )
    db.create_table("t", {"id": "int", "x": "float"})
    db.apply(
        Listener(model=LinearModel.fit("m", [[1.0], [2.0]], [1.0, 2.0]), table="t", inputs="x")
    )
    db.databackend.insert("t", [{"id": 1, "x": 1.0}, {"id": 2, "x": 2.0}])  # bypasses db
    db.close()
    stores = [
        "--databackend",
        "sqlite://data.db",
        "--metadata",
        "sqlite://.pinnacledb/metadata.db",
        "--artifact-store",
        "filesystem://.pinnacledb/artifacts/",
    ]
    code, out, _ = _run(capsys, "listen", *stores)
    assert code == 0, out
    assert "m__t: computed 2, recomputed 0, removed 0, failed 0" in out
    code, out, _ = _run(
        capsys, "listen", "m__t", "--follow", "--interval", "0.01", "--rounds", "2", *stores
    )
    assert code == 0, out
    assert "by polling every 0.01 s" in out
    assert out.count("m__t: computed 0, recomputed 0, removed 0, failed 0") == 2


def _without_ibis(monkeypatch: pytest.MonkeyPatch, *, also: tuple[str, ...] = ()) -> None:
    """The installed entry points minus pinnacle-ibis's and the databackend schemes ``also``
    (the real test of an environment without ibis is tests-integration/test_install_alone.py,
    in a fresh venv)."""
    from pinnacledb._registry import GROUPS, StoreRegistry

    real = StoreRegistry.from_entry_points()
    kept = {
        role: {
            s: [
                e
                for e in real._entries[role][s]
                if e.distribution != "pinnacle-ibis" and not (role == "databackend" and s in also)
            ]
            for s in real.schemes(role)
        }
        for role in GROUPS
    }
    only = StoreRegistry({role: {s: es for s, es in m.items() if es} for role, m in kept.items()})
    monkeypatch.setattr(StoreRegistry, "from_entry_points", classmethod(lambda cls: only))


@pytest.mark.sqlite
@pytest.mark.file
def test_demo_without_the_embedded_databackend_runs_on_sqlite(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Only pinnacle-sql + pinnacle-fs: data and metadata on SQLite, file artifacts."""
    _without_ibis(monkeypatch)
    code, out, err = _run(capsys, "demo")
    assert code == 0, err
    assert "the embedded default's (duckdb://.pinnacledb/data.duckdb) is not installed" in out
    data_uri = "sqlalchemy+sqlite://.pinnacledb/data.db"
    assert f"keeps its table data on SQLite at {data_uri}" in out
    assert f"databackend={data_uri}  (pinnacle_sql.SQLAlchemyDataBackend)" in out
    assert "metadata=sqlite://.pinnacledb/metadata.db  (pinnacle_sql." in out
    assert "artifact_store=filesystem://.pinnacledb/artifacts/  (pinnacle_fs." in out
    assert "a fresh process (pid" in out
    assert "predicted 150 rows into 'outputs__iris_petal_width'" in out
    assert f"databackend     {data_uri}" in out
    assert "table outputs__iris_petal_width    150 rows" in out
    assert "6. listen  listener 'iris-petal-width__iris' v0" in out
    assert "inserted rows [1000, 1001]; their predictions appeared" in out
    assert "predicted petal_width is now" in out
    assert "deleted both rows: 0 of their outputs remain" in out
    assert (tmp_path / ".pinnacledb" / "data.db").is_file()
    assert (tmp_path / ".pinnacledb" / "metadata.db").is_file()
    # the rows really are in the SQLite file, seen by another connection
    con = sqlite3.connect(tmp_path / ".pinnacledb" / "data.db")
    try:
        assert con.execute("SELECT COUNT(*) FROM iris").fetchone() == (150,)
        assert con.execute('SELECT COUNT(*) FROM "outputs__iris_petal_width"').fetchone() == (150,)
    finally:
        con.close()
    db = pinnacle(
        data_uri,
        metadata_store="sqlite://.pinnacledb/metadata.db",
        artifact_store="filesystem://.pinnacledb/artifacts/",
    )
    assert db.count("iris") == 150
    assert db.show("model", "iris-petal-width") == [0, 1]
    assert isinstance(db.load("model", "iris-petal-width"), LinearModel)
    db.close()
    # a second run finds its data again
    code, out, err = _run(capsys, "demo")
    assert code == 0, err
    assert "already holds 150 rows" in out


@pytest.mark.sqlite
@pytest.mark.file
def test_demo_without_any_persistent_databackend_keeps_data_in_memory(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Neither DuckDB nor pinnacle-sql's SQLite databackend: data in memory://, SQLite
    metadata, file artifacts."""
    _without_ibis(monkeypatch, also=("sqlalchemy+sqlite",))
    code, out, err = _run(capsys, "demo")
    assert code == 0, err
    assert "the embedded default's (duckdb://.pinnacledb/data.duckdb) is not installed" in out
    assert "table data in memory:// for this run only" in out
    assert "databackend=memory://  (pinnacle_protocols.memory.MemoryDataBackend)" in out
    assert "metadata=sqlite://.pinnacledb/metadata.db  (pinnacle_sql." in out
    assert "artifact_store=filesystem://.pinnacledb/artifacts/  (pinnacle_fs." in out
    assert "predicted 150 rows into 'outputs__iris_petal_width'" in out
    assert (tmp_path / ".pinnacledb" / "metadata.db").is_file()
    assert not (tmp_path / ".pinnacledb" / "data.db").exists()
    db = pinnacle(
        "memory://",
        metadata_store="sqlite://.pinnacledb/metadata.db",
        artifact_store="filesystem://.pinnacledb/artifacts/",
    )
    assert db.show("model", "iris-petal-width") == [0, 1]
    assert isinstance(db.load("model", "iris-petal-width"), LinearModel)
    db.close()


def test_demo_with_a_configured_but_missing_databackend_fails_clearly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No silent fallback when the user named the databackend."""
    _without_ibis(monkeypatch)
    monkeypatch.setenv("PINNACLEDB_DATABACKEND", "postgresql://u:s3cret@127.0.0.1:5432/test")
    code, out, err = _run(capsys, "demo")
    assert code == 2
    assert "UnknownSchemeError" in err
    assert "pinnacle-ibis[postgres]" in err
    assert "s3cret" not in out + err
    assert not (tmp_path / ".pinnacledb").exists()


# ------------------------------------------------ only pinnacle-sql + pinnacle-fs (issue 15, 12)
@pytest.mark.sqlite
@pytest.mark.file
def test_embedded_default_without_ibis_falls_back_to_sqlite(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``pinnacle()`` with pinnacle-ibis absent: SQLite data through pinnacle-sql, as the demo."""
    from pinnacledb._wiring import EMBEDDED_FALLBACK_DATABACKEND, EMBEDDED_FALLBACK_SOURCE

    _without_ibis(monkeypatch)
    db = pinnacle()
    assert str(db.slots["databackend"].uri) == EMBEDDED_FALLBACK_DATABACKEND
    assert db.slots["databackend"].class_path.endswith("SQLAlchemyDataBackend")
    assert str(db.slots["metadata"].uri) == "sqlite://.pinnacledb/metadata.db"
    assert db.config is not None
    assert db.config.databackend.source == EMBEDDED_FALLBACK_SOURCE
    db.create_table("t", {"id": "int"})
    db.insert("t", [{"id": 1}, {"id": 2}])
    db.apply(LinearModel.fit("m", [[1.0], [2.0]], [1.0, 2.0]))
    db.close()
    con = sqlite3.connect(tmp_path / ".pinnacledb" / "data.db")
    try:
        assert con.execute("SELECT COUNT(*) FROM t").fetchone() == (2,)
    finally:
        con.close()
    again = pinnacle()
    assert again.count("t") == 2
    assert again.load("model", "m").version == 0
    again.close()


@pytest.mark.sqlite
@pytest.mark.file
def test_sqlite_uri_without_ibis_is_served_by_pinnacle_sql(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The specification's ``pinnacle("sqlite://my.db")`` works with only pinnacle-sql."""
    _without_ibis(monkeypatch)
    db = pinnacle("sqlite://my.db")
    assert {role: str(slot.uri) for role, slot in db.slots.items()} == {
        "databackend": "sqlite://my.db",
        "metadata": "sqlite://my.db",
        "artifact_store": "filesystem://.pinnacledb/artifacts/",
    }
    assert db.slots["databackend"].class_path.endswith("SQLAlchemyDataBackend")
    assert db.config is not None
    source = db.config.databackend.source
    assert source.startswith("argument; sqlite:// served by pinnacle-sql's"), source
    db.create_table("docs", {"id": "int", "text": "str"})
    db.insert("docs", [{"id": 1, "text": "a"}])
    db.apply(LinearModel.fit("m", [[1.0], [2.0]], [1.0, 2.0]))
    db.close()
    assert (tmp_path / "my.db").is_file()
    again = pinnacle("sqlite://my.db")
    assert again.select("docs") == [{"id": 1, "text": "a"}]
    assert again.show("model") == ["m"]
    again.close()


@pytest.mark.sqlite
@pytest.mark.file
def test_info_without_ibis_says_which_databackend_it_chose(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pinnacledb._wiring import EMBEDDED_FALLBACK_SOURCE

    _without_ibis(monkeypatch)
    code, out, err = _run(capsys, "info")
    assert code == 0, out + err
    assert "databackend     sqlalchemy+sqlite://.pinnacledb/data.db" in out
    assert f"from {EMBEDDED_FALLBACK_SOURCE}" in out


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["--databackend", "nosuch://x"], 2, "UnknownSchemeError: no databackend is installed"),
        (["--metadata", "nosuch://x"], 2, "UnknownSchemeError: no metadata store is installed"),
        (["--databackend", "memory://", "--artifact-store", ""], 2, "InvalidURIError: empty"),
    ],
)
def test_info_reports_problems_instead_of_dying(
    capsys: pytest.CaptureFixture[str], argv: list[str], code: int, says: str
) -> None:
    got, out, err = _run(capsys, "info", *argv)
    assert got == code, out + err
    assert "pinnacledb 0.1.0" in out
    assert "stores          cannot be resolved" in out
    assert "installed schemes" in out
    assert err.startswith(f"error: {says}"), err


def test_info_reports_a_broken_config_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "pinnacledb.toml").write_text("databackend = [1, 2\n")
    code, out, err = _run(capsys, "info")
    assert code == 2, out + err
    assert "installed schemes" in out
    assert err.startswith("error: "), err
    assert "pinnacledb.toml" in err, err


# ------------------------------------------------ first-hour papercuts (issue 15, item 14)
def test_show_unknown_identifier_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    _apply_two_versions()
    code, out, err = _run(capsys, "show", "model", "nosuch", *LOCAL)
    assert code == 1
    assert out == ""
    assert (
        "ComponentNotFound: no model 'nosuch' in sqlite://.pinnacledb/metadata.db "
        f"(= {Path.cwd()}/.pinnacledb/metadata.db)"
    ) in err
    assert "model identifiers: m" in err
    code, out, err = _run(capsys, "show", "model", "mm", *LOCAL)
    assert code == 1
    assert "(did you mean 'm'?)" in err


def test_show_unknown_type_is_an_error_listing_known_types(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _apply_two_versions()
    code, out, err = _run(capsys, "show", "nosuchtype", *LOCAL)
    assert code == 1
    assert out == ""
    assert "unknown component type 'nosuchtype'" in err
    assert "known types: " in err
    for known in ("model", "table", "datatype"):
        assert known in err
    assert f"types stored in sqlite://.pinnacledb/metadata.db (= {Path.cwd()}/." in err
    code, _, err = _run(capsys, "show", "modle", *LOCAL)
    assert code == 1
    assert "(did you mean 'model'?)" in err


def test_show_known_type_without_components_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "show", "model", *LOCAL)
    assert code == 0, err
    assert out == (
        f"no model components in sqlite://.pinnacledb/metadata.db (= {Path.cwd()}/.pinnacledb/"
        "metadata.db)\n"
    )


def test_every_subcommand_help_has_a_description() -> None:
    from pinnacledb.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) >= {"info", "doctor", "show", "migrate", "gc", "copy", "demo"}
    for name, command in sub.choices.items():
        assert command.description, f"pinnacle {name} --help has no description"
        shown = " ".join(command.format_help().split())
        assert " ".join(command.description.split()) in shown


def test_readme_command_table_lists_every_subcommand() -> None:
    from pinnacledb.cli import build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("## Command line") :]
    listed = set(re.findall(r"^\| `pinnacle (\w+)", table, flags=re.M))
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert listed == set(sub.choices)


def test_unknown_scheme_suggests_the_closest_known_one(capsys: pytest.CaptureFixture[str]) -> None:
    from pinnacle_protocols.errors import UnknownSchemeError

    with pytest.raises(UnknownSchemeError, match=r"Did you mean `postgres://`\?"):
        pinnacle("postgress://u:pw@127.0.0.1/db")
    with pytest.raises(UnknownSchemeError, match=r"Did you mean `postgres://`\?"):
        pinnacle("postgres+psycopg://127.0.0.1/db")
    with pytest.raises(UnknownSchemeError, match=r"Did you mean `mongodb://`\?"):
        pinnacle("memory://", metadata_store="mongdb://127.0.0.1/db")
    with pytest.raises(UnknownSchemeError) as nothing_close:
        pinnacle("zzzz://x")
    assert "Did you mean" not in str(nothing_close.value)
    code, _, err = _run(capsys, "info", "--artifact-store", "filesytem://x")
    assert code == 2
    assert "Did you mean `filesystem://`?" in err


def test_demo_search_on_memory_stores(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "demo", "--search", "--databackend", "memory://")
    assert code == 0, out
    assert "+0.724  [account] How do I reset my password if I forgot it?" in out
    assert "[billing]" in out.split("where=")[1].split("5.")[0]
    assert "gone from the index" in out


def test_show_prints_stored_identifiers_terminal_safe(capsys: pytest.CaptureFixture[str]) -> None:
    """An identifier is data anyone with write access to the metadata store chose: an escape
    sequence in it must not reach the terminal (clear the screen, retitle the window, hide what
    was printed before it), and a newline in it must not forge a line of output."""
    hostile = "evil\x1b[2J\x1b]0;pwned\x07\rhidden\u202e\nmodel        forged"
    db = pinnacle(
        "memory://",
        metadata_store="sqlite://.pinnacledb/metadata.db",
        artifact_store="filesystem://.pinnacledb/artifacts/",
    )
    db.apply(LinearModel.fit(hostile, [[1.0], [2.0]], [1.0, 2.0]))
    db.close()
    for argv in (["show"], ["show", "model"]):
        code, out, _ = _run(capsys, *argv, *LOCAL)
        assert code == 0
        assert not any(c in out for c in "\x1b\x07\r\u202e"), out
        assert "evil\\x1b[2J\\x1b]0;pwned\\x07\\rhidden\\u202e\\nmodel        forged" in out
        assert len(out.splitlines()) == 1
    code, out, err = _run(capsys, "show", "model", hostile + "x", *LOCAL)
    assert code == 1
    assert "\x1b" not in err
    assert "\\x1b[2J" in err


def test_terminal_safe_keeps_text_and_a_progress_redraw() -> None:
    from pinnacledb._secrets import terminal_safe

    assert (
        terminal_safe("plain ünïcode 日本 line\n\tindented\n")
        == "plain ünïcode 日本 line\n\tindented\n"
    )
    assert terminal_safe("\rscanning [###...] 3/6") == "\rscanning [###...] 3/6"
    assert terminal_safe("a\rb\x9bc\x00") == "a\\rb\\x9bc\\x00"
