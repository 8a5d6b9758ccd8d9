"""What the vector index's compare-and-set costs per write: ``swap_metadata`` vs ``set_metadata``.

Every write that changes a vector index moves its pointer once. Before compare-and-set it was
``set_metadata`` (a blind overwrite); now it is ``swap_metadata`` (the row read under a write
lock, compared, written). This measures both on the same store and key with a pointer-sized JSON
value (a base and 20 change file refs), ``--calls`` calls per side in rounds of 10, the sides
alternating round by round (order flipping each time). Reported: median microseconds per call of
each side and the ratio swap / set, per store.

Usage::

    python benchmarks/vectors/bench_pointer_swap.py [--calls 2000] [--stores sqlite,postgres]

PostgreSQL: a fresh database is created on the server of ``PINNACLE_TEST_POSTGRES_URI``
(default ``postgres://postgres@127.0.0.1:5432/test``) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

from pinnacle_protocols.protocols import MetadataStore, SupportsMetadataSwap
from pinnacle_sql import SQLAlchemyMetadataStore

KEY = "pinnacledb.vector_index.bench-swap"


def _pointer() -> dict[str, Any]:
    ref = {"sha256": "ab" * 32, "size": 123_456}
    return {
        "index_version": 0,
        "model_version": 0,
        "artifact": ref,
        "count": 100_000,
        "dim": 384,
        "stamp": uuid.uuid4().hex,
        "deltas": [ref] * 20,
        "delta_rows": 2000,
    }


def _measure(store: MetadataStore, calls: int) -> tuple[float, float]:
    assert isinstance(store, SupportsMetadataSwap)
    swap: Any = store
    store.set_metadata(KEY, _pointer())
    per: dict[str, list[float]] = {"set": [], "swap": []}
    rounds = max(1, calls // 10)
    for r in range(rounds):
        for side in ("set", "swap") if r % 2 == 0 else ("swap", "set"):
            current = store.get_metadata(KEY)  # both sides read the pointer first, as upkeep does
            started = time.perf_counter()
            for _ in range(10):
                value = _pointer()
                if side == "set":
                    store.set_metadata(KEY, value)
                else:
                    assert swap.swap_metadata(KEY, current, value)
                current = value
            per[side].append((time.perf_counter() - started) / 10)
    return statistics.median(per["set"]) * 1e6, statistics.median(per["swap"]) * 1e6


@contextlib.contextmanager
def _postgres() -> Iterator[str]:
    """A fresh PostgreSQL database (its URI), dropped afterwards."""
    import sqlalchemy as sa

    base = os.environ.get("PINNACLE_TEST_POSTGRES_URI", "postgres://postgres@127.0.0.1:5432/test")
    name = f"bench_swap_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(
        base.replace("postgres://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def main() -> None:
    """Measure and print one line per store."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f}")
    for name in args.stores.split(","):
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            uri = (
                f"sqlite://{tmp}/meta.db" if name == "sqlite" else stack.enter_context(_postgres())
            )
            store = SQLAlchemyMetadataStore.from_uri(uri)
            try:
                set_us, swap_us = _measure(store, args.calls)
            finally:
                store.close()
        print(
            f"{name}: set_metadata {set_us:.0f} us, swap_metadata {swap_us:.0f} us per call "
            f"(median of {args.calls // 10} rounds of 10): swap / set {swap_us / set_us:.2f}x"
        )
    print(f"load average (1 min) at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
