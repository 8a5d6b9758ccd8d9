"""A deployment remembers where its artifacts are (issue 15, item 13).

Each test applies a model from one working directory and loads it from another, with
``pinnacle(URI)`` on a real database that holds data and metadata (an absolute SQLite file, a
PostgreSQL database) and the artifact store left to the default
``filesystem://.pinnacledb/artifacts/`` (relative to the working directory).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pinnacle_protocols.errors import ArtifactNotFound, ConfigError
from pinnacledb import LinearModel, pinnacle
from pinnacledb.base._artifact_home import ARTIFACT_STORE_KEY
from pinnacledb.cli import main


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def metadata_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A metadata store whose location does not depend on the working directory."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path}/shared/metadata.db"
    else:
        yield request.getfixturevalue("pg_uri")


def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    return first, second


def _apply(metadata_uri: str) -> int | None:
    db = pinnacle(metadata_uri)
    rec = db.apply(LinearModel.fit("m", [[1.0], [2.0]], [1.0, 2.0]))
    db.close()
    return rec.version


def test_model_applied_in_one_directory_loads_from_another(
    metadata_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _dirs(tmp_path)
    monkeypatch.chdir(first)
    _apply(metadata_uri)
    assert (first / ".pinnacledb" / "artifacts").is_dir()
    monkeypatch.chdir(second)
    db = pinnacle(metadata_uri)
    model = db.load("model", "m")
    assert isinstance(model, LinearModel)
    assert str(db.slots["artifact_store"].uri) == f"filesystem://{first}/.pinnacledb/artifacts/"
    assert db.metadata.get_metadata(ARTIFACT_STORE_KEY) == {
        "uri": f"filesystem://{first}/.pinnacledb/artifacts/",
        "masked": False,
    }
    db.close()
    assert not (second / ".pinnacledb" / "artifacts").exists()


def test_explicit_artifact_store_that_disagrees_is_a_config_error(
    metadata_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _dirs(tmp_path)
    monkeypatch.chdir(first)
    _apply(metadata_uri)
    elsewhere = f"filesystem://{second}/arts/"
    db = pinnacle(metadata_uri, artifact_store=elsewhere)
    with pytest.raises(ConfigError) as wrong:
        db.load("model", "m")
    text = str(wrong.value)
    assert f"the artifact store {elsewhere} (from argument) is not this deployment's" in text
    assert f"recorded at filesystem://{first}/.pinnacledb/artifacts/" in text
    assert "relocate_artifacts=True (CLI: --relocate-artifacts)" in text
    with pytest.raises(ConfigError):  # still refused on the next access
        _ = db.artifact_store
    db.close()
    # the same location spelt relatively from its own directory agrees with the record
    ok = pinnacle(metadata_uri, artifact_store="file://.pinnacledb/artifacts/")
    assert ok.load("model", "m").version == 0
    ok.close()


def test_relocating_records_the_new_location(
    metadata_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    first, second = _dirs(tmp_path)
    monkeypatch.chdir(first)
    _apply(metadata_uri)
    shutil.copytree(first / ".pinnacledb" / "artifacts", second / "moved")
    moved = f"filesystem://{second}/moved/"
    db = pinnacle(metadata_uri, artifact_store=moved, relocate_artifacts=True)
    assert db.load("model", "m").version == 0
    db.close()
    shutil.rmtree(first / ".pinnacledb")
    monkeypatch.chdir(tmp_path)
    again = pinnacle(metadata_uri)  # the default now finds `moved`
    assert again.load("model", "m").version == 0
    assert str(again.slots["artifact_store"].uri) == moved
    again.close()


def test_cli_relocate_flag_and_error(
    metadata_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = _dirs(tmp_path)
    monkeypatch.chdir(first)
    _apply(metadata_uri)
    stores = ["--databackend", metadata_uri]
    monkeypatch.chdir(second)
    assert main(["gc", "--dry-run", *stores, "--artifact-store", "filesystem://x/"]) == 2
    assert "--relocate-artifacts" in capsys.readouterr().err
    code = main(["gc", "--dry-run", *stores, "--artifact-store", "filesystem://x/",
                 "--relocate-artifacts"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    db = pinnacle(metadata_uri)
    assert db.metadata.get_metadata(ARTIFACT_STORE_KEY) == {
        "uri": f"filesystem://{second}/x/",
        "masked": False,
    }
    db.close()


def test_not_found_names_the_resolved_location(
    metadata_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    first, _ = _dirs(tmp_path)
    monkeypatch.chdir(first)
    _apply(metadata_uri)
    shutil.rmtree(first / ".pinnacledb" / "artifacts")
    monkeypatch.chdir(tmp_path)
    db = pinnacle(metadata_uri)
    with pytest.raises(ArtifactNotFound) as missing:
        db.load("model", "m")
    assert f"{first}/.pinnacledb/artifacts" in str(missing.value)
    db.close()


@pytest.mark.sqlite
def test_embedded_default_records_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative metadata moves with its directory: no absolute artifact path is pinned."""
    db = pinnacle("sqlite://.pinnacledb/data.db")
    assert str(db.slots["artifact_store"].uri) == "filesystem://.pinnacledb/artifacts/"
    db.apply(LinearModel.fit("m", [[1.0], [2.0]], [1.0, 2.0]))
    assert db.metadata.get_metadata(ARTIFACT_STORE_KEY) is None
    db.close()
    (tmp_path / "project").mkdir()
    (tmp_path / ".pinnacledb").rename(tmp_path / "project" / ".pinnacledb")
    monkeypatch.chdir(tmp_path / "project")
    moved = pinnacle("sqlite://.pinnacledb/data.db")
    assert moved.load("model", "m").version == 0
    moved.close()


def test_describe_location_names_the_directory_of_relative_paths(tmp_path: Path) -> None:
    from pinnacledb.base._artifact_home import describe_location

    assert describe_location("sqlite://m.db") == f"sqlite://m.db (= {tmp_path}/m.db)"
    assert describe_location("filesystem://a/") == f"filesystem://a/ (= {tmp_path}/a)"
    assert describe_location(f"sqlite://{tmp_path}/m.db") == f"sqlite://{tmp_path}/m.db"
    assert describe_location("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert describe_location("memory://") == "memory://"
