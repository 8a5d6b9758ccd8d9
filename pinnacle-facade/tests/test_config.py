"""Configuration precedence, config files, bad configuration, and CFG immutability."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from pinnacle_protocols.errors import ConfigError, InvalidURIError
from pinnacledb import CFG, pinnacle
from pinnacledb._config import resolve_config

ENV = {
    "databackend": "PINNACLEDB_DATABACKEND",
    "metadata": "PINNACLEDB_METADATA",
    "artifact_store": "PINNACLEDB_ARTIFACT_STORE",
}
ARG = {
    "databackend": "databackend",
    "metadata": "metadata_store",
    "artifact_store": "artifact_store",
}


def _uris(db: object) -> dict[str, str]:
    return {role: str(slot.uri) for role, slot in db.slots.items()}  # type: ignore[attr-defined]


@pytest.mark.parametrize("key", ["databackend", "metadata", "artifact_store"])
def test_precedence_explicit_cfg_env_file_default(
    key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every level sets a distinct memory:// label; remove levels from the top down
    (tmp_path / "pinnacledb.toml").write_text(f'{key} = "memory://file"\n')
    monkeypatch.setenv(ENV[key], "memory://env")
    setattr(CFG, key, "memory://cfg")
    base: dict[str, Any] = {} if key == "databackend" else {"databackend": "memory://"}
    explicit: dict[str, Any] = {ARG[key]: "memory://arg"}

    assert _uris(pinnacle(**base, **explicit))[key] == "memory://arg"
    assert _uris(pinnacle(**base))[key] == "memory://cfg"
    setattr(CFG, key, None)
    assert _uris(pinnacle(**base))[key] == "memory://env"
    monkeypatch.delenv(ENV[key])
    assert _uris(pinnacle(**base))[key] == "memory://file"
    (tmp_path / "pinnacledb.toml").unlink()
    default = _uris(pinnacle(**base))[key]
    assert default != "memory://file"


def test_sources_are_reported() -> None:
    CFG.metadata = "memory://cfg"
    db = pinnacle("memory://")
    assert db.config is not None
    sources = db.config.sources()
    assert sources["databackend"] == "argument"
    assert sources["metadata"] == "CFG.metadata"
    assert sources["artifact_store"].startswith("default")


def test_pyproject_tool_section(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.pinnacledb]\ndatabackend = "memory://pyproject"\n'
    )
    assert _uris(pinnacle())["databackend"] == "memory://pyproject"


def test_pinnacledb_toml_wins_over_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.pinnacledb]\ndatabackend = "memory://py"\n')
    (tmp_path / "pinnacledb.toml").write_text('databackend = "memory://toml"\n')
    assert _uris(pinnacle())["databackend"] == "memory://toml"


def test_pyproject_without_section_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert _uris(pinnacle())["databackend"] == "duckdb://.pinnacledb/data.duckdb"


def test_unknown_env_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINNACLEDB_DATABASE", "memory://")
    with pytest.raises(ConfigError, match="PINNACLEDB_DATABASE"):
        pinnacle()


def test_unknown_file_key_is_named(tmp_path: Path) -> None:
    (tmp_path / "pinnacledb.toml").write_text('databackend = "memory://"\nmetdata = "memory://"\n')
    with pytest.raises(ConfigError, match="'metdata'"):
        pinnacle()


def test_unknown_pyproject_key_is_named(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.pinnacledb]\nartifacts = "memory://"\n')
    with pytest.raises(ConfigError, match=r"\[tool.pinnacledb\].*'artifacts'"):
        pinnacle()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("databackend = 5\n", "databackend"),
        ('metadata = ["memory://"]\n', "metadata"),
        ("trust_serializers = 1\n", "trust_serializers"),
        ('gc_grace_seconds = "soon"\n', "gc_grace_seconds"),
        ("gc_grace_seconds = -1\n", "gc_grace_seconds"),
    ],
)
def test_wrong_type_in_file_is_named(tmp_path: Path, text: str, key: str) -> None:
    (tmp_path / "pinnacledb.toml").write_text(text)
    with pytest.raises(ConfigError, match=f"'{key}'"):
        pinnacle("memory://")


def test_wrong_value_in_env_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINNACLEDB_GC_GRACE_SECONDS", "an hour")
    with pytest.raises(ConfigError, match="PINNACLEDB_GC_GRACE_SECONDS"):
        pinnacle("memory://")
    monkeypatch.setenv("PINNACLEDB_GC_GRACE_SECONDS", "60")
    assert pinnacle("memory://").gc_grace_seconds == 60.0


def test_empty_env_uri_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINNACLEDB_METADATA", "  ")
    with pytest.raises(ConfigError, match="PINNACLEDB_METADATA"):
        pinnacle("memory://")


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "pinnacledb.toml").write_text("databackend = \n")
    with pytest.raises(ConfigError, match=r"pinnacledb\.toml"):
        pinnacle()


def test_bad_uri_is_an_error_at_pinnacle_time() -> None:
    with pytest.raises(InvalidURIError):
        pinnacle("not a uri")


def test_bad_configuration_is_not_read_at_import(tmp_path: Path) -> None:
    (tmp_path / "pinnacledb.toml").write_text("bogus = 1\n")
    # A minimal environment, but one that can still import the workspace: PYTHONPATH carries
    # the sources when tests run from them (Pants exports it; see pinnacle_pants_plugin).
    env = {"PATH": "/usr/bin:/bin", "PINNACLEDB_NOPE": "x"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    code = "import pinnacledb\nfrom pinnacledb import pinnacle, CFG\nprint('imported')"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "imported" in out.stdout
    code += "\npinnacle()"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert out.returncode != 0
    assert "PINNACLEDB_NOPE" in out.stderr


def test_pinnacle_never_mutates_cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pinnacledb.toml").write_text('artifact_store = "memory://file"\n')
    monkeypatch.setenv("PINNACLEDB_METADATA", "memory://env")
    CFG.trust_serializers = frozenset({"pickle"})
    before = attrs.asdict(CFG)
    pinnacle("memory://", gc_grace_seconds=5)
    pinnacle()
    assert attrs.asdict(CFG) == before
    assert CFG.databackend is None


def test_two_datalayers_with_different_stores_coexist() -> None:
    a = pinnacle("memory://a")
    b = pinnacle("memory://b")
    a.create_table("t", {"x": "int"})
    assert a.list_tables() == ["t"]
    assert b.list_tables() == []


def test_cfg_rejects_wrong_types_in_code() -> None:
    with pytest.raises(ConfigError, match=r"CFG\.databackend"):
        CFG.databackend = 3  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="trust_serializers"):
        CFG.trust_serializers = 5  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="gc_grace_seconds"):
        CFG.gc_grace_seconds = -2
    CFG.trust_serializers = "pickle, dill"  # type: ignore[assignment]
    assert CFG.trust_serializers == frozenset({"pickle", "dill"})


def test_trust_precedence_and_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pinnacledb.toml").write_text('trust_serializers = ["dill"]\n')
    assert pinnacle("memory://").trusted_serializers == {"dill"}
    monkeypatch.setenv("PINNACLEDB_TRUST_SERIALIZERS", "pickle,cloudpickle")
    assert pinnacle("memory://").trusted_serializers == {"pickle", "cloudpickle"}
    CFG.trust_serializers = frozenset()
    assert pinnacle("memory://").trusted_serializers == frozenset()
    assert pinnacle("memory://", trust_serializers={"pickle"}).trusted_serializers == {"pickle"}


def test_unknown_trusted_serializer_is_an_error() -> None:
    with pytest.raises(ConfigError, match="pikle"):
        pinnacle("memory://", trust_serializers={"pikle"})


def test_resolve_config_without_anything_is_all_default(tmp_path: Path) -> None:
    resolved = resolve_config({}, environ={}, cwd=tmp_path)
    assert all(source == "default" for source in resolved.sources().values())
