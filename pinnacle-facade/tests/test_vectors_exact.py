"""The ``exact`` vector engine: the VectorEngine contract, the registry, numpy specifics."""

from __future__ import annotations

import numpy as np
import pytest

from pinnacle_protocols.errors import ConfigError, SerializationError
from pinnacle_protocols.testing import VectorEngineContract
from pinnacle_protocols.vectors import VectorEngineType
from pinnacledb.vectors import build_engine, engine_from_bytes, engine_names, engine_type
from pinnacledb.vectors.exact import ExactEngine


class TestExactEngine(VectorEngineContract[ExactEngine]):
    """The reference engine must equal brute force, score by score."""

    exact = True

    @pytest.fixture
    def make_engine(self) -> VectorEngineType:
        return ExactEngine


def test_registered_by_entry_point() -> None:
    """``exact`` is found by name; engine_from_bytes dispatches on the header's engine name."""
    assert "exact" in engine_names()
    assert engine_type("exact") is ExactEngine
    engine = build_engine("exact", [1, 2], [[1.0, 0.0], [0.0, 1.0]], measure="dot")
    again = engine_from_bytes(engine.to_bytes())
    assert isinstance(again, ExactEngine)
    assert again.search([1.0, 0.0], 1).ids == (1,)


def test_unknown_engine_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine that is not installed says what to install (pinnacle-vectors hidden here by
    filtering the entry point list, since the workspace installs it)."""
    import importlib.metadata as md

    import pinnacledb.vectors as vectors

    real = md.entry_points

    def only_exact(*, group: str) -> md.EntryPoints:
        return md.EntryPoints(ep for ep in real(group=group) if ep.name == "exact")

    monkeypatch.setattr(vectors, "entry_points", only_exact)
    with pytest.raises(ConfigError, match=r"pip install pinnacle-vectors\[faiss\]"):
        engine_type("faiss")
    with pytest.raises(ConfigError, match=r"no vector engine named 'nope'.*installed: exact\)"):
        engine_type("nope")


def test_matches_numpy_on_larger_data() -> None:
    """5,000 x 64 float32: ids and scores equal a direct numpy computation, all measures."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal((5000, 64), dtype=np.float32)
    queries = rng.standard_normal((20, 64), dtype=np.float32)
    for measure in ("cosine", "dot", "l2"):
        engine = ExactEngine.build(list(range(5000)), data, measure=measure)
        for q in queries:
            if measure == "cosine":
                s = (data / np.linalg.norm(data, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
            elif measure == "dot":
                s = data @ q
            else:
                s = -np.linalg.norm(data - q, axis=1)
            order = np.argsort(-s)[:10]
            got = engine.search(q, 10)
            assert list(got.ids) == order.tolist()
            np.testing.assert_allclose(got.scores, s[order], rtol=1e-4, atol=1e-4)


def test_filtered_search_is_exact_about_the_filter() -> None:
    """With an allowed set, every result is allowed and n come back when n are allowed."""
    rng = np.random.default_rng(1)
    data = rng.standard_normal((1000, 16), dtype=np.float32)
    engine = ExactEngine.build([f"r{i}" for i in range(1000)], data, measure="l2")
    allowed = {f"r{i}" for i in range(0, 1000, 97)}  # 11 ids
    got = engine.search(data[1], 10, allowed=allowed)
    assert len(got) == 10
    assert set(got.ids) <= allowed


def test_from_bytes_refuses_a_foreign_engine() -> None:
    """Bytes of another engine type are refused by name, before any payload is read."""
    from pinnacle_protocols.vectors import pack_engine_bytes

    data = pack_engine_bytes("faiss", {"measure": "l2"}, b"xx")
    with pytest.raises(SerializationError, match="'faiss' vector engine"):
        ExactEngine.from_bytes(data)


def test_rows_are_copied_not_aliased() -> None:
    """Mutating the caller's array after build/add does not change the index."""
    data = np.eye(3, dtype=np.float32)
    engine = ExactEngine.build([0, 1, 2], data, measure="dot")
    data[:] = 0
    assert engine.search([1.0, 0.0, 0.0], 1).ids == (0,)
