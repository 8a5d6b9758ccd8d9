"""The VectorEngine contract on the pure-Python reference engine; the bytes envelope; and
planted bugs the contract must catch (each a subclass of the reference with one mistake)."""

from __future__ import annotations

import json
import struct
from collections.abc import Collection
from typing import Any

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from pinnacle_protocols.errors import InvalidVector, SerializationError
from pinnacle_protocols.testing import VectorEngineContract
from pinnacle_protocols.vectors import (
    ENGINE_FORMAT_VERSION,
    ENGINE_MAGIC,
    MemoryVectorEngine,
    QueryLike,
    SearchResult,
    VectorEngineType,
    VectorId,
    engine_name_of,
    pack_engine_bytes,
    unpack_engine_bytes,
)

pytestmark = pytest.mark.memory


class TestMemoryVectorEngine(VectorEngineContract[MemoryVectorEngine]):
    exact = True

    @pytest.fixture
    def make_engine(self) -> VectorEngineType:
        return MemoryVectorEngine


# --------------------------------------------------------------------------- envelope
def test_envelope_round_trip() -> None:
    data = pack_engine_bytes("x", {"ids": [1, "a"], "dim": 2}, b"payload")
    assert data.startswith(ENGINE_MAGIC)
    assert engine_name_of(data) == "x"
    meta, payload = unpack_engine_bytes(data, "x")
    assert payload == b"payload"
    assert meta["ids"] == [1, "a"]


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: b"", "shorter than the header"),
        (lambda d: b"XXXX" + d[4:], "magic"),
        (lambda d: d[:4] + struct.pack("<H", ENGINE_FORMAT_VERSION + 1) + d[6:], "newer"),
        (lambda d: d[:12], "truncated inside its header"),
        (lambda d: d[:-1], "truncated or padded"),
        (lambda d: d + b"\0", "truncated or padded"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "sha256"),
    ],
)
def test_envelope_refuses_bad_bytes(mangle: Any, message: str) -> None:
    data = pack_engine_bytes("x", {}, b"payload")
    with pytest.raises(SerializationError, match=message):
        unpack_engine_bytes(mangle(data), "x")


def test_envelope_refuses_another_engine_and_non_json() -> None:
    data = pack_engine_bytes("faiss", {}, b"p")
    with pytest.raises(SerializationError, match="'faiss' vector engine, not 'x'"):
        unpack_engine_bytes(data, "x")
    with pytest.raises(SerializationError, match="not JSON-safe"):
        pack_engine_bytes("x", {"v": float("nan")}, b"")
    head = b"[1]"
    bad = struct.pack("<4sHI", ENGINE_MAGIC, 1, len(head)) + head
    with pytest.raises(SerializationError, match="not a JSON object"):
        unpack_engine_bytes(bad, "x")
    assert json.loads(head) == [1]


def test_search_result_checks_lengths() -> None:
    with pytest.raises(ValueError, match="2 ids but 1 scores"):
        SearchResult(ids=(1, 2), scores=(1.0,))
    assert list(SearchResult(ids=("a",), scores=(0.5,))) == [("a", 0.5)]


def test_import_has_no_numpy() -> None:
    """The reference engine accepts arrays through ``tolist`` without importing numpy."""
    import subprocess
    import sys

    code = (
        "import sys, pinnacle_protocols.vectors as v\n"
        "e = v.MemoryVectorEngine.build([1], [[1.0, 2.0]], measure='l2')\n"
        "assert e.search([1.0, 2.0], 1).ids == (1,)\n"
        "print('numpy' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- planted bugs
class FewerUnderFilter(MemoryVectorEngine):
    """Filters after taking the n best overall (the classic post-filter mistake)."""

    def search(
        self, query: QueryLike, n: int, *, allowed: Collection[VectorId] | None = None
    ) -> SearchResult:
        found = super().search(query, n)
        if allowed is None:
            return found
        keep = [(i, s) for i, s in found if i in set(allowed)]
        return SearchResult(ids=tuple(i for i, _ in keep), scores=tuple(s for _, s in keep))


class ForgetsRemovals(MemoryVectorEngine):
    """Reports removals but keeps the vectors searchable."""

    def remove(self, ids: Any) -> int:
        return sum(1 for i in list(ids) if i in self._vectors)


class SquaredL2(MemoryVectorEngine):
    """Returns minus the squared distance under l2."""

    def search(
        self, query: QueryLike, n: int, *, allowed: Collection[VectorId] | None = None
    ) -> SearchResult:
        found = super().search(query, n, allowed=allowed)
        if self.measure != "l2":
            return found
        return SearchResult(ids=found.ids, scores=tuple(-(s * s) for s in found.scores))


class LosesIdTypes(MemoryVectorEngine):
    """Serializes every id as a string."""

    def to_bytes(self) -> bytes:
        self._vectors = {str(k): v for k, v in self._vectors.items()}
        return super().to_bytes()


class AcceptsNaN(MemoryVectorEngine):
    """Skips validation of added vectors."""

    def add(self, ids: Any, vectors: Any) -> None:
        self._vectors.update(zip(ids, (tuple(v) for v in vectors), strict=True))


@pytest.mark.parametrize(
    ("broken", "example"),
    [
        (FewerUnderFilter, "test_filtered_search"),
        (ForgetsRemovals, "test_remove_and_replace"),
        (SquaredL2, "test_build_and_search"),
        (LosesIdTypes, "test_bytes_round_trip"),
        (AcceptsNaN, "test_invalid_input"),
    ],
)
def test_contract_catches(broken: type[MemoryVectorEngine], example: str) -> None:
    """The state machine (where the bug is reachable there) and the aimed example test fail."""
    contract = TestMemoryVectorEngine()
    engine_type: VectorEngineType = broken
    test = getattr(contract, example)
    args: list[Any] = [engine_type]
    if example in {"test_filtered_search", "test_build_and_search", "test_bytes_round_trip"}:
        args.append("l2")
    with pytest.raises((AssertionError, InvalidVector, pytest.fail.Exception)):
        test(*args)
    if broken is AcceptsNaN:  # the state machine draws only valid vectors
        return
    machine = contract.state_machine(engine_type)
    with pytest.raises((AssertionError, InvalidVector)):
        run_state_machine_as_test(
            machine,
            settings=settings(
                contract.state_machine_settings(),
                max_examples=200,
                phases=(Phase.explicit, Phase.generate),
                database=None,
            ),
        )
