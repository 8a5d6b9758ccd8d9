"""``pinnacle ui``: the JSON API against its OpenAPI document, the pages, the guards (read-only,
loopback Host, token), the CLI's refusals, and one drive through the page in Chromium.

Everything runs against one real deployment per module (SQLite data and metadata, artifacts
on disk): a Table with encoded columns, a model in two versions, a listener, jobs.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pinnacle_protocols.records import ComponentKey, JobRecord, JobStatus
from pinnacle_protocols.serialization import utcnow
from pinnacledb import DataType, LinearModel, Listener, Table, pinnacle
from pinnacledb.base.datalayer import Datalayer
from pinnacledb.cli import main

starlette_testclient = pytest.importorskip("starlette.testclient")
from pinnacledb.ui.app import TOKEN_COOKIE, create_app  # noqa: E402
from pinnacledb.ui.openapi import openapi_document  # noqa: E402

TestClient = starlette_testclient.TestClient
BASE = "http://127.0.0.1:8765"
TOKEN = "tok-0123456789abcdef-XYZ"

#: In a failed job's error: the UI must never show it.
LEAKED_PASSWORD = "hunter2-not-shown"
RUNNING_JOB = "predict-running0000"
ROWS = 12


def build_deployment(root: Path) -> Datalayer:
    """Create the deployment under ``root`` and return its Datalayer."""
    db = pinnacle(
        f"sqlalchemy+sqlite:///{root}/data.db",
        metadata_store=f"sqlite:///{root}/metadata.db",
        artifact_store=f"filesystem://{root}/artifacts",
    )
    vec = DataType(identifier="vec", encoder="numpy")
    big = DataType(identifier="bigvec", encoder="numpy", by_reference=True)
    db.apply(Table.of("items", id="int", x="float", note="str", emb=vec, blob=big))
    db.insert(
        "items",
        [
            {
                "id": i,
                "x": float(i),
                "note": f"row {i}",
                "emb": np.arange(3, dtype="float32") + i,
                "blob": np.full(64, i, dtype="float64"),
            }
            for i in range(ROWS)
        ],
    )
    model = LinearModel.fit("m", [[1.0], [2.0], [3.0]], [2.0, 4.0, 6.0])
    db.apply(model)
    db.apply(LinearModel.fit("m", [[1.0], [2.0], [3.0]], [3.0, 6.0, 9.0]))
    latest = db.load("model", "m")
    assert isinstance(latest, LinearModel)
    db.apply(Listener(model=latest, table="items", inputs="x"))
    db.predict("m", "items", inputs="x", version=0)
    md = db.metadata
    now = utcnow()
    key = ComponentKey(type_id="model", identifier="m", version=0)
    md.create_job(
        JobRecord(
            job_id="predict-failed0000",
            kind="predict",
            status=JobStatus.FAILED,
            component=key,
            created_at=now,
            started_at=now,
            finished_at=now,
            error=f"OperationalError: connecting to postgresql://alice:{LEAKED_PASSWORD}@db/x",
            runner="local://",
            rows_total=10,
            rows_done=4,
            tasks_total=2,
            tasks_done=1,
            tasks_failed=1,
        )
    )
    md.create_job(
        JobRecord(
            job_id=RUNNING_JOB,
            kind="predict",
            status=JobStatus.RUNNING,
            component=key,
            created_at=now,
            started_at=now,
            runner="local://",
            rows_total=100,
            rows_done=10,
            tasks_total=10,
            tasks_done=1,
            updated_at=now,
        )
    )
    return db


def advance(db: Datalayer, rows_done: int, **more: Any) -> JobRecord:
    """Record progress of the running job, as a runner's driver does."""
    from attrs import evolve

    job = db.metadata.get_job(RUNNING_JOB)
    return db.metadata.update_job(
        evolve(job, rows_done=rows_done, tasks_done=rows_done // 10, updated_at=utcnow(), **more)
    )


def stored_bytes(db: Datalayer, column: str, row_id: int) -> bytes:
    """What the databackend holds in an encoded column (inline bytes or the blob it names)."""
    [row] = db.select("items", {"id": row_id}, decode=False)
    value = row[column]
    return db.artifact_store.get(value) if isinstance(value, str) else bytes(value)


def sha_prefix(data: bytes) -> str:
    """The sha256 prefix the UI shows."""
    return hashlib.sha256(data).hexdigest()[:12]


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Datalayer]:
    db = build_deployment(tmp_path_factory.mktemp("ui"))
    yield db
    db.close()


