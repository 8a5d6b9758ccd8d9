"""Child-process bodies of the concurrent vector-index writers test (importable by a forkserver).

Every writer works on the table ``docs`` (``id int, text str, g int``), indexed by
:data:`INDEX` over the :class:`~pinnacledb.HashingTextEncoder` outputs of listener
:data:`LISTENER`. Per round, all writers start together (a barrier) and each:

* inserts a few rows with ids of its own (``writer * OWN_SPAN + k``, never reused);
* updates the text of some of its own rows, and deletes some of them;
* updates the shared rows of the round to the same text as every other writer (identical
  content racing), and deletes the shared rows of the round that every writer deletes.

What is left at the end is known exactly: each writer reports its own live rows, and the shared
rows' final state depends only on the round count (:func:`shared_final`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Final

from pinnacledb import HashingTextEncoder, Listener, VectorIndex, pinnacle

__all__ = [
    "DIM",
    "INDEX",
    "LISTENER",
    "OWN_SPAN",
    "SHARED",
    "encoder",
    "setup_index",
    "shared_final",
    "write_rounds",
]

LISTENER: Final = "emb"
INDEX: Final = "idx"
DIM: Final = 16
#: Ids of the shared rows, created by the setup, written by every writer.
SHARED: Final = 24
#: Ids of writer ``w``'s own rows start at ``(w + 1) * OWN_SPAN``.
OWN_SPAN: Final = 100_000
_WORDS = ("alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "theta", "zeta", "rho")


def encoder() -> HashingTextEncoder:
    """The model of the listener (deterministic: every process embeds a text the same way)."""
    return HashingTextEncoder(identifier="hash", dim=DIM)


def _db(uris: Mapping[str, str]) -> Any:
    return pinnacle(
        uris["databackend"],
        metadata_store=uris["metadata"],
        artifact_store=uris["artifact_store"],
    )


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(2, 6)))


def _shared_text(sid: int, rnd: int) -> str:
    return f"shared {_WORDS[sid % len(_WORDS)]} {_WORDS[(sid * 7 + rnd) % len(_WORDS)]} r{rnd}"


def _shared_plan(rnd: int) -> tuple[list[int], list[int]]:
    """(shared ids every writer updates, shared ids every writer deletes) in round ``rnd``."""
    updated = [s for s in range(SHARED) if (s + rnd) % 12 == 0]
    deleted = [s for s in range(SHARED) if s % 8 == rnd % 8 and s not in updated]
    return updated, deleted


def shared_final(rounds: int) -> dict[int, str]:
    """The shared rows left after ``rounds`` rounds, id -> text."""
    rows = {s: f"shared {_WORDS[s % len(_WORDS)]} start" for s in range(SHARED)}
    for rnd in range(rounds):
        updated, deleted = _shared_plan(rnd)
        for s in updated:
            if s in rows:
                rows[s] = _shared_text(s, rnd)
        for s in deleted:
            rows.pop(s, None)
    return rows


def setup_index(uris: Mapping[str, str], engine: str) -> None:
    """Create ``docs`` with the shared rows, its listener and the vector index."""
    db = _db(uris)
    try:
        db.create_table("docs", {"id": "int", "text": "str", "g": "int"})
        db.insert("docs", [{"id": s, "text": t, "g": s % 2} for s, t in shared_final(0).items()])
        listener = Listener(identifier=LISTENER, model=encoder(), table="docs", inputs="text")
        db.apply(VectorIndex(identifier=INDEX, listener=listener, measure="cosine", engine=engine))
    finally:
        db.close()


def write_rounds(
    uris: Mapping[str, str],
    writer: int,
    rounds: int,
    seed: int,
    barrier: Any,
    results: Any,
    max_deltas: int,
) -> None:  # pragma: no cover - runs in child processes
    """Run ``rounds`` rounds (module docstring); put ``(writer, own live rows, error)``."""
    import traceback

    own: dict[int, str] = {}
    try:
        rng = random.Random(seed)
        db = _db(uris)
        db._vectors.max_deltas = max_deltas  # change files and compactions both happen
        db.count("docs")
        next_id = (writer + 1) * OWN_SPAN
        for rnd in range(rounds):
            barrier.wait(120)
            fresh = {next_id + k: _text(rng) for k in range(rng.randrange(1, 5))}
            next_id += len(fresh)
            db.insert("docs", [{"id": i, "text": t, "g": i % 2} for i, t in fresh.items()])
            own.update(fresh)
            updated, deleted = _shared_plan(rnd)
            for s in updated:  # the same text in every writer
                db.update("docs", {"id": s}, {"text": _shared_text(s, rnd)})
            if own and rng.random() < 0.7:
                pick = rng.sample(sorted(own), min(len(own), rng.randrange(1, 3)))
                text = _text(rng)
                db.update("docs", {"id": {"$in": pick}}, {"text": text})
                own.update(dict.fromkeys(pick, text))
            if deleted:
                db.delete("docs", {"id": {"$in": deleted}})
            if len(own) > 3 and rng.random() < 0.5:
                gone = rng.sample(sorted(own), rng.randrange(1, 3))
                db.delete("docs", {"id": {"$in": gone}})
                for i in gone:
                    del own[i]
        db.close()
        results.put((writer, own, None))
    except BaseException:
        results.put((writer, own, traceback.format_exc()))
