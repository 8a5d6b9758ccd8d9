"""A database server stopped and restarted under a running Datalayer.

The server is a private PostgreSQL (or MariaDB) started by the test on its own port and data
directory, so stopping it disturbs nothing else. One Datalayer keeps data and metadata on it
(artifacts on the filesystem). In each cycle a background thread keeps calling the Datalayer
while the server is stopped at a random (seeded) moment; every call must either succeed or
raise ``BackendUnavailable`` (never another error, never hang); while the server is down every
kind of call raises ``BackendUnavailable``; after the restart every call works again on the
same Datalayer object, and nothing written before is lost.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pinnacle_it.private_servers import private_mariadb, private_postgres
from pinnacle_it.seeds import derived_seed

from pinnacle_protocols.errors import BackendUnavailable
from pinnacledb import LinearModel, pinnacle
from pinnacledb.base.datalayer import Datalayer

CYCLES = 3
#: A call while the server is down must fail within this many seconds (no hanging).
FAIL_FAST_SECONDS = 30.0


@contextlib.contextmanager
def _server(kind: str) -> Iterator[Any]:
    launcher = private_postgres if kind == "postgres" else private_mariadb
    with launcher() as server:
        yield server


def _fresh_database(kind: str, server: Any) -> str:
    name = f"restart_{uuid.uuid4().hex[:10]}"
    if kind == "postgres":
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=server.port, user="postgres", dbname="postgres", autocommit=True
        ) as con:
            con.execute(f'CREATE DATABASE "{name}"')
    else:
        import pymysql  # type: ignore[import-untyped]

        con = pymysql.connect(host="127.0.0.1", port=server.port, user="root", autocommit=True)
        try:
            with con.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        finally:
            con.close()
    return name


def _uri(kind: str, server: Any, database: str) -> str:
    uri: str = server.uri(database)
    return uri


class Ops:
    """The calls the test makes, each through the facade; ``counter`` makes writes distinct."""

    def __init__(self, db: Datalayer) -> None:
        """Calls on ``db``."""
        self.db = db
        self.counter = 1000
        self.lock = threading.Lock()

    def _next(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def calls(self, role: str) -> dict[str, Callable[[], Any]]:
        """Name -> a call that touches the databackend (``role="data"``) or the metadata store
        (``"metadata"``; artifacts are on the filesystem)."""
        db = self.db
        if role == "data":
            return {
                "count": lambda: db.count("t"),
                "select": lambda: db.select("t", {"k": {"$lt": 3}}),
                "insert": lambda: db.insert("t", [{"k": self._next(), "v": "x"}]),
                "list_tables": db.list_tables,
            }
        return {
            "show": db.show,
            "load": lambda: db.load("model", "m"),
            "apply": lambda: db.apply(
                LinearModel(identifier="m", weights=np.arange(3.0), bias=float(self._next()))
            ),
            "show_jobs": db.show_jobs,
        }


#: Known gaps as (kind, role) -> a strict xfail mark (notimpl/notyet); none at present.
GAPS: dict[tuple[str, str], Any] = {}


def _params() -> list[Any]:
    out = []
    for kind in ("postgres", "mariadb"):
        for role in ("data", "metadata"):
            seed = derived_seed(f"restart-{kind}-{role}")
            marks = [getattr(pytest.mark, kind)]
            if (kind, role) in GAPS:
                marks.append(GAPS[kind, role])
            out.append(pytest.param(kind, role, seed, marks=marks, id=f"{kind}-{role}-seed{seed}"))
    return out


@pytest.fixture(scope="module")
def private_servers() -> Iterator[dict[str, Any]]:
    """One private server per kind for the module, started on first use."""
    with contextlib.ExitStack() as stack:
        servers: dict[str, Any] = {}

        class Lazy(dict[str, Any]):
            def __missing__(self, kind: str) -> Any:
                self[kind] = stack.enter_context(_server(kind))
                return self[kind]

        servers = Lazy()
        yield servers


def _stop_under_load(
    server: Any, calls: dict[str, Callable[[], Any]], rng: random.Random, cycle: int
) -> list[tuple[str, str]]:
    """Stop the server at a random moment while a thread keeps calling; return the outcomes."""
    outcomes: list[tuple[str, str]] = []
    done = threading.Event()
    names = sorted(calls)
    local = random.Random(rng.random())

    def worker() -> None:
        while not done.is_set():
            name = local.choice(names)
            try:
                calls[name]()
                outcomes.append((name, "ok"))
            except BackendUnavailable:
                outcomes.append((name, "BackendUnavailable"))
            except Exception as exc:
                outcomes.append((name, f"{type(exc).__name__}: {exc}"))

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    delay = rng.uniform(0.0, 0.6)
    mode = rng.choice(["fast", "immediate"])
    print(f"cycle {cycle}: stop ({mode}) after {delay:.3f} s")
    time.sleep(delay)
    server.stop(mode)
    time.sleep(0.3)
    done.set()
    thread.join(FAIL_FAST_SECONDS * 2)
    assert not thread.is_alive(), "a call hung while the server went down"
    return outcomes


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "role", "seed"), _params())
def test_calls_fail_while_down_and_work_after_restart(
    kind: str, role: str, seed: int, tmp_path: Path, private_servers: dict[str, Any]
) -> None:
    """Stop/start the server CYCLES times under one Datalayer; see the module docstring."""
    rng = random.Random(seed)
    print(f"seed {seed}")
    server = private_servers[kind]
    if not server.running():
        server.start()
    uri = _uri(kind, server, _fresh_database(kind, server))
    db = pinnacle(uri, artifact_store=f"filesystem://{tmp_path}/artifacts")
    try:
        calls = Ops(db).calls(role)
        db.create_table("t", {"k": "int", "v": "str"})
        db.insert("t", [{"k": i, "v": "x"} for i in range(5)])
        db.apply(LinearModel(identifier="m", weights=np.arange(3.0), bias=0.0))
        rows_before = db.count("t")
        versions_before = db.show("model", "m")
        for cycle in range(CYCLES):
            outcomes = _stop_under_load(server, calls, rng, cycle)
            wrong = [o for o in outcomes if o[1] not in ("ok", "BackendUnavailable")]
            assert not wrong, f"cycle {cycle}: calls failed with other errors: {wrong[:4]}"
            for name, call in calls.items():
                started = time.monotonic()
                with pytest.raises(BackendUnavailable) as info:
                    call()
                took = time.monotonic() - started
                assert took < FAIL_FAST_SECONDS, f"{name} took {took:.1f} s to fail"
                assert "127.0.0.1" in str(info.value), f"{name}: the message names no store"
            server.start()
            for call in calls.values():
                call()  # the same Datalayer works again, at the first try
            ok = sum(o[1] == "ok" for o in outcomes)
            print(f"cycle {cycle}: {len(outcomes)} calls during the stop, {ok} ok")
        # nothing written before the restarts is lost
        if role == "data":
            assert db.count("t") >= rows_before
            assert db.count("t", {"k": {"$lt": 5}}) == 5
        else:
            assert set(versions_before) <= set(db.show("model", "m"))
            model = db.load("model", "m", versions_before[0])
            assert isinstance(model, LinearModel)
            assert np.array_equal(model.weights, np.arange(3.0))
    finally:
        db.close()
