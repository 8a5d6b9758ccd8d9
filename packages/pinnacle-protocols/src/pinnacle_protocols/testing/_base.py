"""What the contracts share: the store fixtures, cleanup, Hypothesis settings, the machine base."""

from __future__ import annotations

import functools
import os
import random
import shlex
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

import attrs
import pytest
from hypothesis import seed, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from pinnacle_protocols.testing.plugin import DEEP_PROFILE

__all__ = [
    "FUZZ_EXAMPLES_ENV",
    "FUZZ_SECONDS_ENV",
    "ContractBase",
    "FuzzReport",
    "StoreStateMachine",
    "StoreTracker",
    "fuzz_state_machine",
]

#: Seconds one state machine may fuzz for (set by ``scripts/fuzz``); unset: one ordinary run.
FUZZ_SECONDS_ENV = "PINNACLE_FUZZ_SECONDS"
#: ``max_examples`` of one run (replays a fuzz round; printed in its replay command).
FUZZ_EXAMPLES_ENV = "PINNACLE_FUZZ_EXAMPLES"
#: Examples in a fuzz loop's first round, before the time per example is known.
_FIRST_ROUND = 1


class _Closable(Protocol):
    def drop(self, *, force: bool = False) -> None: ...

    def close(self) -> None: ...


S = TypeVar("S", bound=_Closable)
M = TypeVar("M", bound=type[RuleBasedStateMachine])


def release(store: _Closable) -> None:
    """The default cleanup of a store a test made: ``drop(force=True)`` then ``close()``."""
    try:
        store.drop(force=True)
    finally:
        store.close()


class StoreStateMachine(RuleBasedStateMachine, Generic[S]):
    """Base of the contract state machines: every example runs on a fresh store.

    Subclass a concrete machine (e.g. ``DataBackendStateMachine[MyStore]``), override
    :meth:`make_store`, and run it with ``run_state_machine_as_test(MyMachine)`` or collect
    ``TestMyMachine = MyMachine.TestCase``. The store of an example is ``self.store``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.store: S = self.make_store()

    def make_store(self) -> S:
        """Abstract: a fresh, EMPTY store for one example (released in :meth:`teardown`)."""
        raise NotImplementedError(f"{type(self).__name__} must define make_store()")

    def release_store(self, store: S) -> None:
        """Clean up the example's store: ``drop(force=True)`` then ``close()`` (override when
        your store is cleaned up otherwise)."""
        release(store)

    def teardown(self) -> None:
        """Release the example's store."""
        self.release_store(self.store)


def configured(machine: M, **attributes: Any) -> M:
    """A subclass of ``machine`` (of the same name) with the class ``attributes`` set."""
    return cast(M, type(machine.__name__, (machine,), attributes))


class StoreTracker(Generic[S]):
    """A zero-argument store factory that remembers every store it made and releases them.

    The contract fixture ``store_factory`` is one of these: each call returns a fresh, empty store
    from the subclass's ``make_store`` factory; at fixture teardown every store not yet released
    is released (by default ``drop(force=True)`` then ``close()``).
    """

    def __init__(self, make: Callable[[], S], release: Callable[[S], None]) -> None:
        """Wrap the subclass's factory ``make``; ``release`` cleans one store up."""
        self._make = make
        self._release = release
        self._live: list[S] = []

    def __call__(self) -> S:
        """A fresh, empty store."""
        store = self._make()
        self._live.append(store)
        return store

    def release(self, store: S) -> None:
        """Clean up one store now (idempotent)."""
        for i, live in enumerate(self._live):
            if live is store:
                del self._live[i]
                self._release(store)
                return

    def forget(self, store: S) -> None:
        """Stop tracking a store the test already cleaned up itself (e.g. closed)."""
        self._live = [s for s in self._live if s is not store]

    def release_all(self) -> None:
        """Clean up every store still tracked; the first error is raised after trying all."""
        errors: list[BaseException] = []
        while self._live:
            store = self._live.pop()
            try:
                self._release(store)
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


