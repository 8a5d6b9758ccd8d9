"""Several processes at once, and a process SIGKILLed in the middle of a put."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import runpy
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pinnacle_fs import FsspecArtifactStore
from pinnacle_fs.testing import pattern_bytes, pattern_stream
from pinnacle_protocols import ArtifactNotFound

if TYPE_CHECKING:
    from conftest import S3Target

MiB = 1024 * 1024

WORKER = str(Path(__file__).with_name("_workers.py"))
ctx = multiprocessing.get_context("spawn")


def start(args: dict[str, Any]) -> Any:
    proc = ctx.Process(
        target=runpy.run_path,
        args=(WORKER,),
        kwargs={"init_globals": {"ARGS": args}, "run_name": "__main__"},
        daemon=True,
    )
    proc.start()
    return proc


def go(procs: list[Any], warm: Any, ready: Any) -> None:
    """Release the workers together once every one of them has connected."""
    for _ in procs:
        warm.get(timeout=120)
    ready.set()


def drain(queue: Any) -> list[str]:
    out = []
    while True:
        try:
            out.append(queue.get(timeout=0.1))
        except Exception:
            return out


def join_all(procs: list[Any], errors: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
    problems = drain(errors)
    assert not alive, f"{len(alive)} workers hung; errors: {problems}"
    assert not problems, problems
    assert [p.exitcode for p in procs] == [0] * len(procs), problems


def assert_no_partial_blob(store: FsspecArtifactStore, sha: str, data: bytes) -> None:
    """The blob is either absent or whole; iter_refs never lists a broken one."""
    if store.exists(sha):
        assert hashlib.sha256(store.get(sha)).hexdigest() == sha
    for ref in store.iter_refs():
        assert hashlib.sha256(store.get(ref)).hexdigest() == ref.sha256
        assert ref.size == len(data)


def same_bytes_at_once(
    uri: str, options: dict[str, Any], *, size: int, workers: int, repeat: int = 3
) -> None:
    data = pattern_bytes(size, seed=11)
    sha = hashlib.sha256(data).hexdigest()
    ready, warm, errors = ctx.Event(), ctx.Queue(), ctx.Queue()
    procs = [
        start(
            {
                "action": "put",
                "uri": uri,
                "options": options,
                "size": size,
                "seed": 11,
                "sha256": sha,
                "repeat": repeat,
                "as_bytes": i % 2 == 0,
                "ready": ready,
                "warm": warm,
                "errors": errors,
            }
        )
        for i in range(workers)
    ]
    go(procs, warm, ready)
    join_all(procs, errors)
    store = FsspecArtifactStore.from_uri(uri, **options)
    refs = list(store.iter_refs())
    assert [r.sha256 for r in refs] == [sha]
    assert refs[0].size == size
    assert store.get(sha) == data


@pytest.mark.file
def test_processes_putting_the_same_bytes(tmp_path: Path) -> None:
    """4 processes x 3 puts of the same 24 MiB: one intact blob, no error, no temp left."""
    uri = f"filesystem://{tmp_path}/shared"
    same_bytes_at_once(uri, {}, size=24 * MiB, workers=4)
    assert list((tmp_path / "shared" / ".pinnacle-tmp").iterdir()) == []


@pytest.mark.s3
def test_processes_putting_the_same_bytes_s3(s3: S3Target) -> None:
    """The same against SeaweedFS, with blobs large enough for multipart uploads (5 MiB parts)."""
    uri = s3.uri(f"conc-{os.getpid()}-{time.monotonic_ns()}")
    options = {**s3.options(), "block_size": 5 * MiB}
    same_bytes_at_once(uri, options, size=7 * MiB, workers=3, repeat=2)
    store = FsspecArtifactStore.from_uri(uri, **options)
    assert store.remove_stale_temp_files(older_than=0) == 0  # bytes/seekable: no temp keys
    store.drop(force=True)


def put_racing_delete(
    uri: str, options: dict[str, Any], *, size: int, rounds: int, repeat: int = 60
) -> None:
    data = pattern_bytes(size, seed=5)
    sha = hashlib.sha256(data).hexdigest()
    store = FsspecArtifactStore.from_uri(uri, **options)
    for _ in range(rounds):
        ready, warm, errors = ctx.Event(), ctx.Queue(), ctx.Queue()
        common = {"uri": uri, "options": options, "sha256": sha, "ready": ready, "warm": warm}
        procs = [
            start(
                {**common, "action": "put", "size": size, "seed": 5, "repeat": 6, "errors": errors}
            ),
            start({**common, "action": "delete", "repeat": 60, "errors": errors}),
            start({**common, "action": "read", "repeat": 60, "errors": errors}),
        ]
        go(procs, warm, ready)
        join_all(procs, errors)
        assert_no_partial_blob(store, sha, data)
        if store.exists(sha):
            assert store.get(sha) == data
        else:
            with pytest.raises(ArtifactNotFound):
                store.get(sha)
        assert store.put(data).sha256 == sha  # always possible afterwards
        store.delete(sha)


@pytest.mark.file
def test_put_racing_delete(tmp_path: Path) -> None:
    """A put racing deletes (and a reader) leaves the whole blob or none, never an error."""
    put_racing_delete(f"filesystem://{tmp_path}/race", {}, size=8 * MiB, rounds=2)
    assert list((tmp_path / "race" / ".pinnacle-tmp").iterdir()) == []


@pytest.mark.s3
def test_put_racing_delete_s3(s3: S3Target) -> None:
    """The same on SeaweedFS."""
    put_racing_delete(
        s3.uri(f"race-{time.monotonic_ns()}"), s3.options(), size=2 * MiB, rounds=1, repeat=30
    )


# --------------------------------------------------------------------------- crash
CRASH_SIZE = 200 * MiB


@pytest.mark.file
def test_sigkill_in_the_middle_of_a_200_mib_put(tmp_path: Path) -> None:
    """A put killed halfway leaves no visible or corrupted blob; the next put succeeds."""
    uri = f"filesystem://{tmp_path}/crash"
    data_sha = hashlib.sha256(pattern_bytes(CRASH_SIZE, seed=3)).hexdigest()
    reached = ctx.Event()
    errors = ctx.Queue()
    proc = start(
        {
            "action": "put",
            "uri": uri,
            "size": CRASH_SIZE,
            "seed": 3,
            "sha256": data_sha,
            "pause_at": CRASH_SIZE // 2,
            "reached": reached,
            "errors": errors,
        }
    )
    assert reached.wait(120), drain(errors)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL

    store = FsspecArtifactStore.from_uri(uri)
    assert list(store.iter_refs()) == []
    assert not store.exists(data_sha)
    with pytest.raises(ArtifactNotFound):
        store.get(data_sha)
    leftovers = list((tmp_path / "crash" / ".pinnacle-tmp").iterdir())
    assert len(leftovers) == 1
    assert leftovers[0].stat().st_size >= CRASH_SIZE // 2 - 8 * MiB
    assert store.remove_stale_temp_files() == 0  # younger than an hour: maybe still running

    ref = store.put(pattern_stream(CRASH_SIZE, seed=3))
    assert ref.sha256 == data_sha
    assert ref.size == CRASH_SIZE
    with store.open(ref) as reader:
        while reader.read(8 * MiB):
            pass
        assert getattr(reader, "verified") is True  # noqa: B009
    assert list(store.iter_refs()) == [ref]
    assert store.remove_stale_temp_files(older_than=0) == 1


@pytest.mark.file
@pytest.mark.slow
def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    """Kills at random points of 48 MiB puts (writing, fsync, rename): whole blob or none."""
    uri = f"filesystem://{tmp_path}/random"
    size = 48 * MiB
    data = pattern_bytes(size, seed=9)
    sha = hashlib.sha256(data).hexdigest()
    store = FsspecArtifactStore.from_uri(uri)
    rng = random.Random(1234)
    for _ in range(4):
        ready, warm, errors = ctx.Event(), ctx.Queue(), ctx.Queue()
        proc = start(
            {
                "action": "put",
                "uri": uri,
                "size": size,
                "seed": 9,
                "sha256": sha,
                "repeat": 50,
                "ready": ready,
                "warm": warm,
                "errors": errors,
            }
        )
        go([proc], warm, ready)
        time.sleep(rng.uniform(0.05, 1.5))
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
        assert drain(errors) == []
        assert_no_partial_blob(store, sha, data)
        store.delete(sha)
    assert store.put(data).sha256 == sha
    store.remove_stale_temp_files(older_than=0)
    assert list((tmp_path / "random" / ".pinnacle-tmp").iterdir()) == []
