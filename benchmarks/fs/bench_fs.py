"""Ratio benchmarks of pinnacle-fs (FsspecArtifactStore) against the raw operation.

Every comparison runs both sides in one process, on the same disk or server, alternating the
order between runs (or between batches), and reports store throughput / raw throughput.

Ratios are medians of per-run ratios (each run's two sides back to back), so that load from
other jobs on the machine hits both sides of a ratio alike.

1. Large blob on the local disk (default 1 GiB, pattern data from a file in the page cache):

   * put. Store: ``store.put(open(src, "rb"))``: 4 MiB chunks, sha256 while writing (helper
     thread), disk writeback started per chunk (``sync_file_range``), temp file, fsync,
     rename, fsync of the directory. Raw: ``shutil.copyfileobj``
     from the same source to a temp file (default 64 KiB buffer), fsync, rename, fsync of the
     directory. Target >= 0.85x.
   * get. Store: ``shutil.copyfileobj(store.open(ref), out)``, verifying sha256 at EOF. Raw:
     ``shutil.copyfileobj(open(blob, "rb"), out)``. Neither fsyncs ``out``. Target >= 0.9x.
   * peak RSS growth of the store side (``/proc/self/statm``, sampled every 5 ms). Target
     < 64 MiB.
   * sha256 alone: ``hashlib.sha256`` over the blob's size from memory (4 MiB updates), timed
     in every run next to the two sides. No verified read (and no put) can take less time, so
     ``raw get time / sha256 time`` is the highest get ratio this machine allows.

2. Many small blobs (default 10,000 x 4 KiB), in 50 interleaved batches. Store: ``put(bytes)`` then
   ``get(ref)`` (hash, temp file, fsync, rename, fsync of the shard directory; read and verify).
   Raw: the same file dance without hashing: open a temp file, write, fsync, close,
   ``os.replace`` into one of 256 shard directories, fsync that directory; then open/read/close.
   Also run with fsync off on both sides. Target: store at most 2x the raw time.

3. S3 (SeaweedFS started on 127.0.0.1, or ``--s3-uri``): 100 MiB. Store: ``put(open(src))``
   (hash pass, then upload to the final key) and ``copyfileobj(store.open(ref), out)``. Raw:
   s3fs ``put_file`` / ``get_file``. Target >= 0.9x.

Usage::

    python benchmarks/fs/bench_fs.py [--dir DIR] [--large-mib 1024] [--small-count 10000]
        [--s3-mib 100] [--skip-s3] [--write benchmarks/RESULTS_fs.md]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pinnacle_fs import FsspecArtifactStore
from pinnacle_fs.testing import PatternStream, run_seaweedfs

MiB = 1024 * 1024


# --------------------------------------------------------------------------- helpers
def rss_bytes() -> int:
    """This process's resident set size (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples this process's RSS on a thread; ``growth`` is peak minus the RSS at start."""

    def __init__(self, interval: float = 0.005) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self.base = 0
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self._interval)

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.base


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def sha256_speed(mib: int = 256) -> float:
    """sha256 throughput of this machine right now (MiB/s, 1 MiB updates)."""
    block = os.urandom(MiB)
    h = hashlib.sha256()
    t0 = time.perf_counter()
    for _ in range(mib):
        h.update(block)
    return mib / (time.perf_counter() - t0)


def settle() -> None:
    """Flush dirty pages so one run's writeback does not slow the next run down."""
    os.sync()
    time.sleep(0.2)


def write_source(path: Path, size: int) -> str:
    """Write ``size`` pattern bytes to ``path`` (fsynced); return their sha256."""
    h = hashlib.sha256()
    src = PatternStream(size, seed=1, step=4 * MiB)
    buf = bytearray(4 * MiB)
    with open(path, "wb") as f:
        while n := src.readinto(buf):
            f.write(buf[:n])
            h.update(memoryview(buf)[:n])
        f.flush()
        os.fsync(f.fileno())
    return h.hexdigest()


def ratio_line(name: str, r: dict[str, Any], op: str, target: str) -> str:
    """One printed line: median throughputs and the store/raw throughput ratio."""
    m = r["median"]
    mbs = r["size"] / MiB
    return (
        f"{name}: store {mbs / m[f'store_{op}']:,.0f} MiB/s, raw {mbs / m[f'raw_{op}']:,.0f} "
        f"MiB/s, ratio {r[f'{op}_ratio']:.2f}x (best-of {r[f'{op}_best_ratio']:.2f}x; "
        f"target {target})"
    )


