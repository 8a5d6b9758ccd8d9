"""GridFSArtifactStore: ``get_many`` of a batch against one ``get`` per blob, same run.

``--blobs`` distinct blobs of ``--size`` bytes (default 1,024 of 256: a batch of by-reference
64-float32 cells, as ``db.select`` decodes them) are put into GridFS on a mongoeco wire server
started here (``--uri mongodb://host:port/db`` uses another server, e.g. a real mongod). Sides,
alternated run by run, medians of ``--runs``: ``get loop`` (``[store.get(s) for s in shas]``,
two queries a blob) and ``get_many`` (``store.get_many(shas)``, two queries in all). A pymongo
CommandListener counts the commands of each side.

Run: ``python benchmarks/datatypes/bench_gridfs_get_many.py``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack

from pymongo import monitoring

from pinnacle_mongo import GridFSArtifactStore
from pinnacle_mongo.testing import fresh_database_name, run_mongoeco


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.names: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=1024)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--uri", help="a MongoDB URI naming a database (default: mongoeco)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with ExitStack() as stack:
        if args.uri:
            uri, server = args.uri, "given server"
        else:
            uri, server = stack.enter_context(run_mongoeco()).uri(fresh_database_name()), "mongoeco"
        commands = Commands()
        store = GridFSArtifactStore.from_uri(uri, client_options={"event_listeners": [commands]})
        stack.callback(store.close)
        shas = [
            store.put(i.to_bytes(8, "little") * (args.size // 8)).sha256 for i in range(args.blobs)
        ]
        expected = [store.get(s) for s in shas]
        sides: dict[str, Callable[[], list[bytes]]] = {
            "get loop": lambda: [store.get(s) for s in shas],
            "get_many": lambda: store.get_many(shas),
        }
        times: dict[str, list[float]] = {k: [] for k in sides}
        sent: dict[str, dict[str, int]] = {}
        for _ in range(args.runs):
            for label, fn in sides.items():
                commands.names.clear()
                t0 = time.perf_counter()
                got = fn()
                times[label].append(time.perf_counter() - t0)
                sent[label] = dict(commands.names)
                assert got == expected, label
        store.drop(force=True)
    load_after = os.getloadavg()[0]
    loop = statistics.median(times["get loop"])
    print(
        f"GridFS on {server}, {args.blobs:,} blobs of {args.size} B, medians of {args.runs} "
        f"runs, 1-minute load {load_before:.1f} before, {load_after:.1f} after"
    )
    print("| side | ms per batch | µs per blob | x get loop | commands |")
    print("| --- | ---: | ---: | ---: | --- |")
    for label in sides:
        t = statistics.median(times[label])
        cmds = ", ".join(f"{k} {v}" for k, v in sorted(sent[label].items()))
        print(
            f"| {label} | {t * 1e3:.1f} | {t / args.blobs * 1e6:.1f} | {t / loop:.3f}x | {cmds} |"
        )


if __name__ == "__main__":
    main()