class MachineSettings:
    """The Hypothesis knobs of a contract's state machine.

    Attributes:
        max_examples: Hypothesis examples per state machine; ``None`` (default) uses the active
            profile (``dev``: 25, ``ci``: 200). Lower it only for very slow stores, and say why.
        stateful_step_count: Steps per state machine example; ``None`` uses the profile.
    """

    max_examples: ClassVar[int | None] = None
    stateful_step_count: ClassVar[int | None] = None

    def state_machine_settings(self) -> settings:
        """Settings for the state machines: the active profile, adjusted by the class knobs.

        Under the ``deep`` profile the size knobs are ignored (the profile is for depth);
        ``PINNACLE_FUZZ_EXAMPLES`` sets ``max_examples`` (a replay of one fuzz round).
        """
        overrides: dict[str, Any] = {"deadline": None}
        deep = settings.get_current_profile_name() == DEEP_PROFILE
        if self.max_examples is not None and not deep:
            overrides["max_examples"] = self.max_examples
        if self.stateful_step_count is not None and not deep:
            overrides["stateful_step_count"] = self.stateful_step_count
        examples = os.environ.get(FUZZ_EXAMPLES_ENV)
        if examples:
            overrides["max_examples"] = int(examples)
        return settings(settings(), **overrides)


class ContractBase(MachineSettings, Generic[S]):
    """Fixtures and knobs shared by the three store contracts (see the package README).

    Subclasses provide the ``make_store`` fixture. Class attributes tune the cost (and those of
    :class:`MachineSettings`):

    Attributes:
        known_gaps: Test name (``"test_x"`` or ``"test_x[param-id]"``) to a
            ``pytest.mark.notimpl(reason=..., raises=...)`` or ``notyet`` mark; the plugin applies
            it, so the inherited test becomes a strict xfail.
    """

    known_gaps: ClassVar[Mapping[str, pytest.MarkDecorator]] = {}
    #: The state machine of :meth:`test_state_machine`, and the class attributes it takes over.
    machine: ClassVar[type[StoreStateMachine[Any]]]
    machine_knobs: ClassVar[tuple[str, ...]] = ()

    @pytest.fixture
    def make_store(self) -> Callable[[], S]:
        """Abstract: return a zero-argument factory; each call gives a fresh, EMPTY store."""
        raise NotImplementedError(
            f"{type(self).__name__} must define a `make_store` fixture returning a zero-argument "
            "factory of fresh, empty stores"
        )

    @pytest.fixture
    def store_factory(self, make_store: Callable[[], S]) -> Iterator[StoreTracker[S]]:
        """``make_store`` wrapped so every store made is released after the test."""
        tracker = StoreTracker(make_store, self.release_store)
        yield tracker
        tracker.release_all()

    @pytest.fixture
    def store(self, store_factory: StoreTracker[S]) -> S:
        """One fresh, empty store, released after the test."""
        return store_factory()

    def release_store(self, store: S) -> None:
        """Clean up a store the suite made: ``drop(force=True)`` then ``close()``.

        Override when your fixture cleans up otherwise (e.g. a temporary directory) or when
        dropping is slow.
        """
        release(store)

    def _release(self, factory: Callable[[], S], store: S) -> None:
        if isinstance(factory, StoreTracker):
            factory.release(store)
        else:
            self.release_store(store)

    def test_state_machine(self, store_factory: StoreTracker[S]) -> None:
        """Random sequences of every operation agree with the machine's model after each step."""
        self.run_state_machine(self.state_machine(store_factory))

    def state_machine(self, store_factory: Callable[[], S]) -> type[StoreStateMachine[Any]]:
        """:attr:`machine` on stores of ``store_factory`` (one fresh store per example, released
        like the fixtures' stores), with the contract's :attr:`machine_knobs`."""
        return configured(
            self.machine,
            make_store=staticmethod(store_factory),
            release_store=staticmethod(functools.partial(self._release, store_factory)),
            **{knob: getattr(self, knob) for knob in self.machine_knobs},
        )

    @pytest.fixture(autouse=True)
    def _contract_request(self, request: pytest.FixtureRequest) -> None:
        """Remember the test's request (the fuzz loop reads the seed and the test id)."""
        self._request = request

    def run_state_machine(self, machine: type[RuleBasedStateMachine]) -> None:
        """Run a contract state machine: once, or in fuzz rounds for ``PINNACLE_FUZZ_SECONDS``.

        Without the variable this is ``run_state_machine_as_test`` with
        :meth:`state_machine_settings`. With it (``scripts/fuzz`` sets it), the machine runs in
        rounds until the budget is spent: round ``i`` uses seed ``S + i``, where ``S`` is
        pytest's ``--hypothesis-seed`` (random if not given), and as many examples as fit the
        time left (at most the profile's ``max_examples``). A failing round's error gets a note
        with the command that replays exactly that round. A test with a known-gap mark (a strict
        xfail) runs once, as without the variable.
        """
        base = self.state_machine_settings()
        budget = os.environ.get(FUZZ_SECONDS_ENV)
        request: pytest.FixtureRequest | None = getattr(self, "_request", None)
        gap = request is not None and request.node.get_closest_marker("xfail") is not None
        if not budget or gap:
            run_state_machine_as_test(machine, settings=base)
            return
        given_seed = request.config.getoption("hypothesis_seed", None) if request else None
        start_seed = int(given_seed) if given_seed is not None else random.getrandbits(32)
        nodeid = request.node.nodeid if request is not None else type(self).__name__
        report = fuzz_state_machine(machine, base, float(budget), start_seed, nodeid)
        # Shown with ``pytest -s`` (scripts/fuzz): what this machine actually ran.
        print(f"\nFUZZ-RAN: {report}")