def summarize(results: dict[str, list[float]]) -> dict[str, Any]:
    """Medians, and ratios as the median of the per-run ratios (each run's two sides ran
    back to back, so a load spike from other jobs hits both), plus best-of ratios."""
    med = {k: statistics.median(v) for k, v in results.items()}
    out: dict[str, Any] = {"median": med, "all": results}
    for op in ("put", "get"):
        pairs = zip(results[f"raw_{op}"], results[f"store_{op}"], strict=True)
        out[f"{op}_ratio"] = statistics.median(raw / store for raw, store in pairs)
        out[f"{op}_best_ratio"] = min(results[f"raw_{op}"]) / min(results[f"store_{op}"])
    return out


def _cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU unknown"


# --------------------------------------------------------------------------- 1. large blob
def bench_large(work: Path, size: int, runs: int) -> dict[str, Any]:
    src = work / "source.bin"
    sha = write_source(src, size)
    out = work / "out.bin"
    raw_dir = work / "raw"
    (raw_dir / ".tmp").mkdir(parents=True)
    (raw_dir / sha[:2]).mkdir()
    raw_final = raw_dir / sha[:2] / sha
    store = FsspecArtifactStore.from_uri(f"filesystem://{work}/store")
    results: dict[str, list[float]] = {
        k: [] for k in ("store_put", "raw_put", "store_get", "raw_get")
    }
    rss: dict[str, list[int]] = {"put": [], "get": []}
    sha_only: list[float] = []
    block = os.urandom(4 * MiB)

    def sha_alone() -> None:
        def run() -> None:
            h = hashlib.sha256()
            for _ in range(size // len(block)):
                h.update(block)
            h.update(block[: size % len(block)])

        sha_only.append(timed(run))

    def store_put() -> None:
        with open(src, "rb") as f, PeakRSS() as peak:
            t = timed(lambda: store.put(f))
        results["store_put"].append(t)
        rss["put"].append(peak.growth)

    def raw_put() -> None:
        def run() -> None:
            tmp = raw_dir / ".tmp" / uuid.uuid4().hex
            with open(src, "rb") as fi, open(tmp, "wb") as fo:
                shutil.copyfileobj(fi, fo)
                fo.flush()
                os.fsync(fo.fileno())
            os.replace(tmp, raw_final)
            fsync_dir(raw_final.parent)

        results["raw_put"].append(timed(run))

    def store_get() -> None:
        def run() -> None:
            with store.open(sha) as reader, open(out, "wb") as fo:
                shutil.copyfileobj(reader, fo)

        with PeakRSS() as peak:
            results["store_get"].append(timed(run))
        rss["get"].append(peak.growth)

    def raw_get() -> None:
        def run() -> None:
            with open(raw_final, "rb") as fi, open(out, "wb") as fo:
                shutil.copyfileobj(fi, fo)

        results["raw_get"].append(timed(run))

    for i in range(runs):
        store.delete(sha)
        raw_final.unlink(missing_ok=True)
        for step in (store_put, raw_put) if i % 2 == 0 else (raw_put, store_put):
            settle()
            step()
        for step in (store_get, raw_get) if i % 2 == 0 else (raw_get, store_get):
            out.unlink(missing_ok=True)
            settle()
            step()
        sha_alone()
    out.unlink(missing_ok=True)
    store.drop(force=True)
    shutil.rmtree(raw_dir)
    src.unlink()
    summary = summarize(results)
    return {
        "size": size,
        "runs": runs,
        **summary,
        "rss_put": max(rss["put"]),
        "rss_get": max(rss["get"]),
        "sha_only": sha_only,
        # Highest ratios a verified operation can reach in each run: raw time / sha256 time.
        "get_ceiling": statistics.median(
            raw / sha for raw, sha in zip(results["raw_get"], sha_only, strict=True)
        ),
        "put_ceiling": statistics.median(
            raw / sha for raw, sha in zip(results["raw_put"], sha_only, strict=True)
        ),
    }


# --------------------------------------------------------------------------- 2. small blobs
def bench_small(work: Path, count: int, size: int, batches: int, fsync: bool) -> dict[str, Any]:
    blobs = [i.to_bytes(8, "big") + os.urandom(size - 8) for i in range(count)]
    store = FsspecArtifactStore.from_uri(f"filesystem://{work}/small-store", fsync=fsync)
    raw_root = work / "small-raw"
    (raw_root / ".tmp").mkdir(parents=True)
    totals = {"store_put": 0.0, "raw_put": 0.0, "store_get": 0.0, "raw_get": 0.0}
    per = count // batches
    raw_names: list[Path] = []

    def raw_put_one(i: int, data: bytes) -> Path:
        shard = raw_root / f"{i % 256:02x}"
        with contextlib.suppress(FileExistsError):
            os.mkdir(shard)
        tmp = raw_root / ".tmp" / f"{uuid.uuid4().hex}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            os.write(fd, data)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        final = shard / f"{i:016x}"
        os.replace(tmp, final)
        if fsync:
            fsync_dir(shard)
        return final

    for b in range(batches):
        chunk = list(enumerate(blobs[b * per : (b + 1) * per], start=b * per))
        refs: list[Any] = []
        names: list[Path] = []

        def store_put(chunk: list[tuple[int, bytes]] = chunk, refs: list[Any] = refs) -> None:
            refs.extend(store.put(d) for _, d in chunk)

        def raw_put(chunk: list[tuple[int, bytes]] = chunk, names: list[Path] = names) -> None:
            names.extend(raw_put_one(i, d) for i, d in chunk)

        def store_get(refs: list[Any] = refs) -> None:
            for r in refs:
                store.get(r)

        def raw_get(names: list[Path] = names) -> None:
            for n in names:
                with open(n, "rb") as f:
                    f.read()

        order = [("store", store_put, store_get), ("raw", raw_put, raw_get)]
        if b % 2:
            order.reverse()
        for side, put, _ in order:
            totals[f"{side}_put"] += timed(put)
        for side, _, get in order:
            totals[f"{side}_get"] += timed(get)
        raw_names.extend(names)
    store.drop(force=True)
    shutil.rmtree(raw_root)
    store_total = totals["store_put"] + totals["store_get"]
    raw_total = totals["raw_put"] + totals["raw_get"]
    return {
        "count": count,
        "size": size,
        "batches": batches,
        "fsync": fsync,
        "totals": totals,
        "slowdown": store_total / raw_total,
        "put_slowdown": totals["store_put"] / totals["raw_put"],
        "get_slowdown": totals["store_get"] / totals["raw_get"],
    }


# --------------------------------------------------------------------------- 3. S3
@contextlib.contextmanager
def s3_target(uri: str | None) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(store URI, credentials, raw s3fs filesystem) on SeaweedFS or the given server."""
    import s3fs

    if uri:
        from pinnacle_protocols import RedactedURI

        u = RedactedURI.parse(uri)
        creds = {"key": u.username or os.environ.get("AWS_ACCESS_KEY_ID", "")}
        creds["secret"] = u.password or os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        endpoint = u.query_dict["endpoint_url"]
        base = f"s3://{u.host}{u.path.rstrip('/')}/bench-{uuid.uuid4().hex[:8]}"
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True, **creds)
        yield f"{base}?endpoint_url={endpoint}", creds, fs
        return
    with run_seaweedfs() as server:
        server.create_bucket("bench")
        fs = s3fs.S3FileSystem(
            endpoint_url=server.endpoint_url, skip_instance_cache=True, **server.storage_options()
        )
        yield server.s3_uri("bench", "store"), server.storage_options(), fs


def bench_s3(work: Path, size: int, runs: int, uri: str | None) -> dict[str, Any]:
    src = work / "s3-source.bin"
    sha = write_source(src, size)
    out = work / "s3-out.bin"
    results: dict[str, list[float]] = {
        k: [] for k in ("store_put", "raw_put", "store_get", "raw_get")
    }
    rss: list[int] = []
    with s3_target(uri) as (store_uri, creds, fs):
        store = FsspecArtifactStore.from_uri(store_uri, **creds)
        store.put(b"warm up")  # import s3fs, connect, let SeaweedFS grow its first volume
        raw_key = f"{store.root}-raw/{sha}"
        fs.pipe_file(f"{store.root}-raw/warm", b"warm up")

        def store_put() -> None:
            store.delete(sha)
            with open(src, "rb") as f, PeakRSS() as peak:
                results["store_put"].append(timed(lambda: store.put(f)))
            rss.append(peak.growth)

        def raw_put() -> None:
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(raw_key)
            results["raw_put"].append(timed(lambda: fs.put_file(str(src), raw_key)))

        def store_get() -> None:
            def run() -> None:
                with store.open(sha) as reader, open(out, "wb") as fo:
                    shutil.copyfileobj(reader, fo)

            with PeakRSS() as peak:
                results["store_get"].append(timed(run))
            rss.append(peak.growth)

        def raw_get() -> None:
            results["raw_get"].append(timed(lambda: fs.get_file(raw_key, str(out))))

        for i in range(runs):
            for step in (store_put, raw_put) if i % 2 == 0 else (raw_put, store_put):
                step()
            for step in (store_get, raw_get) if i % 2 == 0 else (raw_get, store_get):
                step()
        store.drop(force=True)
        fs.rm(f"{store.root}-raw", recursive=True)
    out.unlink(missing_ok=True)
    src.unlink()
    return {"size": size, "runs": runs, **summarize(results), "rss": max(rss)}


# --------------------------------------------------------------------------- report
def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def loads() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` shows them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def report(results: dict[str, Any], load: tuple[str, str], sha: tuple[float, float]) -> str:
    lines = [
        "# pinnacle-fs benchmarks",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.system()}; one process, both sides alternating.",
        f"Load average (1, 5, 15 min, as `uptime` shows it): {load[0]} before, {load[1]} after "
        "(other jobs shared the 2 cores when it is above 0.5): absolute throughput moves with "
        "the load, the ratios less.",
        f"sha256 on one core measured {sha[0]:,.0f} MiB/s before and {sha[1]:,.0f} MiB/s after "
        f"the run ({_cpu_model()}; machines of this kind differ: 1,250 to 1,900 MiB/s "
        "measured on idle ones).",
        "Reproduce: `uv run --no-sync python benchmarks/fs/bench_fs.py --write "
        "benchmarks/RESULTS_fs.md`.",
        "",
    ]
    if "large" in results:
        r = results["large"]
        m = r["median"]
        gib = r["size"] / MiB
        lines += [
            f"## {gib:,.0f} MiB blob, local disk ({r['runs']} runs)",
            "",
            "| operation | store s (median) | raw s (median) | store MiB/s | raw MiB/s | ratio "
            "| target |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
            f"| put | {m['store_put']:.2f} | {m['raw_put']:.2f} | {gib / m['store_put']:,.0f} "
            f"| {gib / m['raw_put']:,.0f} | {r['put_ratio']:.2f}x | >= 0.85x "
            f"{verdict(r['put_ratio'] >= 0.85)} |",
            f"| get (verified) | {m['store_get']:.2f} | {m['raw_get']:.2f} | "
            f"{gib / m['store_get']:,.0f} | {gib / m['raw_get']:,.0f} | {r['get_ratio']:.2f}x | "
            f">= 0.9x {verdict(r['get_ratio'] >= 0.9)} |",
            "",
            f"Ratios are the median of the {r['runs']} per-run ratios (raw time / store time; "
            "the two sides of a run ran back to back). Best-of ratios (fastest store run vs "
            f"fastest raw run): put {r['put_best_ratio']:.2f}x, get {r['get_best_ratio']:.2f}x.",
            "",
            f"Peak RSS growth of the store side: put {r['rss_put'] / MiB:.1f} MiB, get "
            f"{r['rss_get'] / MiB:.1f} MiB (target < 64 MiB: "
            f"{verdict(max(r['rss_put'], r['rss_get']) < 64 * MiB)}).",
            "",
            f"sha256 alone over {gib:,.0f} MiB in memory (timed in every run): median "
            f"{statistics.median(r['sha_only']):.2f} s, "
            f"{gib / statistics.median(r['sha_only']):,.0f} MiB/s. Every verified get (and "
            "every put) hashes each byte once, sequentially (sha256 cannot be split over "
            "cores), so in each run the get ratio cannot exceed raw get time / sha256 time: "
            f"median ceiling **{r['get_ceiling']:.2f}x** for get, {r['put_ceiling']:.2f}x for "
            "put.",
            "",
            "Put, store: 4 MiB chunks read with `readinto` into a pool of 4 buffers, sha256 on a "
            "helper thread while the next chunks are written to a temp file (`os.write` calls "
            "of 256 KiB: on Linux 6.x with large page-cache folios, writes of 1 MiB or more "
            "stalled for up to 1.7 s per GiB now and then), disk "
            "writeback started after each chunk (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, a "
            "hint), `fsync` while the helper finishes hashing, rename, fsync of the directory. "
            "Put, raw: `shutil.copyfileobj` (64 KiB "
            "buffer) to a temp file, fsync, rename, fsync of the directory. Get, store: "
            "`shutil.copyfileobj(store.open(ref), out)` (4 MiB blocks read with `readinto` into "
            "a pool of buffers, hashed on a helper thread, sha256 verified at EOF); get, raw: "
            "`shutil.copyfileobj(open(blob), out)`; `out` not fsynced on either side. The "
            "source and the blob are in the page cache; dirty pages are flushed (`os.sync`) "
            "before every timed run.",
            "",
            "All runs (seconds): "
            + ", ".join(f"{k} {' / '.join(f'{x:.2f}' for x in v)}" for k, v in r["all"].items()),
            "",
        ]
        if r["put_ratio"] < 0.85 or r["get_ratio"] < 0.9:
            sha_s = statistics.median(r["sha_only"])
            lines += [
                "**Why a local target is missed here.** The store must hash every byte; the "
                "raw copy does not. The raw get copies from the page cache at memory speed "
                f"({gib / m['raw_get']:,.0f} MiB/s, median {m['raw_get']:.2f} s) while sha256 "
                f"alone takes {sha_s:.2f} s for the same bytes, so a verified get takes at "
                f"least {sha_s:.2f} s: {m['raw_get']:.2f} / {sha_s:.2f} = "
                f"{m['raw_get'] / sha_s:.2f}x is the most it can reach (target 0.9x: "
                "physically impossible on this CPU unless sha256 ran at least 0.9x as fast as "
                "a page-cache copy). The store hashes on a helper thread, overlapped with the "
                "reads and writes, so the get runs at about sha256 speed when a core is free. "
                "The put also hashes every byte, but its raw side waits for the disk; with "
                "writeback started per chunk the disk writes overlap the hashing, so the put "
                "reaches the target when the disk is no faster than sha256 and a core is free "
                "for the hashing thread. When other jobs take the cores, the store's extra "
                "CPU work (sha256: about twice the CPU of the raw copy) shows up directly in "
                "the ratios; run times vary several-fold between runs (see all runs above).",
                "",
            ]
    for key in ("small_fsync", "small_nofsync"):
        if key not in results:
            continue
        r = results[key]
        t = r["totals"]
        title = "fsync on both sides" if r["fsync"] else "fsync off on both sides"
        lines += [
            f"## {r['count']:,} blobs of {r['size'] // 1024} KiB, put + get ({title})",
            "",
            "| side | put s | get s | total s |",
            "| --- | ---: | ---: | ---: |",
            f"| store | {t['store_put']:.2f} | {t['store_get']:.2f} | "
            f"{t['store_put'] + t['store_get']:.2f} |",
            f"| raw | {t['raw_put']:.2f} | {t['raw_get']:.2f} | "
            f"{t['raw_put'] + t['raw_get']:.2f} |",
            "",
            f"Store / raw time: **{r['slowdown']:.2f}x** (put {r['put_slowdown']:.2f}x, get "
            f"{r['get_slowdown']:.2f}x); target at most 2x: {verdict(r['slowdown'] <= 2)}"
            + (
                ""
                if r["fsync"]
                else " (not a target: the durable configuration above is; without fsync "
                "both sides are dominated by ext4 journal waits caused by other jobs' "
                "writes, so this ratio is noise)"
            )
            + ".",
            "",
        ]
    if any(k.startswith("small") for k in results):
        lines += [
            "Store: `put(bytes)` (sha256, temp file in `.pinnacle-tmp/`, write, fsync, close, "
            "stat of the final name, rename into `<xx>/<sha256>`, fsync of the shard "
            "directory) then `get(ref)` (open, read, close, sha256 check). Raw: the same "
            "temp-file dance without hashing (temp file, write, fsync, close, `os.replace` "
            "into one of 256 shard directories, fsync of it) then open/read/close. The blobs "
            f"go in {results[next(k for k in results if k.startswith('small'))]['batches']} "
            "batches; each batch runs both sides back to back, alternating which goes first, "
            "so load from other jobs hits both alike.",
            "",
        ]
    if "s3" in results:
        r = results["s3"]
        m = r["median"]
        mb = r["size"] / MiB
        lines += [
            f"## S3 (SeaweedFS on 127.0.0.1), {mb:,.0f} MiB ({r['runs']} runs)",
            "",
            "| operation | store s (median) | raw s (median) | store MiB/s | raw MiB/s | ratio "
            "| target |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
            f"| put vs `put_file` | {m['store_put']:.2f} | {m['raw_put']:.2f} | "
            f"{mb / m['store_put']:,.0f} | {mb / m['raw_put']:,.0f} | {r['put_ratio']:.2f}x | "
            f">= 0.9x {verdict(r['put_ratio'] >= 0.9)} |",
            f"| get vs `get_file` | {m['store_get']:.2f} | {m['raw_get']:.2f} | "
            f"{mb / m['store_get']:,.0f} | {mb / m['raw_get']:,.0f} | {r['get_ratio']:.2f}x | "
            f">= 0.9x {verdict(r['get_ratio'] >= 0.9)} |",
            "",
            f"Ratios are the median of the {r['runs']} per-run ratios; best-of ratios: put "
            f"{r['put_best_ratio']:.2f}x, get {r['get_best_ratio']:.2f}x. Peak RSS growth of "
            f"the store side: {r['rss'] / MiB:.1f} MiB (8 MiB parts, 4 in flight; s3fs's "
            "`put_file` sends 50 MiB parts, up to 10 at once).",
            "",
            "Store put: hash pass over the file, `HeadObject` (not stored yet), multipart "
            "upload to the final key, completed after the second hash matched. Store get: "
            "`HeadObject`, ranged GETs of 8 MiB (two ahead), sha256 verified at EOF, "
            "`copyfileobj` to a local file.",
            "",
            "All runs (seconds): "
            + ", ".join(f"{k} {' / '.join(f'{x:.2f}' for x in v)}" for k, v in r["all"].items()),
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (same disk)")
    parser.add_argument("--large-mib", type=int, default=1024)
    parser.add_argument("--large-runs", type=int, default=5)
    parser.add_argument("--small-count", type=int, default=10_000)
    parser.add_argument("--small-kib", type=int, default=4)
    parser.add_argument("--small-batches", type=int, default=50)
    parser.add_argument("--s3-mib", type=int, default=100)
    parser.add_argument("--s3-runs", type=int, default=5)
    parser.add_argument("--s3-uri", default=os.environ.get("PINNACLE_TEST_S3_URI"))
    parser.add_argument("--skip", action="append", default=[], choices=["large", "small", "s3"])
    parser.add_argument("--write", type=Path, default=None, help="write the Markdown report")
    args = parser.parse_args(argv)

    load_before = loads()
    sha_before = sha256_speed()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-fs-") as tmp:
        work = Path(tmp)
        if "large" not in args.skip:
            r = results["large"] = bench_large(work, args.large_mib * MiB, args.large_runs)
            print(ratio_line("large put", r, "put", ">= 0.85x"))
            print(ratio_line("large get", r, "get", ">= 0.9x"))
            print(
                f"large peak RSS growth: put {r['rss_put'] / MiB:.1f} MiB, get "
                f"{r['rss_get'] / MiB:.1f} MiB (target < 64 MiB)"
            )
            print(
                f"sha256 alone: median {statistics.median(r['sha_only']):.2f} s; ceiling (raw / "
                f"sha256 time): get {r['get_ceiling']:.2f}x, put {r['put_ceiling']:.2f}x"
            )
        if "small" not in args.skip:
            for fsync in (True, False):
                key = "small_fsync" if fsync else "small_nofsync"
                r = results[key] = bench_small(
                    work, args.small_count, args.small_kib * 1024, args.small_batches, fsync
                )
                print(
                    f"small put+get ({'fsync' if fsync else 'no fsync'}): store/raw time "
                    f"{r['slowdown']:.2f}x (put {r['put_slowdown']:.2f}x, get "
                    f"{r['get_slowdown']:.2f}x; target <= 2x)"
                )
        if "s3" not in args.skip:
            r = results["s3"] = bench_s3(work, args.s3_mib * MiB, args.s3_runs, args.s3_uri)
            print(ratio_line("s3 put", r, "put", ">= 0.9x"))
            print(ratio_line("s3 get", r, "get", ">= 0.9x"))
    text = report(results, (load_before, loads()), (sha_before, sha256_speed()))
    if args.write:
        args.write.write_text(text + "\n")
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
