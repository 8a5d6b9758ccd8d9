"""Property tests: component versioning against a plain model, and JSON field round trips."""

from __future__ import annotations

from typing import Any, ClassVar

import hypothesis.strategies as st
import numpy as np
from attrs import define, field
from hypothesis import given
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pinnacle_protocols.records import ComponentKey
from pinnacledb import Component, artifact, pinnacle

TEXT = st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**62), 2**62)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")),
            inner,
            max_size=4,
        )
    ),
    max_leaves=10,
)


@define(kw_only=True)
class Thing(Component):
    """A component with a JSON field and an optional numpy artifact."""

    type_id: ClassVar[str] = "thing"
    params: Any = None
    tags: list[str] = field(factory=list)
    blob: Any = artifact(serializer="numpy", default=None)  # noqa: RUF009


@given(params=JSON, tags=st.lists(st.text(TEXT, max_size=5), max_size=3))
def test_json_fields_round_trip(params: Any, tags: list[str]) -> None:
    db = pinnacle("memory://")
    thing = Thing(identifier="t", params=params, tags=tags)
    rec = db.apply(thing)
    loaded = db.load("thing", "t")
    assert loaded == thing
    assert db.apply(Thing(identifier="t", params=params, tags=tags)).version == rec.version


class VersioningMachine(RuleBasedStateMachine):
    """apply/remove/load against a model of what each identifier's versions hold."""

    def __init__(self) -> None:
        super().__init__()
        self.db = pinnacle("memory://")
        # identifier -> {version: (params, blob or None)}
        self.model: dict[str, dict[int, tuple[Any, Any]]] = {}
        self.highest: dict[str, int] = {}

    @rule(
        ident=st.sampled_from(["a", "b"]),
        params=st.integers(0, 2),
        blob=st.none() | st.integers(0, 2),
    )
    def apply(self, ident: str, params: int, blob: int | None) -> None:
        arr = None if blob is None else np.full(3, blob, dtype=np.int64)
        rec = self.db.apply(Thing(identifier=ident, params=params, blob=arr))
        versions = self.model.setdefault(ident, {})
        latest = max(versions) if versions else None
        if latest is not None and versions[latest] == (params, blob):
            assert rec.version == latest
        else:
            expected = self.highest.get(ident, -1) + 1
            assert rec.version == expected
            versions[expected] = (params, blob)
            self.highest[ident] = expected

    @precondition(lambda self: any(self.model.values()))
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        ident = data.draw(st.sampled_from(sorted(i for i, v in self.model.items() if v)))
        version = data.draw(st.sampled_from(sorted(self.model[ident])))
        removed = self.db.remove("thing", ident, version)
        assert removed == [ComponentKey(type_id="thing", identifier=ident, version=version)]
        del self.model[ident][version]

    @precondition(lambda self: any(self.model.values()))
    @rule(data=st.data())
    def load(self, data: st.DataObject) -> None:
        ident = data.draw(st.sampled_from(sorted(i for i, v in self.model.items() if v)))
        version = data.draw(st.sampled_from([None, *sorted(self.model[ident])]))
        thing = self.db.load("thing", ident, version)
        assert isinstance(thing, Thing)
        expected_version = max(self.model[ident]) if version is None else version
        assert thing.version == expected_version
        params, blob = self.model[ident][expected_version]
        assert thing.params == params
        if blob is None:
            assert thing.blob is None
        else:
            assert thing.blob.tolist() == [blob] * 3

    @invariant()
    def show_matches(self) -> None:
        for ident, versions in self.model.items():
            assert self.db.show("thing", ident) == sorted(versions)

    @rule()
    def gc_keeps_everything_referenced(self) -> None:
        report = self.db.gc(grace_seconds=0)
        for ident, versions in self.model.items():
            for v in versions:
                rec = self.db.get_record("thing", ident, v)
                for ref in rec.artifacts.values():
                    assert ref not in report.deleted
                    assert self.db.artifact_store.exists(ref)


TestVersioning = VersioningMachine.TestCase
