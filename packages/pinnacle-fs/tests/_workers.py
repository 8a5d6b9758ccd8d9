"""Child-process side of the concurrency and crash tests.

Children are started with the ``spawn`` method and run this file through ``runpy.run_path``
with ``init_globals={"ARGS": {...}}`` (so nothing has to be importable by module name).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

MiB = 1024 * 1024


class _PauseAt:
    """A ProgressCallback that signals ``reached`` and sleeps once ``at`` bytes went through."""

    def __init__(self, at: int, reached: Any) -> None:
        self.at = at
        self.done = 0
        self.reached = reached

    def set_size(self, size: int) -> None:
        pass

    def relative_update(self, inc: int = 1) -> None:
        self.done += inc
        if self.done >= self.at:
            self.reached.set()
            time.sleep(600)  # wait here to be killed


def main(args: dict[str, Any]) -> None:
    """Run one worker action; report errors on ``args["errors"]`` (a multiprocessing Queue)."""
    from pinnacle_fs import FsspecArtifactStore
    from pinnacle_fs.testing import pattern_bytes, pattern_stream

    store = FsspecArtifactStore.from_uri(args["uri"], **args.get("options", {}))
    try:
        if "ready" in args:
            store.exists(args["sha256"])  # import drivers and connect before the race starts
            args["warm"].put(args["action"])
            args["ready"].wait(60)
        action = args["action"]
        if action == "put":
            for _ in range(args.get("repeat", 1)):
                source: Any = pattern_stream(args["size"], seed=args.get("seed", 7))
                if args.get("as_bytes"):
                    source = pattern_bytes(args["size"], seed=args.get("seed", 7))
                callback = None
                if args.get("pause_at") is not None:
                    callback = _PauseAt(args["pause_at"], args["reached"])
                ref = store.put(source, callback=callback)
                if ref.sha256 != args["sha256"]:
                    raise AssertionError(f"put returned {ref}, expected {args['sha256']}")
        elif action == "delete":
            for _ in range(args.get("repeat", 1)):
                store.delete(args["sha256"])
        elif action == "read":
            seen = 0
            for _ in range(args.get("repeat", 1)):
                if store.exists(args["sha256"]):
                    try:
                        data = store.get(args["sha256"])
                    except Exception as exc:  # absent now is fine, corrupted is not
                        if type(exc).__name__ != "ArtifactNotFound":
                            raise
                    else:
                        seen += 1
                        if hashlib.sha256(data).hexdigest() != args["sha256"]:
                            raise AssertionError("read a blob that does not match its key")
        else:
            raise ValueError(action)
    except BaseException as exc:
        args["errors"].put(f"{args['action']}: {type(exc).__name__}: {exc}")
        raise
    finally:
        store.close()


if __name__ == "__main__":
    main(globals()["ARGS"])
