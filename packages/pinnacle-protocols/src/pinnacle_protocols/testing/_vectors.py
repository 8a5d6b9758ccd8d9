"""The VectorEngine contract: example tests and a rule-based state machine against brute force.

Pure Python (no numpy): the model is a dict ``id -> list of floats`` and every expectation is a
brute-force scan over it, so the suite can judge any engine, including the numpy one.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import pytest
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from pinnacle_protocols.errors import InvalidVector, SerializationError
from pinnacle_protocols.testing._base import MachineSettings, configured
from pinnacle_protocols.vectors import (
    MEASURES,
    Measure,
    SearchResult,
    VectorEngine,
    VectorEngineType,
    VectorId,
    brute_force,
    score,
)

__all__ = [
    "VectorEngineContract",
    "VectorEngineStateMachine",
    "brute_force",
    "check_result",
    "score",
    "seeded_vectors",
]

E = TypeVar("E", bound=VectorEngine)
Vec = Sequence[float]

#: Absolute + relative tolerance between an engine's float32 scores and float64 brute force.
TOLERANCE = 1e-3


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def check_result(
    result: SearchResult,
    *,
    measure: Measure,
    model: Mapping[VectorId, Vec],
    q: Vec,
    n: int,
    allowed: Collection[VectorId] | None,
    exact: bool,
) -> None:
    """Assert ``result`` is a correct answer (tie-tolerant) for ``q`` over ``model``.

    Every engine: ids unique, live, allowed; each score is that id's true score; best first;
    ``min(n, candidates)`` results. Exact engines also: the score list equals brute force's.
    """
    assert isinstance(result, SearchResult), f"search returned {type(result).__name__}"
    candidates = set(model) if allowed is None else set(model) & set(allowed)
    ids, scores = list(result.ids), list(result.scores)
    assert len(set(ids)) == len(ids), f"duplicate ids in {ids}"
    stray = [i for i in ids if i not in candidates]
    assert not stray, f"returned ids that are removed, unknown or not allowed: {stray}"
    want = min(n, len(candidates))
    assert len(ids) == want, (
        f"{len(ids)} results for n={n} with {len(candidates)} candidates: expected {want} "
        "(filtered or not, an engine must not return silently fewer)"
    )
    for id_, got in zip(ids, scores, strict=True):
        true = score(measure, q, model[id_])
        assert _close(got, true), f"score of {id_!r} is {got}, brute force says {true}"
    for a, b in itertools.pairwise(scores):
        assert a >= b - TOLERANCE * max(1.0, abs(a)), f"scores not best first: {scores}"
    if exact:
        expected = [s for _, s in brute_force(measure, model, q, n, allowed)]
        for got, true in zip(scores, expected, strict=True):
            assert _close(got, true), f"scores {scores} differ from brute force {expected}"


def seeded_vectors(count: int, dim: int, seed: int) -> list[list[float]]:
    """``count`` reproducible vectors of ``dim`` floats, clustered like real embeddings."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    centers = [[rng.gauss(0, 1) for _ in range(dim)] for _ in range(max(1, count // 50))]
    return [[c + rng.gauss(0, 0.35) for c in rng.choice(centers)] for _ in range(count)]


def _vectors(dim: int, measure: Measure) -> st.SearchStrategy[list[float]]:
    # Small integers: exact float arithmetic, many ties and duplicates.
    vec = st.lists(st.integers(-3, 3).map(float), min_size=dim, max_size=dim)
    if measure == "cosine":
        vec = vec.filter(any)
    return vec


_IDS: tuple[VectorId, ...] = (*range(12), "a", "b", "c", "\u00e9", "0")


class _Checks:
    """What the contract and its state machine share: ``exact`` and :meth:`check`."""

    exact: ClassVar[bool] = False

    def check(
        self,
        engine: VectorEngine,
        model: Mapping[VectorId, Vec],
        q: Vec,
        n: int,
        allowed: Collection[VectorId] | None = None,
    ) -> SearchResult:
        """Search ``engine`` and assert the answer against ``model`` (see :func:`check_result`)."""
        result = engine.search(q, n, allowed=allowed)
        check_result(
            result,
            measure=engine.measure,
            model=model,
            q=q,
            n=n,
            allowed=allowed,
            exact=self.exact,
        )
        return result