@pytest.fixture(scope="module")
def client(deployment: Datalayer) -> Iterator[Any]:
    with TestClient(create_app(deployment), base_url=BASE) as c:
        yield c


# ---------------------------------------------------------------------- OpenAPI check
def _check(value: Any, schema: dict[str, Any], doc: dict[str, Any], where: str = "$") -> None:
    """Check ``value`` against the subset of JSON Schema the document uses."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        _check(value, doc["components"]["schemas"][name], doc, where)
        return
    if "oneOf" in schema:
        errors = []
        for option in schema["oneOf"]:
            try:
                _check(value, option, doc, where)
            except AssertionError as exc:
                errors.append(str(exc))
        assert len(errors) == len(schema["oneOf"]) - 1, f"{where}: oneOf: {errors}"
        return
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        python: dict[str, type | tuple[type, ...]] = {
            "string": str,
            "integer": int,
            "number": (int, float),
            "boolean": bool,
            "null": type(None),
            "object": dict,
            "array": list,
        }
        ok = any(
            isinstance(value, python[k])
            and not (k in ("integer", "number") and isinstance(value, bool))
            for k in kinds
        )
        assert ok, f"{where}: {value!r} is not {kinds}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        assert value >= schema.get("minimum", value), where
        assert value <= schema.get("maximum", value), where
    if isinstance(value, dict) and "properties" in schema:
        missing = set(schema.get("required", ())) - set(value)
        assert not missing, f"{where}: missing {missing}"
        if schema.get("additionalProperties") is False:
            extra = set(value) - set(schema["properties"])
            assert not extra, f"{where}: unexpected {extra}"
        for k, v in value.items():
            if k in schema["properties"]:
                _check(v, schema["properties"][k], doc, f"{where}.{k}")
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for k, v in value.items():
            _check(v, schema["additionalProperties"], doc, f"{where}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            _check(v, schema["items"], doc, f"{where}[{i}]")


def _get_checked(client: Any, path: str, **params: Any) -> Any:
    """GET an API path and check the response against the OpenAPI document."""
    doc = client.get("/api/openapi.json").json()
    resp = client.get(path, params=params)
    op = doc["paths"][path]["get"]
    assert str(resp.status_code) in op["responses"], (path, resp.status_code, resp.text)
    content = op["responses"][str(resp.status_code)].get("content")
    if content is not None:
        _check(resp.json(), content["application/json"]["schema"], doc, path)
    return resp


def test_openapi_document_names_every_api_route(client: Any) -> None:
    doc = client.get("/api/openapi.json").json()
    assert doc == openapi_document(doc["info"]["version"])
    routes = {r.path for r in client.app.routes if getattr(r, "path", "").startswith("/api/")}
    assert routes - {"/api/openapi.json"} == set(doc["paths"])
    for op in doc["paths"].values():
        assert set(op) == {"get"}  # nothing but reads is described


# ---------------------------------------------------------------------- the API
def test_overview_matches_the_stores(client: Any, deployment: Datalayer) -> None:
    o = _get_checked(client, "/api/overview").json()
    assert {s["role"] for s in o["stores"]} == {
        "databackend",
        "metadata",
        "artifact_store",
        "compute",
    }
    by_role = {s["role"]: s for s in o["stores"]}
    assert by_role["metadata"]["uri"] == str(deployment.slots["metadata"].uri)
    assert by_role["databackend"]["package"].startswith("pinnacle-sql ")
    keys = deployment.show()
    assert o["components"]["total"] == len(keys)
    assert o["components"]["by_type"]["model"] == 1
    assert o["components"]["by_type"]["listener"] == 1
    assert o["tables"]["total"] == len(deployment.list_tables())
    jobs = deployment.metadata.show_jobs()
    assert o["jobs"]["total"] == len(jobs)
    assert o["jobs"]["by_status"]["failed"] == 1
    assert o["jobs"]["by_status"]["running"] == 1
    refs = list(deployment.artifact_store.iter_refs())
    assert o["artifacts"] == {
        "count": len(refs),
        "bytes": sum(r.size for r in refs),
        "complete": True,
    }


def test_components_filter_by_type_and_paginate(client: Any, deployment: Datalayer) -> None:
    every = _get_checked(client, "/api/components").json()
    assert every["total"] == len(deployment.show())
    assert {"model", "listener", "table", "datatype"} <= set(every["types"])
    models = _get_checked(client, "/api/components", type="model").json()
    assert [(c["identifier"], c["latest"], c["versions"]) for c in models["items"]] == [
        ("m", 1, [0, 1])
    ]
    first = _get_checked(client, "/api/components", limit=2).json()
    second = _get_checked(client, "/api/components", limit=2, offset=2).json()
    assert len(first["items"]) == 2
    assert first["items"] + second["items"] == every["items"][:4]


def test_component_versions_fields_artifacts_and_lineage_links(
    client: Any, deployment: Datalayer
) -> None:
    c = _get_checked(client, "/api/component", type="model", id="m", version=0).json()
    rec = deployment.get_record("model", "m", 0)
    assert c["versions"] == [0, 1]
    assert c["version"] == 0
    assert c["class"] == "linear_model"
    assert c["artifacts"] == [
        {"name": n, "sha256": r.sha256, "size": r.size, "serializer": "numpy"}
        for n, r in sorted(rec.artifacts.items())
    ]
    assert c["fields"]["predict_method"] == "predict"
    assert {j["job_id"] for j in c["jobs"]} >= {"predict-failed0000", RUNNING_JOB}
    latest = _get_checked(client, "/api/component", type="model", id="m").json()
    assert latest["version"] == 1
    listener = deployment.show("listener")[0]
    assert latest["parents"] == [{"type_id": "listener", "identifier": listener, "version": 0}]
    lst = _get_checked(client, "/api/component", type="listener", id=listener).json()
    assert {(k["type_id"], k["identifier"]) for k in lst["children"]} == {
        ("model", "m"),
        ("table", "items"),
    }
    assert {(t["relation"], t["table"]) for t in lst["tables"]} == {
        ("reads", "items"),
        ("writes", f"outputs__{listener}"),
    }


def test_lineage_graph_nodes_edges_and_layout(client: Any, deployment: Datalayer) -> None:
    g = _get_checked(client, "/api/lineage").json()
    nodes = {n["id"]: n for n in g["nodes"]}
    listener = deployment.show("listener")[0]
    lst, model = f"c:listener/{listener}/0", "c:model/m/1"
    edges = {(e["source"], e["target"], e["relation"]) for e in g["edges"]}
    assert (model, lst, "used by") in edges
    assert ("t:items", lst, "reads") in edges
    assert (lst, f"t:outputs__{listener}", "writes") in edges
    assert ("c:table/items/0", "t:items", "defines") in edges
    # the predict job of m v0 drew its source and outputs table
    assert ("t:items", "c:model/m/0", "reads") in edges
    assert ("c:model/m/0", "t:outputs__m", "writes") in edges
    for n in nodes.values():
        assert 0 <= n["x"] < g["width"]
        assert 0 <= n["y"] < g["height"]
    for s, t, _ in edges:  # arrows point right (the graph has no cycle)
        assert nodes[s]["x"] < nodes[t]["x"], (s, t)
    around = _get_checked(client, "/api/lineage", type="model", id="m", version=1, depth=1).json()
    assert around["center"] == model
    assert {n["id"] for n in around["nodes"]} >= {model, lst}
    assert "c:model/m/0" not in {n["id"] for n in around["nodes"]}


def test_lineage_depth_and_the_cap_on_drawn_components(
    client: Any, deployment: Datalayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = deployment.show("listener")[0]
    outputs = f"t:outputs__{listener}"

    def ids(**params: Any) -> set[str]:
        g = _get_checked(client, "/api/lineage", type="model", id="m", **params).json()
        return {n["id"] for n in g["nodes"]}

    near = ids(depth=0)  # the model's own edges only: the listener, not what it writes
    assert f"c:listener/{listener}/0" in near
    assert outputs not in near
    assert outputs in ids(depth=1)
    import pinnacledb.ui.data as ui_data
    from pinnacledb.ui.data import Deployment

    monkeypatch.setattr(ui_data, "MAX_GRAPH_COMPONENTS", 2)
    g = Deployment(deployment).lineage()
    assert g["truncated"] is True
    drawn = {n["identifier"] for n in g["nodes"] if n["kind"] == "component"}
    assert "m" not in drawn  # sorted by type: two datatypes and their neighbours only
    assert Deployment(deployment).lineage("model", "m", depth=5)["truncated"] is True


def test_jobs_progress_follows_the_job_record(client: Any, deployment: Datalayer) -> None:
    def running() -> dict[str, Any]:
        page = _get_checked(client, "/api/jobs", status="running").json()
        [job] = page["items"]
        return job  # type: ignore[no-any-return]

    advance(deployment, 10, status=JobStatus.RUNNING, finished_at=None)
    before = running()
    assert before["job_id"] == RUNNING_JOB
    assert before["rows_done"] == 10
    assert before["fraction"] == pytest.approx(0.1)
    advance(deployment, 55)
    after = running()
    assert after["rows_done"] == 55
    assert after["fraction"] == pytest.approx(0.55)
    one = _get_checked(client, "/api/job", id=RUNNING_JOB).json()
    assert one["rows_done"] == 55
    exact = _get_checked(
        client, "/api/jobs", component="m", type="model", version=0, limit=200
    ).json()
    assert {j["job_id"] for j in exact["items"]} >= {RUNNING_JOB, "predict-failed0000"}
    assert all(j["component"]["version"] == 0 for j in exact["items"])


def test_table_schema_count_and_rows_describe_encoded_columns(
    client: Any, deployment: Datalayer
) -> None:
    t = _get_checked(client, "/api/table", name="items", rows=5).json()
    assert t["rows"] == ROWS
    cols = {c["name"]: c for c in t["columns"]}
    assert cols["emb"]["encoded"] == {"datatype": "vec", "encoder": "numpy", "by_reference": False}
    assert cols["blob"]["encoded"]["by_reference"] is True
    assert cols["x"]["encoded"] is None
    assert len(t["first_rows"]) == 5
    for row in t["first_rows"]:
        emb, blob = row["emb"], row["blob"]
        assert emb["kind"] == "encoded"
        assert emb["datatype"] == "vec"
        raw = stored_bytes(deployment, "emb", row["id"])
        assert (emb["size"], emb["sha256"]) == (len(raw), sha_prefix(raw))
        raw = stored_bytes(deployment, "blob", row["id"])
        assert (blob["size"], blob["sha256"]) == (len(raw), sha_prefix(raw))
    tables = _get_checked(client, "/api/tables").json()
    assert {t["name"]: t["rows"] for t in tables["items"]}["items"] == ROWS


def test_no_bytes_and_no_secret_in_any_response(client: Any, deployment: Datalayer) -> None:
    raw = stored_bytes(deployment, "emb", 0)
    paths = [
        "/api/overview",
        "/api/components",
        "/api/jobs?limit=200",
        "/api/job?id=predict-failed0000",
        "/api/table?name=items&rows=100",
        "/api/lineage",
        "/",
        "/jobs",
        "/job?id=predict-failed0000",
        "/table?name=items",
        "/component?type=model&id=m&version=0",
    ]
    for path in paths:
        resp = client.get(path)
        assert resp.status_code == 200, path
        assert LEAKED_PASSWORD not in resp.text, path
        assert raw.hex() not in resp.text, path
        assert repr(raw)[2:30] not in resp.text, path
    failed = client.get("/api/job", params={"id": "predict-failed0000"}).json()
    assert "postgresql://alice:***@db/x" in failed["error"]


HOSTILE = [
    "\x00",
    "../../../etc/passwd",
    "' OR 1=1 --",
    "x" * 5000,
    "-1",
    "99999999999999999999",
    "1e3",
    "<script>alert(1)</script>",
    "%00",
    '{"$gt": ""}',
]


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/api/components", "type"),
        ("/api/components", "offset"),
        ("/api/components", "limit"),
        ("/api/component", "id"),
        ("/api/component", "version"),
        ("/api/lineage", "id"),
        ("/api/lineage", "depth"),
        ("/api/jobs", "status"),
        ("/api/jobs", "component"),
        ("/api/job", "id"),
        ("/api/table", "name"),
        ("/api/table", "rows"),
        ("/component", "id"),
        ("/table", "name"),
    ],
)
def test_hostile_parameters_get_a_4xx_never_a_500(client: Any, path: str, param: str) -> None:
    base = {"type": "model", "id": "m", "name": "items"}
    for value in HOSTILE:
        resp = client.get(path, params={**base, param: value})
        assert resp.status_code in (200, 400, 404), (path, param, value, resp.text[:300])
        if path.startswith("/api/"):
            assert resp.headers["content-type"] == "application/json"
            _check(resp.json(), {"type": "object"}, {})
        else:
            assert "<script>alert" not in resp.text  # escaped
    twice = client.get(f"{path}?{param}=1&{param}=2&type=model&id=m&name=items")
    assert twice.status_code == 400
    # bytes that are not UTF-8 (a lone surrogate's encoding, 0xFF) and an encoded NUL
    for raw in ("%ED%A0%80", "%FF%FE", "a%00b"):
        resp = client.get(f"{path}?type=model&id=m&name=items&{param}={raw}")
        assert resp.status_code in (200, 400, 404), (path, param, raw, resp.text[:300])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(
        [
            "/api/components",
            "/api/component",
            "/api/lineage",
            "/api/jobs",
            "/api/job",
            "/api/table",
            "/api/tables",
        ]
    ),
    params=st.dictionaries(
        st.sampled_from(
            [
                "type",
                "id",
                "version",
                "offset",
                "limit",
                "depth",
                "status",
                "component",
                "name",
                "rows",
            ]
        ),
        st.text(max_size=40) | st.integers(-(2**70), 2**70).map(str),
        max_size=4,
    ),
)
def test_random_parameters_never_500_and_match_the_document(
    client: Any, path: str, params: dict[str, str]
) -> None:
    _get_checked(client, path, **params)


# ---------------------------------------------------------------------- guards
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"])
def test_every_method_but_get_and_head_is_405(
    client: Any, deployment: Datalayer, method: str
) -> None:
    before = client.get("/api/overview").json()
    for path in ("/", "/api/overview", "/api/jobs", "/static/ui.js", "/nowhere"):
        resp = client.request(method, path, content=b"{}")
        assert resp.status_code == 405, (method, path)
        assert resp.headers["allow"] == "GET, HEAD"
    assert client.get("/api/overview").json() == before
    assert client.head("/api/overview").status_code == 200


def test_loopback_mode_refuses_a_foreign_host_header(client: Any) -> None:
    assert client.get("/", headers={"host": "evil.example:8765"}).status_code == 400
    assert client.get("/", headers={"host": "localhost:8765"}).status_code == 200
    assert client.get("/", headers={"host": "[::1]:8765"}).status_code == 200
    resp = client.get("/")
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert resp.headers["x-content-type-options"] == "nosniff"


def test_remote_mode_needs_the_token_on_every_request(deployment: Datalayer) -> None:
    app = create_app(deployment, token=TOKEN, check_host=False)
    with TestClient(app, base_url="http://198.51.100.7:8765") as c:
        for path in ("/", "/api/overview", "/static/ui.css", "/api/openapi.json"):
            assert c.get(path).status_code == 401, path
            assert (
                c.get(path, headers={"authorization": "Bearer wrong-token-0000000"}).status_code
                == 401
            )
            assert c.get(path, headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert (
            c.get("/api/overview", headers={"authorization": f"Bearer {TOKEN}x"}).status_code == 401
        )
        assert c.get(f"/?token={TOKEN[:-1]}").status_code == 401
        # the token in the URL is traded for an HttpOnly cookie, and the URL loses it
        resp = c.get(f"/jobs?status=running&token={TOKEN}", follow_redirects=False)
        assert resp.status_code == 303
        assert resp.headers["location"] == "/jobs?status=running"
        cookie = resp.headers["set-cookie"]
        assert cookie.startswith(f"{TOKEN_COOKIE}={TOKEN}")
        assert "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower()
        assert c.get("/jobs?status=running").status_code == 200  # the client kept the cookie
        assert c.post("/api/overview").status_code == 405  # read-only before the token check


def test_token_is_compared_in_constant_time(
    deployment: Datalayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hmac

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    app = create_app(deployment, token=TOKEN, check_host=False)
    with TestClient(app, base_url="http://198.51.100.7:8765") as c:
        assert c.get("/api/overview", headers={"authorization": "Bearer nope"}).status_code == 401
    assert (b"nope", TOKEN.encode()) in calls


# ---------------------------------------------------------------------- the command
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ui(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["ui", "--metadata", "memory://", *argv])
    return code, capsys.readouterr().err


def test_cli_refuses_a_remote_host_without_allow_remote_and_a_token(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, err = _ui(capsys, "--host", "0.0.0.0")
    assert code == 2
    assert "not a loopback address" in err
    assert "--allow-remote" in err
    code, err = _ui(capsys, "--host", "0.0.0.0", "--allow-remote")
    assert code == 2
    assert "needs a token" in err
    assert "PINNACLE_UI_TOKEN" in err
    short = tmp_path / "short"
    short.write_text("abc\n")
    code, err = _ui(capsys, "--host", "0.0.0.0", "--allow-remote", "--token-file", str(short))
    assert code == 2
    assert "at least 16 characters" in err
    assert "abc" not in err
    code, err = _ui(capsys, "--token-file", str(tmp_path / "missing"))
    assert code == 2
    assert "cannot read the token file" in err
    code, err = _ui(capsys, "--port", "70000")
    assert code == 2
    assert "--port" in err


def test_cli_serves_remote_mode_with_the_token(tmp_path: Path) -> None:
    """The real command: bound to 0.0.0.0 with --allow-remote, every request needs the token."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PINNACLEDB_")}
    env["PINNACLE_UI_TOKEN"] = TOKEN
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pinnacledb.cli",
            "ui",
            "--databackend",
            "memory://",
            "--metadata",
            f"sqlite:///{tmp_path}/m.db",
            "--artifact-store",
            f"filesystem://{tmp_path}/a",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--allow-remote",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/api/overview"
    try:
        deadline = time.monotonic() + 30
        status = None
        while status is None:
            try:
                urllib.request.urlopen(url, timeout=2)
                status = 200
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "pinnacle ui did not start"
                time.sleep(0.1)
        assert status == 401  # no token
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = json.loads(resp.read())
        assert body["components"]["total"] == 0
        post = urllib.request.Request(url, data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(post, timeout=5)
        assert err.value.code == 405
    finally:
        proc.terminate()
        out, errs = proc.communicate(timeout=15)
    assert "every request must carry the token" in out
    assert TOKEN not in out + errs


# ---------------------------------------------------------------------- the page in a browser
CHROMIUM = Path("/usr/bin/chromium")


DEMO_MODEL = "iris-petal-width"
DEMO_OUTPUTS = "outputs__iris_petal_width"


@contextmanager
def _serving(db: Datalayer) -> Iterator[str]:
    """The app on a real socket (uvicorn in a thread), polling jobs every 0.2 s."""
    import uvicorn

    port = _free_port()
    config = uvicorn.Config(
        create_app(db, poll_seconds=0.2),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def served(deployment: Datalayer) -> Iterator[str]:
    with _serving(deployment) as url:
        yield url


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Datalayer]:
    """A deployment made by ``pinnacle demo`` on the embedded default, opened in this process."""
    root = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PINNACLEDB_")}
    run = subprocess.run(
        [str(Path(sys.executable).parent / "pinnacle"), "demo"],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    home = root / ".pinnacledb"
    db = pinnacle(
        f"duckdb://{home}/data.duckdb",
        metadata_store=f"sqlite:///{home}/metadata.db",
        artifact_store=f"filesystem://{home}/artifacts",
    )
    yield db
    db.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One Chromium for the module's browser tests (a page each)."""
    if not CHROMIUM.exists():
        pytest.fail("the browser tests need Debian's chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def _api(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.browser
@pytest.mark.duckdb
@pytest.mark.sqlite
def test_browse_the_demo_deployment_against_its_stores(demo: Datalayer, chromium: Any) -> None:
    """Chromium on the demo's deployment: overview -> the model -> its versions -> lineage."""
    with _serving(demo) as base:
        page = chromium.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))

        page.goto(base + "/")
        stores = page.locator("table.stores").inner_text()
        for role in ("databackend", "metadata", "artifact_store"):
            assert str(demo.slots[role].uri) in stores, role
        cards = page.locator("#card-components")
        assert cards.locator(".big").inner_text() == str(len(demo.show()))
        tables = demo.list_tables()
        assert set(tables) >= {"iris", DEMO_OUTPUTS}
        assert page.locator("#card-tables .big").inner_text() == str(len(tables))
        jobs = demo.show_jobs()
        assert page.locator("#card-jobs .big").inner_text() == str(len(jobs))
        assert f"success: {len(jobs)}" in page.locator("#card-jobs").inner_text()

        cards.get_by_role("link", name="model").click()
        page.get_by_role("link", name=DEMO_MODEL, exact=True).click()
        versions = demo.show("model", DEMO_MODEL)
        assert versions == [0, 1]
        assert page.locator("h1").inner_text() == f"model {DEMO_MODEL} v{versions[-1]}"
        assert page.locator("p.versions").inner_text().split() == ["versions:", "v0", "v1"]
        page.locator("p.versions").get_by_role("link", name="v0").click()
        assert page.locator("h1").inner_text() == f"model {DEMO_MODEL} v0"
        ref = demo.get_record("model", DEMO_MODEL, 0).artifacts["weights"]
        cells = page.locator("table.artifacts tbody tr").first.locator("td").all_inner_texts()
        assert cells == ["weights", ref.sha256[:16] + "…", f"{ref.size} B", "numpy"]
        assert demo.artifact_store.size(ref) == ref.size

        # the lineage around v0: what the page draws is what the API says, centred on v0
        api = _api(base, f"/api/lineage?type=model&id={DEMO_MODEL}&version=0&depth=1")
        drawn = page.locator("svg#lineage a.node")
        assert sorted(drawn.evaluate_all("ns => ns.map(n => n.dataset.node)")) == sorted(
            n["id"] for n in api["nodes"]
        )
        center = page.locator("svg#lineage a.node.center")
        assert center.get_attribute("data-node") == f"c:model/{DEMO_MODEL}/0"
        assert page.locator("svg#lineage path.edge").count() == len(api["edges"])
        # v0 predicted into the outputs table: follow the arrow to it
        page.locator(f'svg#lineage a.node[data-node="t:{DEMO_OUTPUTS}"]').click()
        assert page.locator("h1").inner_text() == f"Table {DEMO_OUTPUTS}"
        assert page.locator("#row-count").inner_text() == str(demo.count(DEMO_OUTPUTS))

        # the whole graph: every component and every table of the stores is drawn
        page.get_by_role("link", name="Lineage", exact=True).click()
        nodes = set(
            page.locator("svg#lineage a.node").evaluate_all("ns => ns.map(n => n.dataset.node)")
        )
        assert {f"c:{k.type_id}/{k.identifier}/{k.version}" for k in demo.show()} <= nodes
        assert {f"t:{t}" for t in tables} <= nodes
        assert problems == []
        page.close()


@pytest.mark.browser
def test_browse_overview_model_lineage_and_live_job_progress(
    served: str, deployment: Datalayer, chromium: Any
) -> None:
    """Chromium: overview -> a model -> its versions and lineage; a running job's bar moves."""
    page = chromium.new_page()
    try:
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))

        page.goto(served + "/")
        cards = page.locator("#card-components")
        assert cards.locator(".big").inner_text() == str(len(deployment.show()))
        assert str(deployment.slots["metadata"].uri) in page.locator("table.stores").inner_text()

        cards.get_by_role("link", name="model").click()
        page.get_by_role("link", name="m", exact=True).click()
        assert page.locator("h1").inner_text() == "model m v1"
        page.locator("p.versions").get_by_role("link", name="v0").click()
        assert page.locator("h1").inner_text() == "model m v0"
        sha = deployment.get_record("model", "m", 0).artifacts["weights"].sha256
        assert page.locator("table.artifacts .sha").inner_text() == sha[:16] + "…"
        drawn = page.locator("svg#lineage a.node")
        api = json.loads(
            urllib.request.urlopen(served + "/api/lineage?type=model&id=m&version=0&depth=1").read()
        )
        assert drawn.count() == len(api["nodes"])
        assert page.locator("svg#lineage a.node.center").get_attribute("data-node") == "c:model/m/0"
        assert page.locator("svg#lineage path.edge").count() == len(api["edges"])
        # follow the graph to the outputs table the predict job wrote
        page.locator('svg#lineage a.node[data-node="t:outputs__m"]').click()
        assert page.locator("h1").inner_text() == "Table outputs__m"
        assert page.locator("#row-count").inner_text() == str(deployment.count("outputs__m"))

        page.goto(served + "/table?name=items")
        raw = stored_bytes(deployment, "emb", 0)
        first = page.locator("table.rows tbody tr").first.inner_text()
        assert f"sha256 {sha_prefix(raw)}" in first
        assert f"{len(raw)} B" in first

        advance(deployment, 10, status=JobStatus.RUNNING, finished_at=None)
        page.goto(served + "/jobs?status=running")
        bar = page.locator(f'tr[data-job="{RUNNING_JOB}"] progress')
        start = int(bar.get_attribute("value") or 0)
        advance(deployment, 80)
        page.wait_for_function(
            "id => document.querySelector(`tr[data-job='${id}'] progress`).value === 800",
            arg=RUNNING_JOB,
            timeout=10_000,
        )
        assert start < 800
        assert page.locator(f'tr[data-job="{RUNNING_JOB}"] .rows').inner_text() == "80/100"
        advance(deployment, 100, status=JobStatus.SUCCESS, finished_at=utcnow())
        page.wait_for_function(
            "() => document.querySelector('table.jobs tbody tr.none') !== null", timeout=10_000
        )
        assert problems == []
    finally:
        page.close()
