"""The vector index upkeep settings (``vector_max_deltas``, ``vector_compact_min_rows``,
``vector_compact_fraction``, ``vector_fold_min_rows``): defaults, every level they come from,
validation, and that each one changes when a write compacts (or folds) the index.

Real in-memory reference stores and the real engines (``exact``; an installed approximate
engine for the fold).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
from attrs import define

from pinnacle_protocols.errors import ConfigError
from pinnacle_protocols.memory import MemoryArtifactStore, MemoryDataBackend, MemoryMetadataStore
from pinnacledb import CFG, Listener, Model, VectorIndex, pinnacle
from pinnacledb.base.datalayer import Datalayer
from pinnacledb.vector_search import Pointer
from pinnacledb.vectors import engine_names
from pinnacledb.vectors.tiered import TieredEngine

#: setting -> (its built-in default, two other good values, bad values)
SETTINGS: dict[str, tuple[Any, Any, Any, list[Any]]] = {
    "vector_max_deltas": (100, 7, 8, [0, -1, 2.5, True, "7", None]),
    "vector_compact_min_rows": (10_000, 50, 60, [0, -3, 1e3, False, "50"]),
    "vector_compact_fraction": (0.1, 0.25, 1, [0, 0.0, -0.1, 1.5, math.nan, math.inf, True, "0.2"]),
    "vector_fold_min_rows": (10_000, 20, 30, [0, -1, 10.0, True, "20"]),
}
#: The engine's name of each setting.
ENGINE_ATTR = {
    "vector_max_deltas": "max_deltas",
    "vector_compact_min_rows": "compact_min_rows",
    "vector_compact_fraction": "compact_fraction",
    "vector_fold_min_rows": "fold_min_rows",
}
ANN = [e for e in ("hnswlib", "usearch", "faiss") if e in engine_names()]


@define(kw_only=True)
class Line(Model):
    """A data-only model: x -> a 3-vector (never zero)."""

    component_name: ClassVar[str | None] = "test_settings_line"
    serializer: str = "json"

    def predict(self, inputs: Any) -> list[Any]:
        return [[math.cos(float(x)), math.sin(float(x)), float(x) / 10 + 0.5] for x in inputs]


def _db(**settings: Any) -> Datalayer:
    return pinnacle(
        MemoryDataBackend.from_uri("memory://"),
        metadata_store=MemoryMetadataStore.from_uri("memory://"),
        artifact_store=MemoryArtifactStore.from_uri("memory://"),
        components=[Line],
        **settings,
    )


def _indexed(db: Datalayer, n: int = 10, engine: str = "exact") -> Datalayer:
    db.create_table("t", {"id": "int", "x": "float"})
    db.insert("t", [{"id": i, "x": i * 0.37} for i in range(n)])
    listener = Listener(identifier="emb", model=Line(identifier="line"), table="t", inputs="x")
    db.apply(VectorIndex(identifier="idx", listener=listener, measure="l2", engine=engine))
    return db


def _insert(db: Datalayer, start: int, rows: int) -> None:
    db.insert("t", [{"id": start + i, "x": (start + i) / 7} for i in range(rows)])


def _pointer(db: Datalayer) -> Pointer:
    ptr = db._vectors.pointer("idx")
    assert ptr is not None
    return ptr


# ---------------------------------------------------------------------- defaults and levels
def test_defaults_are_unchanged() -> None:
    db = _db()
    for name, (default, *_others) in SETTINGS.items():
        assert getattr(db, name) == default, name
        assert getattr(db._vectors, ENGINE_ATTR[name]) == default, name
        assert db.config is not None
        assert getattr(db.config, name).source == "default"


@pytest.mark.parametrize("name", list(SETTINGS))
def test_each_level_sets_it(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Argument > CFG > environment > config file > default, as for every setting."""
    default, good, other, _bad = SETTINGS[name]

    def value(db: Datalayer) -> Any:
        assert getattr(db._vectors, ENGINE_ATTR[name]) == getattr(db, name)
        assert db.config is not None
        return getattr(db, name), getattr(db.config, name).source

    assert value(_db()) == (default, "default")
    (tmp_path / "pinnacledb.toml").write_text(f"{name} = {good!r}\n")
    got, source = value(_db())
    assert (got, source.startswith("config file")) == (good, True)
    (tmp_path / "pinnacledb.toml").unlink()
    (tmp_path / "pyproject.toml").write_text(f"[tool.pinnacledb]\n{name} = {good!r}\n")
    assert value(_db())[0] == good
    monkeypatch.setenv(f"PINNACLEDB_{name.upper()}", f" {other} ")
    assert value(_db()) == (other, f"environment PINNACLEDB_{name.upper()}")
    setattr(CFG, name, default)
    try:
        assert value(_db()) == (default, f"CFG.{name}")
        assert value(_db(**{name: good})) == (good, "argument")
    finally:
        setattr(CFG, name, None)