class VectorEngineContract(_Checks, MachineSettings, Generic[E]):
    """Contract tests for a :class:`~pinnacle_protocols.vectors.VectorEngine`.

    Subclass as ``class TestMyEngine(VectorEngineContract[MyEngine])`` and define the
    ``make_engine`` fixture returning the :class:`VectorEngineType` under test (the engine
    class, or an object whose ``build`` passes tuning options).

    Knobs (class attributes):
        exact: The engine claims brute-force results (compared score by score); otherwise it
            must return live, allowed ids with true scores, best first, and meet ``min_recall``.
        min_recall: Recall@10 against brute force on fixed clustered data (ANN engines).
        max_examples / stateful_step_count: Hypothesis knobs (``None``: the active profile).
    """

    min_recall: ClassVar[float] = 0.95

    @pytest.fixture
    def make_engine(self) -> VectorEngineType:
        """Abstract: return the engine type under test (``build`` and ``from_bytes``)."""
        raise NotImplementedError(
            f"{type(self).__name__} must define a `make_engine` fixture returning the "
            "VectorEngineType under test"
        )

    # ------------------------------------------------------------------ examples
    def test_flags(self, make_engine: VectorEngineType) -> None:
        """The engine's capability flags are booleans and ``exact`` matches the contract knob."""
        engine = make_engine.build([], [], measure="l2", dim=3)
        assert engine.exact is self.exact
        assert isinstance(engine.native_filter, bool)
        assert engine.delegates_to_backend is False
        assert isinstance(engine.name, str)
        assert engine.name

    @pytest.mark.parametrize("measure", MEASURES)
    def test_build_and_search(self, make_engine: VectorEngineType, measure: Measure) -> None:
        """Build over 300 vectors; queries from the data and outside it answer correctly."""
        vectors = seeded_vectors(300, 8, seed=1)
        ids: list[VectorId] = [f"row{i}" if i % 2 else i for i in range(300)]
        engine = make_engine.build(ids, vectors, measure=measure)
        model = dict(zip(ids, vectors, strict=True))
        assert len(engine) == 300
        assert engine.dim == 8
        assert engine.measure == measure
        assert sorted(map(str, engine.ids())) == sorted(map(str, ids))
        assert all(i in engine for i in ids)
        assert "missing" not in engine
        for q in [*vectors[:5], *seeded_vectors(5, 8, seed=2)]:
            self.check(engine, model, q, 10)
        self.check(engine, model, vectors[0], 0)
        self.check(engine, model, vectors[0], 1000)

    def test_empty(self, make_engine: VectorEngineType) -> None:
        """An empty engine (``dim=`` given) answers nothing, then grows."""
        engine = make_engine.build([], [], measure="cosine", dim=4)
        assert len(engine) == 0
        assert engine.search([1.0, 0, 0, 0], 5).ids == ()
        engine.add([1, 2], [[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
        assert len(engine) == 2
        assert engine.search([1.0, 0.1, 0, 0], 1).ids == (1,)

    @pytest.mark.parametrize("measure", MEASURES)
    def test_filtered_search(self, make_engine: VectorEngineType, measure: Measure) -> None:
        """Allowed sets of every selectivity: only allowed ids, and n of them when n exist."""
        vectors = seeded_vectors(1000, 8, seed=3)
        ids: list[VectorId] = list(range(1000))
        engine = make_engine.build(ids, vectors, measure=measure)
        model: dict[VectorId, Vec] = dict(zip(ids, vectors, strict=True))
        q = seeded_vectors(1, 8, seed=4)[0]
        rng = random.Random(5)  # noqa: S311 - reproducible test data
        for size in (1, 3, 10, 11, 50, 400, 990):
            allowed: set[VectorId] = {*rng.sample(ids, size), "not-there", 10**9}
            self.check(engine, model, q, 10, allowed)
        # the allowed ids are the ones farthest from q: over-fetching alone cannot reach them
        ranking = [i for i, _ in brute_force(measure, model, q, 1000)]
        self.check(engine, model, q, 10, ranking[-15:])
        self.check(engine, model, q, 10, ranking[-500:])
        self.check(engine, model, q, 10, ranking[1::2])
        self.check(engine, model, q, 10, set())

    def test_remove_and_replace(self, make_engine: VectorEngineType) -> None:
        """Removed ids never come back; add on an existing id replaces its vector."""
        vectors = seeded_vectors(200, 6, seed=6)
        engine = make_engine.build(list(range(200)), vectors, measure="l2")
        model: dict[VectorId, Vec] = dict(enumerate(vectors))
        assert engine.remove([0, 1, 2, 0, "nope"]) == 3
        assert engine.remove([0]) == 0
        for i in (0, 1, 2):
            del model[i]
        assert len(engine) == 197
        assert 0 not in engine
        self.check(engine, model, vectors[0], 10)
        self.check(engine, model, vectors[0], 10, {0, 1, 2, 3, 4})
        far = [100.0] * 6
        engine.add([5], [far])
        model[5] = far
        assert len(engine) == 197
        assert engine.search(far, 1).ids == (5,)
        self.check(engine, model, vectors[5], 10)
        engine.add([0], [vectors[0]])
        model[0] = vectors[0]
        self.check(engine, model, vectors[0], 10)
        engine.remove(list(model))
        assert len(engine) == 0
        assert engine.search(far, 3).ids == ()

    def test_invalid_input(self, make_engine: VectorEngineType) -> None:
        """Bad vectors, ids, queries and measures raise InvalidVector and change nothing."""
        engine = make_engine.build([1], [[1.0, 2.0]], measure="cosine")
        bad_batches: list[tuple[list[Any], Any]] = [
            ([2], [[1.0, 2.0, 3.0]]),  # wrong dim
            ([2], [[math.nan, 1.0]]),
            ([2], [[math.inf, 1.0]]),
            ([2], [[0.0, 0.0]]),  # zero under cosine
            ([2, 2], [[1.0, 2.0], [2.0, 1.0]]),  # repeated id
            ([2, 3], [[1.0, 2.0]]),  # count mismatch
            ([2.5], [[1.0, 2.0]]),  # id type
            ([True], [[1.0, 2.0]]),
            ([None], [[1.0, 2.0]]),
            ([2], [["x", 1.0]]),
        ]
        for ids, vecs in bad_batches:
            with pytest.raises(InvalidVector):
                engine.add(ids, vecs)
            assert len(engine) == 1, f"add({ids}, {vecs}) failed but changed the engine"
        for q in ([1.0], [1.0, 2.0, 3.0], [math.nan, 1.0], [0.0, 0.0]):
            with pytest.raises(InvalidVector):
                engine.search(q, 1)
        with pytest.raises(ValueError, match="n"):
            engine.search([1.0, 2.0], -1)
        with pytest.raises(InvalidVector, match="measure"):
            make_engine.build([], [], measure="manhattan", dim=2)  # type: ignore[arg-type]
        with pytest.raises(InvalidVector):
            make_engine.build([], [], measure="l2")

    @pytest.mark.parametrize("measure", MEASURES)
    def test_bytes_round_trip(self, make_engine: VectorEngineType, measure: Measure) -> None:
        """from_bytes(to_bytes()) answers like the original, and keeps accepting writes."""
        vectors = seeded_vectors(300, 8, seed=7)
        ids: list[VectorId] = [*range(150), *(f"s{i}" for i in range(150))]
        engine = make_engine.build(ids, vectors, measure=measure)
        engine.remove([0, "s0"])
        model = {i: v for i, v in zip(ids, vectors, strict=True) if i not in (0, "s0")}
        data = engine.to_bytes()
        assert isinstance(data, bytes)
        assert b"pickle" not in data[:64]
        again = make_engine.from_bytes(data)
        assert (again.measure, again.dim, len(again)) == (measure, 8, 298)
        assert sorted(map(str, again.ids())) == sorted(map(str, model))
        for q in vectors[:5]:
            a = engine.search(q, 10)
            b = self.check(again, model, q, 10)
            if self.exact:
                assert a.ids == b.ids
        again.add(["new"], [vectors[1]])
        again.remove([1])
        model["new"] = vectors[1]
        del model[1]
        self.check(again, model, vectors[1], 10)
        assert make_engine.from_bytes(again.to_bytes()).ids() is not None

    def test_from_bytes_refuses_garbage(self, make_engine: VectorEngineType) -> None:
        """Truncated, corrupted, foreign or empty bytes raise SerializationError."""
        engine = make_engine.build([1, 2], [[1.0, 0.0], [0.0, 1.0]], measure="l2")
        data = engine.to_bytes()
        flipped = bytearray(data)
        flipped[-1] ^= 0xFF
        for bad in (b"", b"PNVE", data[: len(data) // 2], bytes(flipped), b"\x80\x04pickle" * 9):
            with pytest.raises(SerializationError):
                make_engine.from_bytes(bad)

    def test_recall(self, make_engine: VectorEngineType) -> None:
        """Recall@10 against brute force on fixed clustered data is at least ``min_recall``."""
        vectors = seeded_vectors(2000, 16, seed=8)
        queries = seeded_vectors(30, 16, seed=9)
        for measure in MEASURES:
            engine = make_engine.build(list(range(2000)), vectors, measure=measure)
            model: dict[VectorId, Vec] = dict(enumerate(vectors))
            hits = 0
            for q in queries:
                truth = {i for i, _ in brute_force(measure, model, q, 10)}
                hits += len(truth & set(engine.search(q, 10).ids))
            recall = hits / (10 * len(queries))
            floor = 1.0 if self.exact else self.min_recall
            assert recall >= floor, f"{measure}: recall@10 {recall:.3f} < {floor}"

    # ------------------------------------------------------------------ state machine
    def test_state_machine(self, make_engine: VectorEngineType) -> None:
        """Random add/remove/search/serialize sequences agree with a brute-force model."""
        run_state_machine_as_test(
            self.state_machine(make_engine), settings=self.state_machine_settings()
        )

    def state_machine(self, make_engine: VectorEngineType) -> type[VectorEngineStateMachine]:
        """The machine on engines of ``make_engine`` (one fresh engine per example)."""
        return configured(VectorEngineStateMachine, engine_type=make_engine, exact=self.exact)


class VectorEngineStateMachine(_Checks, RuleBasedStateMachine):
    """The vector engine contract's state machine. Model: id -> vector; every search is judged
    by brute force over it (see :func:`check_result`). Subclass it and set ``engine_type``.

    Attributes:
        engine_type: The :class:`VectorEngineType` under test (one fresh engine per example).
        exact: The engine claims brute-force results (compared score by score).
        dim: Dimension of the vectors drawn (default 3).
    """

    engine_type: ClassVar[VectorEngineType]
    dim: ClassVar[int] = 3

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[VectorId, list[float]] = {}
        self.measure: Measure = "l2"
        self.engine: VectorEngine | None = None

    @initialize(measure=st.sampled_from(MEASURES), data=st.data())
    def build(self, measure: Measure, data: st.DataObject) -> None:
        self.measure = measure
        ids = data.draw(st.lists(st.sampled_from(_IDS), unique=True, max_size=8))
        vecs = [data.draw(_vectors(self.dim, measure)) for _ in ids]
        note(f"build({ids}, {vecs}, measure={measure!r})")
        self.engine = self.engine_type.build(ids, vecs, measure=measure, dim=self.dim)
        self.model = dict(zip(ids, vecs, strict=True))

    @property
    def live(self) -> VectorEngine:
        assert self.engine is not None
        return self.engine

    @rule(data=st.data())
    def add(self, data: st.DataObject) -> None:
        ids = data.draw(st.lists(st.sampled_from(_IDS), unique=True, max_size=5))
        vecs = [data.draw(_vectors(self.dim, self.measure)) for _ in ids]
        self.live.add(ids, vecs)
        self.model.update(zip(ids, vecs, strict=True))

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        ids = data.draw(st.lists(st.sampled_from(_IDS), unique=True, max_size=4))
        expected = sum(1 for i in ids if i in self.model)
        assert self.live.remove(ids) == expected
        for i in ids:
            self.model.pop(i, None)

    @rule(data=st.data(), n=st.integers(0, 8))
    def search(self, data: st.DataObject, n: int) -> None:
        q = data.draw(_vectors(self.dim, self.measure))
        self.check(self.live, self.model, q, n)

    @rule(data=st.data(), n=st.integers(1, 8))
    def filtered_search(self, data: st.DataObject, n: int) -> None:
        q = data.draw(_vectors(self.dim, self.measure))
        allowed = data.draw(st.sets(st.sampled_from([*_IDS, "x", 99])))
        self.check(self.live, self.model, q, n, allowed)

    @precondition(lambda self: self.engine is not None)
    @rule()
    def round_trip(self) -> None:
        self.engine = self.engine_type.from_bytes(self.live.to_bytes())

    @invariant()
    def same_ids(self) -> None:
        if self.engine is None:
            return
        assert len(self.live) == len(self.model)
        assert sorted(map(repr, self.live.ids())) == sorted(map(repr, self.model))