@attrs.frozen(kw_only=True)
class FuzzReport:
    """What :func:`fuzz_state_machine` ran."""

    nodeid: str
    rounds: int
    examples: int
    steps: int
    first_seed: int
    last_seed: int
    seconds: float

    def __str__(self) -> str:
        """One line: test id, rounds, examples, steps, seeds, time."""
        return (
            f"{self.nodeid}: {self.rounds} rounds, {self.examples} examples of up to "
            f"{self.steps} steps, seeds {self.first_seed}..{self.last_seed}, "
            f"{self.seconds:.0f}s"
        )


def fuzz_state_machine(
    machine: type[RuleBasedStateMachine],
    base: settings,
    seconds: float,
    start_seed: int,
    nodeid: str,
) -> FuzzReport:
    """Run ``machine`` in rounds for ``seconds``: round ``i`` with seed ``start_seed + i``.

    The first round has a few examples; later rounds as many as fit the time left at the
    measured pace (at most ``base.max_examples``). At least one round runs. A failing round's
    exception gets a note (``FUZZ-REPLAY: ...``) with the pytest command replaying that round.
    """
    started = time.monotonic()
    deadline = started + seconds
    examples = min(_FIRST_ROUND, base.max_examples)
    round_no = total = 0
    while True:
        round_seed = start_seed + round_no
        began = time.monotonic()
        try:
            run_state_machine_as_test(
                seed(round_seed)(machine), settings=settings(base, max_examples=examples)
            )
        except BaseException as exc:
            exc.add_note(_replay_note(nodeid, round_seed, examples, round_no))
            raise
        total += examples
        now = time.monotonic()
        if now >= deadline:
            break
        per_example = max((now - began) / examples, 1e-3)
        examples = max(1, min(base.max_examples, int((deadline - now) / per_example)))
        round_no += 1
    return FuzzReport(
        nodeid=nodeid,
        rounds=round_no + 1,
        examples=total,
        steps=base.stateful_step_count,
        first_seed=start_seed,
        last_seed=start_seed + round_no,
        seconds=time.monotonic() - started,
    )


def _replay_note(nodeid: str, round_seed: int, examples: int, round_no: int) -> str:
    profile = settings.get_current_profile_name()
    command = (
        f"HYPOTHESIS_PROFILE={profile} {FUZZ_EXAMPLES_ENV}={examples} "
        f"uv run pytest {shlex.quote(nodeid)} --hypothesis-seed={round_seed}"
    )
    return f"fuzz round {round_no} failed; replay it with:\n  FUZZ-REPLAY: {command}"
