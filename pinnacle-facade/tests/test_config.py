"""Configuration precedence, config files, bad configuration, and CFG immutability."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from pinnacle_protocols.errors import ConfigError, InvalidURIError
from pinnacle_protocols.memory import MemoryArtifactStore, MemoryDataBackend, MemoryMetadataStore
from pinnacledb import CFG, pinnacle
from pinnacledb._config import resolve_config
from pinnacledb.base.datalayer import Datalayer

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


# ------------------------------------------------ arguments are validated at the call (issue 15)
class _HalfStore:
    """Has some ArtifactStore methods, not all (a typo'd or incomplete store class)."""

    def put(self, data: bytes) -> None:
        """Not enough to be a store."""

    def get(self, ref: str) -> bytes:
        """Not enough to be a store."""
        return b""


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"databackend": 123}, r"databackend must be a URI string .*got int 123"),
        ({"databackend": object()}, r"databackend must be .*DataBackend Protocol.*got object"),
        ({"databackend": b"memory://"}, "databackend must be a URI string"),
        ({"artifact_store": 42}, r"artifact_store must be .*ArtifactStore Protocol.*got int"),
        ({"metadata_store": Path("x.db")}, r"metadata_store .*got a Path.*'sqlite://x.db'"),
        ({"artifact_store": _HalfStore()}, r"_HalfStore object given lacks .*delete.*exists"),
        ({"metadata_store": MemoryArtifactStore()}, r"lacks .*create_component"),
    ],
)
def test_store_arguments_must_be_uris_or_stores(kwargs: dict[str, object], match: str) -> None:
    """A store argument that is neither a URI nor satisfies its Protocol is refused at the call."""
    args = {"databackend": "memory://", **kwargs}
    databackend = args.pop("databackend")
    with pytest.raises(ConfigError, match=match):
        pinnacle(databackend, **args)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=match):
        Datalayer(
            databackend=MemoryDataBackend() if databackend == "memory://" else databackend,  # type: ignore[arg-type]
            metadata=args.get("metadata_store", MemoryMetadataStore()),  # type: ignore[arg-type]
            artifact_store=args.get("artifact_store", MemoryArtifactStore()),  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("bad", ["abc", "60", math.nan, math.inf, -1, -0.5, True, 10**400, [60]])
def test_gc_grace_seconds_is_a_finite_number_everywhere(
    bad: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """pinnacle(), CFG, Datalayer, db.gc() refuse what the config file refuses (NaN, inf, < 0)."""
    with pytest.raises(ConfigError, match="gc_grace_seconds must be a finite number"):
        pinnacle("memory://", gc_grace_seconds=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="gc_grace_seconds"):
        CFG.gc_grace_seconds = bad  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="gc_grace_seconds"):
        Datalayer(
            databackend=MemoryDataBackend(),
            metadata=MemoryMetadataStore(),
            artifact_store=MemoryArtifactStore(),
            gc_grace_seconds=bad,  # type: ignore[arg-type]
        )
    db = pinnacle("memory://")
    with pytest.raises(ConfigError, match="grace_seconds must be a finite number"):
        db.gc(grace_seconds=bad)  # type: ignore[arg-type]
    if isinstance(bad, (float, int)) and not isinstance(bad, bool) and abs(bad) < 1e300:
        monkeypatch.chdir(tmp_path)
        (tmp_path / "pinnacledb.toml").write_text(f"gc_grace_seconds = {float(bad)!r}\n")
        with pytest.raises(ConfigError, match="'gc_grace_seconds'"):
            pinnacle("memory://")
        monkeypatch.setenv("PINNACLEDB_GC_GRACE_SECONDS", str(bad))
        (tmp_path / "pinnacledb.toml").unlink()
        with pytest.raises(ConfigError, match="PINNACLEDB_GC_GRACE_SECONDS"):
            pinnacle("memory://")


@pytest.mark.parametrize("grace", ["-1", "nan", "inf", "abc", "-0.5"])
def test_cli_gc_grace_is_validated(grace: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``pinnacle gc --grace -1`` is a usage error (exit 2) saying what is expected."""
    from pinnacledb.cli import main

    stores = ["--databackend", "memory://", "--metadata", "memory://"]
    with pytest.raises(SystemExit) as info:
        main(["gc", *stores, "--artifact-store", "memory://", f"--grace={grace}", "--dry-run"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--grace" in err
    assert "number" in err
    assert main(["gc", *stores, "--artifact-store", "memory://", "--grace=0", "--dry-run"]) == 0
