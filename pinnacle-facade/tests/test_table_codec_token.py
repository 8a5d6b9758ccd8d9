"""``table_codec`` keeps a table's codec while the metadata store's change token is unchanged.

Real stores throughout: SQLite data and metadata files, real subprocesses as the other
process. Column ``w`` is a plain bytes column in even Table versions and a JSON DataType
column in odd ones, so a stale codec shows in the rows (``b"[1, 2]"`` against ``[1, 2]``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from pinnacle_protocols import SupportsChangeToken
from pinnacledb import DataType, Table, pinnacle
from pinnacledb.base.datalayer import Datalayer

RAW = [{"id": 1, "w": b"[1, 2]"}]
DECODED = [{"id": 1, "w": [1, 2]}]
JSON_W = DataType(identifier="js", encoder="json")


def _uris(tmp_path: Path) -> tuple[str, str, str]:
    return (
        f"sqlite:///{tmp_path / 'data.db'}",
        f"sqlite:///{tmp_path / 'md.db'}",
        f"filesystem://{tmp_path / 'art'}",
    )


def _db(tmp_path: Path) -> Datalayer:
    data, md, art = _uris(tmp_path)
    return pinnacle(data, metadata_store=md, artifact_store=art)


def _version(n: int) -> Table:
    return Table.of("t", id="int", w=JSON_W if n % 2 else "bytes")


def _setup(tmp_path: Path) -> Datalayer:
    db = _db(tmp_path)
    db.apply(_version(0))
    db.insert("t", RAW)
    return db


_SUBPROCESS_PRELUDE = """
import sys
from pinnacledb import DataType, Table, pinnacle
JSON_W = DataType(identifier="js", encoder="json")
def version(n):
    return Table.of("t", id="int", w=JSON_W if n % 2 else "bytes")
db = pinnacle({data!r}, metadata_store={md!r}, artifact_store={art!r})
"""


def _script(tmp_path: Path, body: str) -> list[str]:
    data, md, art = _uris(tmp_path)
    code = _SUBPROCESS_PRELUDE.format(data=data, md=md, art=art) + textwrap.dedent(body)
    return [sys.executable, "-c", code]


def _count_metadata_reads(db: Datalayer, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement the metadata store's engine runs, and every get_component call."""
    seen: list[str] = []
    store: Any = db.metadata
    engine = store._ensure_ready()

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", on_execute)
    original = type(store).get_component

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(f"get_component{args}")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(store), "get_component", counting)
    return seen


def test_warm_select_reads_no_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = _setup(tmp_path)
    db.apply(_version(1))
    assert isinstance(db.metadata, SupportsChangeToken)
    assert db.select("t", {"id": 1}) == DECODED  # warms the codec
    seen = _count_metadata_reads(db, monkeypatch)
    for _ in range(20):
        assert db.select("t", {"id": 1}) == DECODED
    assert seen == []


def test_another_process_applying_a_new_version_is_seen_at_the_next_select(
    tmp_path: Path,
) -> None:
    db = _setup(tmp_path)
    for _ in range(3):
        assert db.select("t", {"id": 1}) == RAW
    subprocess.run(_script(tmp_path, "db.apply(version(1))"), check=True, timeout=120)
    assert db.select("t", {"id": 1}) == DECODED
    subprocess.run(_script(tmp_path, "db.apply(version(2))"), check=True, timeout=120)
    assert db.select("t", {"id": 1}) == RAW


def test_a_second_datalayer_on_the_same_files_is_seen(tmp_path: Path) -> None:
    db = _setup(tmp_path)
    other = _db(tmp_path)
    assert db.select("t", {"id": 1}) == RAW
    other.apply(_version(1))
    assert db.select("t", {"id": 1}) == DECODED


def test_own_apply_is_seen_by_the_next_select(tmp_path: Path) -> None:
    db = _setup(tmp_path)
    for n in range(1, 5):
        db.apply(_version(n))
        assert db.select("t", {"id": 1}) == (DECODED if n % 2 else RAW)


def test_in_memory_metadata_sees_own_apply(tmp_path: Path) -> None:
    db = pinnacle(
        f"sqlite:///{tmp_path / 'data.db'}",
        metadata_store="sqlite://",
        artifact_store=f"filesystem://{tmp_path / 'art'}",
    )
    db.apply(_version(0))
    db.insert("t", RAW)
    assert db.select("t", {"id": 1}) == RAW
    db.apply(_version(1))
    assert db.select("t", {"id": 1}) == DECODED


def test_store_without_the_capability_is_read_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = pinnacle(
        f"sqlite:///{tmp_path / 'data.db'}",
        metadata_store="memory://",
        artifact_store=f"filesystem://{tmp_path / 'art'}",
    )
    assert not isinstance(db.metadata, SupportsChangeToken)
    db.apply(_version(1))
    db.insert("t", [{"id": 1, "w": [1, 2]}])
    calls: list[object] = []
    original = db.metadata.get_component

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(db.metadata, "get_component", counting)
    for _ in range(3):
        assert db.select("t", {"id": 1}) == DECODED
    assert len(calls) == 3


def test_writer_process_racing_selects(tmp_path: Path) -> None:
    """A subprocess applies versions 1..N in lockstep with this process while a thread here
    asks for the codec without pause (filling the cache at every racy moment; the thread
    calls ``table_codec``, what select calls: pinnacle-ibis's SQLite connection belongs to
    the thread that made it). After the writer says version n is applied, the next select
    must decode with version n's codec; every codec the racing thread gets must be one of a
    version."""
    db = _setup(tmp_path)
    rounds = 12
    writer = subprocess.Popen(
        _script(
            tmp_path,
            f"""
            for n in range(1, {rounds + 1}):
                db.apply(version(n))
                print(n, flush=True)
                if sys.stdin.readline().strip() != "ok":
                    break
            """,
        ),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdin is not None
    assert writer.stdout is not None
    stop = threading.Event()
    odd: list[object] = []
    spins = [0]

    def spin() -> None:
        while not stop.is_set():
            codec = db.table_codec("t")
            if codec not in (None, {"w": JSON_W}):
                odd.append(codec)
            spins[0] += 1

    racer = threading.Thread(target=spin)
    racer.start()
    try:
        for n in range(1, rounds + 1):
            line = writer.stdout.readline()
            assert line.strip() == str(n)
            assert db.select("t", {"id": 1}) == (DECODED if n % 2 else RAW), f"version {n}"
            writer.stdin.write("ok\n")
            writer.stdin.flush()
    finally:
        stop.set()
        racer.join()
        writer.stdin.close()
        writer.wait(timeout=120)
    assert writer.returncode == 0
    assert odd == []
    assert spins[0] > rounds
