"""CPU seconds per process and thread of a CPU-bound ``db.predict`` on the pool runners.

Wall-clock ratios mean little on a shared machine; CPU time moves much less with the load.
For each runner: a pool started and warmed, then the CPU-bound job (``Busy(--work)`` over
``--rows`` rows, batches of 1,000) ``--reps`` times; for each job the CPU seconds of the driver
process (its threads: the caller's, and on ``dask+local://`` the event loop of the in-process
scheduler, nannies and client) and of each worker process (its threads: the task thread, and
on Dask the worker's event loop). Also the CPU the idle pool uses in 3 s.

``--dask-defaults`` starts the ``dask+local://`` cluster with distributed's default settings
(profiler, 20 ms tick, 500 ms system monitor), as before issue #13's change, for an A/B.

    python benchmarks/compute/cpu_per_process.py --rows 200000 --reps 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

import psutil  # type: ignore[import-untyped]

from pinnacledb import Model, pinnacle


class Busy:
    """Pure-Python CPU work per input (the model of bench_compute.py)."""

    def __init__(self, work: int) -> None:
        self.work = work

    def predict(self, xs: list[float]) -> list[float]:
        out = []
        for x in xs:
            acc = 0.0
            for i in range(self.work):
                acc += (x * i) % 7
            out.append(acc)
        return out


#: CPU seconds per thread id, per process id.
Snapshot = dict[int, dict[int, float]]


def _threads(p: psutil.Process) -> dict[int, float]:
    try:
        return {t.id: t.user_time + t.system_time for t in p.threads()}
    except psutil.Error:
        return {}


def _snapshot() -> Snapshot:
    """CPU seconds per thread, per process (this one and its descendants)."""
    me = psutil.Process()
    return {p.pid: _threads(p) for p in [me, *me.children(recursive=True)]}


def _delta(a: Snapshot, b: Snapshot) -> dict[int, list[float]]:
    """CPU seconds per thread between two snapshots (largest first), per process."""
    out = {}
    for pid, threads in b.items():
        before = a.get(pid, {})
        out[pid] = sorted(
            (round(s - before.get(t, 0.0), 2) for t, s in threads.items()), reverse=True
        )
    return out


def _report(label: str, a: Snapshot, b: Snapshot) -> None:
    driver = psutil.Process().pid
    d = _delta(a, b)
    mine = d.pop(driver, [])
    print(f"{label}: driver {sum(mine):.2f} s (threads {mine[:3]})")
    for pid, threads in sorted(d.items(), key=lambda kv: -sum(kv[1])):
        if sum(threads) > 0.005:
            print(f"    worker {pid}: {sum(threads):.2f} s (threads {threads[:3]})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--work", type=int, default=60)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument(
        "--runners", default="processes://?workers=2,dask+local://?workers=2", help="comma list"
    )
    parser.add_argument("--dask-defaults", action="store_true")
    args = parser.parse_args()
    if args.dask_defaults:
        import pinnacle_dask.backend

        pinnacle_dask.backend.LOCAL_CLUSTER_CONFIG = {}

    import cloudpickle

    cloudpickle.register_pickle_by_value(__import__(__name__))
    base = tempfile.mkdtemp(prefix="bench-cpu-")
    stores: dict[str, Any] = {
        "databackend": f"sqlite://{base}/data.db",
        "metadata_store": f"sqlite://{base}/metadata.db",
        "artifact_store": f"filesystem://{base}/artifacts/",
    }
    with pinnacle(**stores, trust_serializers={"cloudpickle"}) as db:
        db.create_table("t", {"id": "int", "x": "float"})
        db.insert("t", [{"id": i, "x": float(i % 1000)} for i in range(args.rows)])
        db.apply(Model(identifier="busy", object=Busy(args.work), serializer="cloudpickle"))
    for runner in args.runners.split(","):
        db = pinnacle(**stores, compute=runner, trust_serializers={"cloudpickle"})
        db.predict("busy", "t", inputs="x", where={"id": {"$lt": 2000}}, output="warm")
        a = _snapshot()
        time.sleep(3)
        _report(f"{runner} idle 3 s", a, _snapshot())
        for rep in range(args.reps):
            a = _snapshot()
            t0 = time.perf_counter()
            result = db.predict("busy", "t", inputs="x", output=f"out{rep}", batch_size=1000)
            wall = time.perf_counter() - t0
            b = _snapshot()
            assert result.rows == args.rows
            load = psutil.getloadavg()[0]
            tasks = result.job.tasks_total
            _report(f"{runner} job {rep} ({tasks} tasks, {wall:.2f} s wall, load {load:.1f})", a, b)
            db.drop_table(f"out{rep}")
        db.close()


if __name__ == "__main__":
    main()
