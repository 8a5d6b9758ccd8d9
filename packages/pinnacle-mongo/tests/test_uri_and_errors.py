"""URIs, options, lazy imports and error translation (no server needed, except where named)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from pinnacle_mongo import (
    GridFSArtifactStore,
    MongoConnection,
    MongoDataBackend,
    MongoMetadataStore,
    parse_mongo_uri,
)
from pinnacle_protocols.errors import (
    BackendUnavailable,
    ConfigError,
    InvalidURIError,
    PinnacleError,
)
from pinnacle_protocols.uri import translate_uri

STORES: list[Any] = [MongoDataBackend, GridFSArtifactStore, MongoMetadataStore]
SECRET = "pa:ss@w/rd#%?sec"
QUOTED = "pa%3Ass%40w%2Frd%23%25%3Fsec"


def _closed_port() -> int:
    """A loopback port nothing listens on (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize(
    "uri",
    [
        "mongodb://localhost:27017",
        "mongodb://localhost:27017/",
        "mongodb://localhost:27017/?authSource=admin",
        f"mongodb://user:{QUOTED}@localhost/?replicaSet=rs0",
        "mongodb+srv://cluster0.example.net/",
    ],
)
def test_uri_without_database_is_a_clear_error(uri: str) -> None:
    """No database name: InvalidURIError that says where the name goes (no client is built)."""
    for store in STORES:
        with pytest.raises(InvalidURIError) as info:
            store.from_uri(uri)
        message = str(info.value)
        assert "names no database" in message
        assert "/documents" in message
        assert SECRET not in message
        assert "pa%3Ass" not in message


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("postgresql://localhost/db", "not a MongoDB URI"),
        ("mongodb:///db", "no host"),
        ("mongodb+srv://a.example.net:27017/db", "no port"),
        ("mongodb+srv://a.example.net,b.example.net/db", "exactly one host"),
        ("mongodb://localhost/db/extra", "just the database name"),
        ("mongodb://localhost/my.db", "not a valid MongoDB database name"),
        ("mongodb://localhost/" + "d" * 64, "not a valid MongoDB database name"),
        ("mongodb://localhost/a%20b", "not a valid MongoDB database name"),
    ],
)
def test_invalid_uris(uri: str, fragment: str) -> None:
    """Malformed MongoDB URIs are rejected when the store is built, naming the problem."""
    with pytest.raises(InvalidURIError, match=fragment):
        MongoDataBackend.from_uri(uri)


def test_query_string_is_preserved_for_the_client() -> None:
    """authSource, replicaSet and TLS options reach pymongo unchanged (with the password)."""
    uri = (
        f"mongodb://user:{QUOTED}@h1:27017,h2:27018/documents"
        "?authSource=admin&replicaSet=rs0&tls=true&tlsCAFile=/etc/ssl/certs/ca-certificates.crt"
    )
    parsed = parse_mongo_uri(uri)
    assert parsed.database == "documents"
    assert parsed.hosts == (("h1", 27017), ("h2", 27018))
    text = translate_uri(parsed, "pymongo")
    from pymongo.uri_parser import parse_uri

    info = parse_uri(text)
    assert info["database"] == "documents"
    assert info["username"] == "user"
    assert info["password"] == SECRET
    assert info["nodelist"] == [("h1", 27017), ("h2", 27018)]
    options = {k.lower(): v for k, v in info["options"].items()}
    assert options["authsource"] == "admin"
    assert options["replicaset"] == "rs0"
    assert options["tls"] is True
    assert options["tlscafile"] == "/etc/ssl/certs/ca-certificates.crt"


def test_srv_uri_is_accepted_without_a_network() -> None:
    """mongodb+srv:// parses and builds a store lazily (DNS is only asked on first use)."""
    store = MongoDataBackend.from_uri(
        f"mongodb+srv://user:{QUOTED}@cluster0.example.net/documents?retryWrites=true"
    )
    assert store.uri.scheme == "mongodb+srv"
    assert store.uri.database == "documents"
    assert SECRET not in repr(store)
    assert SECRET not in str(store.uri)
    assert store.default_metadata_uri() == store.default_artifact_uri()
    store.close()


def test_password_never_shown() -> None:
    """repr, str(uri) and every error message mask the password."""
    uri = f"mongodb://user:{QUOTED}@127.0.0.1:{_closed_port()}/db"
    for store_class in STORES:
        store = store_class.from_uri(uri, server_selection_timeout_ms=200)
        assert SECRET not in repr(store)
        assert "***" in str(store.uri)
        assert QUOTED not in str(store.uri)
        store.close()