@pytest.mark.parametrize(
    ("name", "bad"),
    [(name, bad) for name, (*_good, bads) in SETTINGS.items() for bad in bads if bad is not None],
)
def test_a_bad_value_is_a_config_error_naming_the_setting_and_the_value(
    name: str, bad: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Named with the value and what to set instead: from the argument, CFG, the Datalayer,
    the environment and the config file."""
    expected = "a number in (0, 1]" if name.endswith("fraction") else "an int >= 1"
    pattern = f"must be {re.escape(expected)}.*got {re.escape(repr(bad))}; set "

    def raises(where: str) -> Any:
        return pytest.raises(ConfigError, match=f"^{where} {pattern}")

    with raises(name):
        _db(**{name: bad})
    with raises(rf"CFG\.{name}"):
        setattr(CFG, name, bad)
    with raises(name):
        Datalayer(
            databackend=MemoryDataBackend.from_uri("memory://"),
            metadata=MemoryMetadataStore.from_uri("memory://"),
            artifact_store=MemoryArtifactStore.from_uri("memory://"),
            **{name: bad},
        )
    if isinstance(bad, (int, float)) and not isinstance(bad, bool) and math.isfinite(bad):
        monkeypatch.setenv(f"PINNACLEDB_{name.upper()}", str(bad))
        env = f"PINNACLEDB_{name.upper()}: '{name}' must be {re.escape(expected)}.*got .*; set "
        with pytest.raises(ConfigError, match=env):
            _db()
        monkeypatch.delenv(f"PINNACLEDB_{name.upper()}")
        (tmp_path / "pinnacledb.toml").write_text(f"{name} = {bad!r}\n")
        with pytest.raises(ConfigError, match=rf"pinnacledb\.toml: key: '{name}' {pattern}"):
            _db()


# ---------------------------------------------------------------------- behaviour
def test_vector_max_deltas_decides_after_how_many_change_files_a_write_compacts() -> None:
    for max_deltas, compacted_at in ((2, 3), (None, None)):
        db = _indexed(_db() if max_deltas is None else _db(vector_max_deltas=max_deltas))
        base = _pointer(db).artifact
        for k in range(1, 4):
            _insert(db, 100 * k, 1)
            ptr = _pointer(db)
            if k == compacted_at:
                assert ptr.deltas == ()
                assert ptr.artifact != base, "the compaction stored a new base"
            else:
                assert len(ptr.deltas) == k
                assert ptr.artifact == base


@pytest.mark.parametrize("level", ["argument", "environment"])
def test_vector_compact_min_rows_decides_how_many_changed_ids_compact(
    level: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 rows: 4 more changed ids pass max(3, 10% of 14) but not the default 1,000."""
    if level == "environment":
        monkeypatch.setenv("PINNACLEDB_VECTOR_COMPACT_MIN_ROWS", "3")
        db = _indexed(_db())
    else:
        db = _indexed(_db(vector_compact_min_rows=3))
    base = _pointer(db).artifact
    _insert(db, 100, 4)
    assert _pointer(db).deltas == ()
    assert _pointer(db).artifact != base
    monkeypatch.delenv("PINNACLEDB_VECTOR_COMPACT_MIN_ROWS", raising=False)
    default = _indexed(_db())
    _insert(default, 100, 4)
    assert len(_pointer(default).deltas) == 1


def test_vector_compact_fraction_decides_which_share_of_the_index_compacts() -> None:
    """4 changed ids of 14 are more than max(1, 10% of 14) but not max(1, 50% of 14)."""
    small = _indexed(_db(vector_compact_min_rows=1))
    _insert(small, 100, 4)
    assert _pointer(small).deltas == ()
    large = _indexed(_db(vector_compact_min_rows=1, vector_compact_fraction=0.5))
    _insert(large, 100, 4)
    assert len(_pointer(large).deltas) == 1
    _insert(large, 200, 4)  # 8 of 18 ids: still under 9
    assert len(_pointer(large).deltas) == 2
    _insert(large, 300, 3)  # 11 of 21: over
    assert _pointer(large).deltas == ()


@pytest.mark.skipif(not ANN, reason="no approximate engine installed")
def test_vector_fold_min_rows_decides_when_a_write_folds_the_pending_segment() -> None:
    """40 rows, 6 changed ids: a write folds past max(5, 10%) and catch_up finds nothing to
    fold; with the default (10,000) the vectors stay pending and catch_up folds them."""
    engine = ANN[0]
    for fold_min_rows, folded_by_write in ((5, True), (None, False)):
        settings = {} if fold_min_rows is None else {"vector_fold_min_rows": fold_min_rows}
        db = _indexed(_db(**settings, vector_compact_min_rows=1), n=40, engine=engine)
        base = _pointer(db).artifact
        _insert(db, 100, 3)
        _insert(db, 200, 3)
        ptr = _pointer(db)
        info, _active = db._vectors._resolve("idx")
        tiers = db._vectors.engine_at(info, ptr)
        assert isinstance(tiers, TieredEngine)
        if folded_by_write:
            assert (ptr.deltas, tiers.pending) == ((), 0)
            assert ptr.artifact != base
            assert db.catch_up(stale=False).indexes == {"idx": "current"}
        else:
            assert (len(ptr.deltas), tiers.pending) == (2, 6)
            assert ptr.artifact == base
            assert db.catch_up(stale=False).indexes == {"idx": "folded"}


def test_the_engine_reads_the_datalayer_setting_at_each_write() -> None:
    """``db.vector_max_deltas`` changed after the engine exists still decides (and the
    engine's attribute is a view of it)."""
    db = _indexed(_db())
    _insert(db, 100, 1)
    db.vector_max_deltas = 1
    assert db._vectors.max_deltas == 1
    _insert(db, 200, 1)
    assert _pointer(db).deltas == ()
    db._vectors.max_deltas = 50
    assert db.vector_max_deltas == 50
