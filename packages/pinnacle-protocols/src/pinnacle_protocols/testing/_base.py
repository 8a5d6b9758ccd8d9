"""What the three contract classes share: the store fixtures, cleanup and Hypothesis settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import pytest
from hypothesis import settings

__all__ = ["ContractBase", "StoreTracker"]


class _Closable(Protocol):
    def drop(self, *, force: bool = False) -> None: ...

    def close(self) -> None: ...


S = TypeVar("S", bound=_Closable)


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


class ContractBase(Generic[S]):
    """Fixtures and knobs shared by the three contracts (see the package README).

    Subclasses provide the ``make_store`` fixture. Class attributes tune the cost:

    Attributes:
        max_examples: Hypothesis examples per state machine; ``None`` (default) uses the active
            profile (``dev``: 25, ``ci``: 200). Lower it only for very slow stores, and say why.
        stateful_step_count: Steps per state machine example; ``None`` uses the profile.
        known_gaps: Test name (``"test_x"`` or ``"test_x[param-id]"``) to a
            ``pytest.mark.notimpl(reason=..., raises=...)`` or ``notyet`` mark; the plugin applies
            it, so the inherited test becomes a strict xfail.
    """

    max_examples: ClassVar[int | None] = None
    stateful_step_count: ClassVar[int | None] = None
    known_gaps: ClassVar[Mapping[str, pytest.MarkDecorator]] = {}

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
        try:
            store.drop(force=True)
        finally:
            store.close()

    def _release(self, factory: Callable[[], S], store: S) -> None:
        if isinstance(factory, StoreTracker):
            factory.release(store)
        else:
            self.release_store(store)

    def state_machine_settings(self) -> settings:
        """Settings for the state machines: the active profile, adjusted by the class knobs."""
        overrides: dict[str, Any] = {"deadline": None}
        if self.max_examples is not None:
            overrides["max_examples"] = self.max_examples
        if self.stateful_step_count is not None:
            overrides["stateful_step_count"] = self.stateful_step_count
        return settings(settings(), **overrides)
