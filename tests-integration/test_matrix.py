"""Every contract suite against every store, generated from the installed entry points.

One class per target (``TestDatabackend_postgres``, ``TestMetadata_mongoeco``,
``TestArtifactStore_s3``...) for every target whose scheme an installed distribution registers
(see ``pinnacle_it/targets.py``); each carries its backend's marker, so ``pytest -m postgres``
selects PostgreSQL. Stores are built by the entry point of the target's scheme. State machines
run at the dev size whatever the Hypothesis profile (the packages run their own contracts at
the ci size, this matrix checks that every installed store passes the same suite), except under
the ``deep`` profile, which ``scripts/fuzz`` runs over this matrix for a time budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
from hypothesis import Phase, settings
from pinnacle_it.matrix import Matrix, TargetMaker
from pinnacle_it.targets import Target, active_targets, known_gaps

from pinnacle_protocols.testing import (
    ArtifactCorruptionContract,
    ArtifactStoreContract,
    DataBackendContract,
    MetadataStoreContract,
)

_CONTRACTS: dict[str, type] = {
    "databackend": DataBackendContract,
    "metadata": MetadataStoreContract,
    "artifact_store": ArtifactStoreContract,
}
_CLASS_PREFIX = {
    "databackend": "Databackend",
    "metadata": "Metadata",
    "artifact_store": "Artifacts",
}


class _OnTarget:
    """Builds the contract's stores from the class's :class:`Target`."""

    target: ClassVar[Target]
    _maker: TargetMaker

    @pytest.fixture
    def make_store(self, matrix: Matrix) -> Iterator[Callable[[], Any]]:
        maker = matrix.maker(self.target)
        self._maker = maker
        try:
            yield maker.make
        finally:
            maker.close()

    def release_store(self, store: Any) -> None:
        if self.target.release == "drop":
            try:
                store.drop(force=True)
            finally:
                store.close()
        else:
            store.close()

    def corrupt(self, store: Any, sha256: str) -> None:
        self._maker.corrupt(store, sha256)

    def state_machine_settings(self) -> settings:
        base: settings = super().state_machine_settings()  # type: ignore[misc]
        if self.target.shrink:
            return base
        return settings(
            base, phases=(Phase.explicit, Phase.reuse, Phase.generate), report_multiple_bugs=False
        )


def _class_for(target: Target) -> type:
    bases: list[type] = [_OnTarget, _CONTRACTS[target.role]]
    if target.corruptible:
        bases.append(ArtifactCorruptionContract)
    namespace: dict[str, Any] = {
        "target": target,
        "pytestmark": [getattr(pytest.mark, m) for m in target.marks],
        "known_gaps": known_gaps(target.id),
        "__doc__": f"The {target.role} contract on {target.name} (scheme {target.scheme}://).",
        "__module__": __name__,
        **target.knobs,
    }
    if target.only:
        # an inherited test set to None is not collected
        for base in bases:
            for attr in dir(base):
                if attr.startswith("test_") and attr not in target.only:
                    namespace[attr] = None
    name = f"Test{_CLASS_PREFIX[target.role]}_{target.name.replace('-', '_')}"
    return type(name, tuple(bases), namespace)


def _generate() -> dict[str, type]:
    classes = {}
    for target in active_targets():
        cls = _class_for(target)
        classes[cls.__name__] = cls
    return classes


globals().update(_generate())
