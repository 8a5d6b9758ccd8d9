"""change_token (SupportsChangeToken): exact on SQLite, None where the store cannot tell.

The contract: a token equal to an earlier one means nothing was committed to the store, by
any connection or process, since that earlier call began. Checked against real writes of this
store, of another store object on the same file, of other processes (real subprocesses), and
against a writer process racing with a reader that trusts equal tokens.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from pinnacle_protocols import (
    BackendUnavailable,
    ComponentKey,
    ComponentRecord,
    JobRecord,
    JobStatus,
    SupportsChangeToken,
)
from pinnacle_sql import SQLAlchemyMetadataStore

EXACT = ("sqlite_file", "sqlite_memory")


def rec(identifier: str = "m", **kw: object) -> ComponentRecord:
    return ComponentRecord(type_id="model", identifier=identifier, **kw)  # type: ignore[arg-type]


def _run(code: str) -> None:
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, timeout=120)


def test_token_changes_on_every_kind_of_write_and_only_then(
    store: SQLAlchemyMetadataStore, backend: str
) -> None:
    assert isinstance(store, SupportsChangeToken)
    if backend not in EXACT:
        # PostgreSQL, MariaDB, DuckDB: no exact signal without a round trip: the caller reads
        store.create_component(rec())
        assert store.change_token() is None
        return
    a = rec("a")
    k0 = ComponentKey(type_id="model", identifier="a", version=0)
    k1 = ComponentKey(type_id="model", identifier="a", version=1)
    writes: list[Callable[[], object]] = [
        lambda: store.create_component(a),
        lambda: store.create_component(rec("a", data={"x": 1})),
        lambda: store.create_parent_child(k1, k0),
        lambda: store.create_job(JobRecord(job_id="j", kind="predict", component=k0)),
        lambda: store.update_job(attrs.evolve(store.get_job("j"), status=JobStatus.RUNNING)),
        lambda: store.set_metadata("k", {"v": 1}),
        lambda: store.swap_metadata("k", {"v": 1}, {"v": 2}),
        lambda: store.delete_job("j"),
        lambda: store.delete_component_version("model", "b", 0),
    ]
    store.create_component(rec("b"))
    seen = [store.change_token()]
    for write in writes:
        # reads leave it alone
        store.show_components()
        store.show_jobs()
        store.get_metadata("k")
        assert store.change_token() == seen[-1]
        write()
        token = store.change_token()
        assert token is not None
        assert token not in seen
        seen.append(token)


def test_another_store_on_the_same_file_changes_it(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'md.db'}"
    mine = SQLAlchemyMetadataStore.from_uri(uri)
    theirs = SQLAlchemyMetadataStore.from_uri(uri)
    try:
        mine.create_component(rec())
        t0 = mine.change_token()
        assert mine.change_token() == t0
        theirs.create_component(rec())
        t1 = mine.change_token()
        assert t1 != t0
        assert mine.change_token() == t1
        theirs.set_metadata("k", 1)
        assert mine.change_token() != t1
    finally:
        mine.close()
        theirs.close()


def test_another_process_changes_it(tmp_path: Path) -> None:
    """A real subprocess writing through pinnacle-sql, then through plain sqlite3 (any commit
    to the file counts, whoever makes it)."""
    path = tmp_path / "md.db"
    store = SQLAlchemyMetadataStore.from_uri(f"sqlite:///{path}")
    try:
        store.create_component(rec())
        t0 = store.change_token()
        _run(
            f"""
            from pinnacle_protocols import ComponentRecord
            from pinnacle_sql import SQLAlchemyMetadataStore
            s = SQLAlchemyMetadataStore.from_uri({f"sqlite:///{path}"!r})
            s.create_component(ComponentRecord(type_id="model", identifier="m"))
            s.close()
            """
        )
        t1 = store.change_token()
        assert t1 != t0
        assert store.get_component("model", "m").version == 1
        assert store.change_token() == t1
        _run(
            f"""
            import sqlite3
            c = sqlite3.connect({str(path)!r}, isolation_level=None)
            c.execute("CREATE TABLE user_table (a INTEGER)")
            c.close()
            """
        )
        assert store.change_token() != t1
    finally:
        store.close()


def test_memory_store_counts_its_own_writes() -> None:
    store = SQLAlchemyMetadataStore.from_uri("sqlite://")
    try:
        t0 = store.change_token()
        assert t0 is not None
        assert store.change_token() == t0
        store.create_component(rec())
        assert store.change_token() != t0
    finally:
        store.close()


def test_closed_store_raises(tmp_path: Path) -> None:
    for uri in (f"sqlite:///{tmp_path / 'md.db'}", "sqlite://"):
        store = SQLAlchemyMetadataStore.from_uri(uri)
        assert store.change_token() is not None
        store.close()
        with pytest.raises(BackendUnavailable, match="closed"):
            store.change_token()


def test_replaced_file_gives_none(tmp_path: Path) -> None:
    """A file replaced under the open store: the watch connection would watch the old file,
    so the store says it cannot tell (callers read, as before)."""
    path = tmp_path / "md.db"
    store = SQLAlchemyMetadataStore.from_uri(f"sqlite:///{path}")
    try:
        store.create_component(rec())
        assert store.change_token() is not None
        other = tmp_path / "other.db"
        sqlite3.connect(other).close()
        os.replace(other, path)
        assert store.change_token() is None
        path.unlink()
        assert store.change_token() is None
    finally:
        store.close()


def test_writer_process_racing_a_reader_that_trusts_equal_tokens(tmp_path: Path) -> None:
    """A subprocess writes new versions as fast as it can while this process keeps the latest
    record under the token taken before reading it. Whenever a token taken after a fresh read
    still equals the kept one, that fresh read must equal the kept record (nothing can have
    been committed in between): a missed change shows up as a mismatch."""
    path = tmp_path / "md.db"
    store = SQLAlchemyMetadataStore.from_uri(f"sqlite:///{path}")
    store.create_component(rec())
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import os
                from pinnacle_protocols import ComponentRecord
                from pinnacle_sql import SQLAlchemyMetadataStore
                s = SQLAlchemyMetadataStore.from_uri({f"sqlite:///{path}"!r})
                n = 0
                while not os.path.exists({str(stop)!r}) and n < 5000:
                    s.create_component(ComponentRecord(type_id="model", identifier="m",
                                                       data={{"n": n}}))
                    n += 1
                s.close()
                """
            ),
        ]
    )
    try:
        kept_token = store.change_token()
        kept = store.get_component("model", "m")
        trusted = changed = 0
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and writer.poll() is None:
            fresh = store.get_component("model", "m")
            token = store.change_token()
            if token == kept_token:
                assert fresh == kept, "a commit went unnoticed by change_token"
                trusted += 1
            else:
                changed += 1
                kept_token = token
                kept = store.get_component("model", "m")
        assert changed > 0
        assert trusted > 0
    finally:
        stop.touch()
        writer.wait(timeout=60)
        store.close()
    assert writer.returncode == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_opens_its_own_watch_connection(tmp_path: Path) -> None:
    """A child forked with the store open must not use the parent's SQLite connection: it
    opens its own, and both see each other's commits."""
    store = SQLAlchemyMetadataStore.from_uri(f"sqlite:///{tmp_path / 'md.db'}")
    try:
        store.create_component(rec())
        t0 = store.change_token()
        parent_watch = store._watch
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit code
            code = 1
            try:
                c0 = store.change_token()
                fresh = store._watch is not parent_watch
                store.create_component(rec())
                code = 0 if fresh and c0 is not None and store.change_token() != c0 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert store._watch is parent_watch
        assert store.change_token() != t0
        assert store.get_component("model", "m").version == 1
    finally:
        store.close()
