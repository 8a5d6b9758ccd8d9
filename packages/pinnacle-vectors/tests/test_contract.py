"""Every ANN engine of pinnacle-vectors passes the VectorEngine contract.

Each engine runs twice: as shipped, and with exact pre-filtering of small candidate sets turned
off, so that filtered searches of the contract go through the library search, the growing
over-fetch and the exhaustion fallback instead of the exact scan.
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from pinnacle_protocols.testing import VectorEngineContract
from pinnacle_protocols.vectors import VectorEngineType
from pinnacle_vectors.faiss import FaissEngine
from pinnacle_vectors.hnswlib import HnswlibEngine
from pinnacle_vectors.usearch import USearchEngine


class FaissNoPrefilter(FaissEngine):
    prefilter_max: ClassVar[int] = 0
    prefilter_ratio: ClassVar[int] = 0


class USearchNoPrefilter(USearchEngine):
    prefilter_max: ClassVar[int] = 0
    prefilter_ratio: ClassVar[int] = 0


class HnswlibNoPrefilter(HnswlibEngine):
    prefilter_max: ClassVar[int] = 0
    prefilter_ratio: ClassVar[int] = 0


class TestFaiss(VectorEngineContract[FaissEngine]):
    @pytest.fixture
    def make_engine(self) -> VectorEngineType:
        return FaissEngine


class TestUSearch(VectorEngineContract[USearchEngine]):
    @pytest.fixture
    def make_engine(self) -> VectorEngineType:
        return USearchEngine


class TestHnswlib(VectorEngineContract[HnswlibEngine]):
    @pytest.fixture
    def make_engine(self) -> VectorEngineType:
        return HnswlibEngine


class TestFaissOverFetch(VectorEngineContract[FaissEngine]):
    @pytest.fixture
    def make_engine(self) -> VectorEngineType:
        return FaissNoPrefilter


class TestUSearchOverFetch(VectorEngineContract[USearchEngine]):
    @pytest.fixture
    def make_engine(self) -> VectorEngineType:
        return USearchNoPrefilter


class TestHnswlibOverFetch(VectorEngineContract[HnswlibEngine]):
    @pytest.fixture
    def make_engine(self) -> VectorEngineType:
        return HnswlibNoPrefilter