def test_default_companion_uris_are_the_backend_uri() -> None:
    """The facade puts metadata and GridFS artifacts on the backend's own database."""
    uri = f"mongodb://user:{QUOTED}@db.example:27017/documents?authSource=admin"
    backend = MongoDataBackend.from_uri(uri)
    for companion in (backend.default_metadata_uri(), backend.default_artifact_uri()):
        assert companion == backend.uri
        assert SECRET not in str(companion)
        assert SECRET not in repr(companion)
        assert MongoMetadataStore.from_uri(companion.reveal()).uri == backend.uri
    backend.close()


def test_unknown_and_invalid_options() -> None:
    """Unknown options and a bad timeout are ConfigErrors."""
    uri = "mongodb://localhost/db"
    for store_class in STORES:
        with pytest.raises(ConfigError, match="unknown options"):
            store_class.from_uri(uri, nope=1)
        with pytest.raises(ConfigError, match="server_selection_timeout_ms"):
            store_class.from_uri(uri, server_selection_timeout_ms=0)
        with pytest.raises(ConfigError, match="client_options"):
            store_class.from_uri(uri, client_options=[1])
    with pytest.raises(ConfigError, match="bucket"):
        GridFSArtifactStore.from_uri(uri, bucket="user_files")
    with pytest.raises(ConfigError, match="chunk_size"):
        GridFSArtifactStore.from_uri(uri, chunk_size=0)
    with pytest.raises(ConfigError, match="client must be"):
        MongoDataBackend.from_uri(uri, client="not a client")


def test_timeout_precedence() -> None:
    """An explicit option beats serverSelectionTimeoutMS in the URI, which beats 5 s."""
    assert MongoConnection.from_options("mongodb://h/db", {}, store="x")[
        0
    ].effective_timeout_ms == (5000)
    conn, _ = MongoConnection.from_options(
        "mongodb://h/db?serverSelectionTimeoutMS=1234", {}, store="x"
    )
    assert conn.effective_timeout_ms == 1234
    conn, _ = MongoConnection.from_options(
        "mongodb://h/db?serverSelectionTimeoutMS=1234",
        {"server_selection_timeout_ms": 77},
        store="x",
    )
    assert conn.effective_timeout_ms == 77
    assert conn.client().options.server_selection_timeout == pytest.approx(0.077)
    conn.close()


@pytest.mark.parametrize("store_class", STORES, ids=lambda c: c.__name__)
def test_unreachable_server_is_backend_unavailable(store_class: Any) -> None:
    """Nothing listening: BackendUnavailable after the short timeout, URI redacted.

    Talks to a closed loopback port, no server needed.
    """
    uri = f"mongodb://user:{QUOTED}@127.0.0.1:{_closed_port()}/db"
    store = store_class.from_uri(uri, server_selection_timeout_ms=300)
    first_use: Callable[[], object]
    if store_class is GridFSArtifactStore:
        first_use = partial(store.put, b"x")
    elif store_class is MongoMetadataStore:
        first_use = store.show_components
    else:
        first_use = store.list_tables
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as info:
        first_use()
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"gave up after {elapsed:.1f} s"
    message = str(info.value)
    assert "127.0.0.1" in message
    assert "***" in message
    assert "server_selection_timeout_ms" in message
    assert SECRET not in message
    assert QUOTED not in message
    store.close()


def test_closed_store_raises_backend_unavailable() -> None:
    """A closed store refuses to work (BackendUnavailable naming it)."""
    store = MongoDataBackend.from_uri("mongodb://127.0.0.1:1/db")
    store.close()
    with pytest.raises(BackendUnavailable, match="closed"):
        store.list_tables()


def test_driver_errors_are_translated_and_redacted() -> None:
    """translate(): pymongo errors become pinnacledb errors; other errors pass through."""
    from pymongo import errors as pe

    conn, _ = MongoConnection.from_options(f"mongodb://u:{QUOTED}@127.0.0.1/db", {}, store="x")
    auth = conn.translate(pe.OperationFailure("Authentication failed.", code=18), "ping")
    assert isinstance(auth, BackendUnavailable)
    assert "authSource" in str(auth)
    leak = conn.translate(
        pe.OperationFailure(f"bad thing at mongodb://u:{SECRET}@127.0.0.1/db"), "ping"
    )
    assert type(leak) is PinnacleError
    assert SECRET not in str(leak)
    assert isinstance(conn.translate(pe.ConfigurationError("x"), "ping"), ConfigError)
    plain = ValueError("not a driver error")
    assert conn.translate(plain, "ping") is plain


def test_importing_does_not_import_pymongo() -> None:
    """``import pinnacle_mongo`` and building stores import no driver (it costs ~0.7 s)."""
    code = (
        "import sys, pinnacle_mongo, pinnacle_mongo.testing\n"
        "for c in (pinnacle_mongo.MongoDataBackend, pinnacle_mongo.GridFSArtifactStore,\n"
        "          pinnacle_mongo.MongoMetadataStore):\n"
        "    c.from_uri('mongodb://localhost:27017/db')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pymongo', 'bson', 'gridfs')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
