"""pinnacle-vectors: approximate nearest-neighbour engines for pinnacledb.

Each engine is a :class:`~pinnacle_protocols.vectors.VectorEngine` registered under the
``pinnacle.vector_engines`` entry point group, in its own module that imports its library:

* ``faiss`` (:class:`pinnacle_vectors.faiss.FaissEngine`, extra ``[faiss]``),
* ``usearch`` (:class:`pinnacle_vectors.usearch.USearchEngine`, extra ``[usearch]``),
* ``hnswlib`` (:class:`pinnacle_vectors.hnswlib.HnswlibEngine`, extra ``[hnswlib]``).

Importing this package imports none of the libraries.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
