"""URIs and options, entry points, lazy imports, and the generic fsspec path."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from pinnacle_fs import FsspecArtifactStore
from pinnacle_protocols import (
    ArtifactStore,
    BackendUnavailable,
    ConfigError,
    InvalidURIError,
    RedactedURI,
)

SECRET = "TopS3cretValue99"


def options_of(store: FsspecArtifactStore) -> dict[str, Any]:
    return dict(store._backend._options)  # type: ignore[attr-defined]


def test_s3_uri_query_becomes_storage_options() -> None:
    store = FsspecArtifactStore.from_uri(
        "s3://bucket/some/prefix/?endpoint_url=http://127.0.0.1:8333&anon=false"
        "&region_name=eu-west-1&requester_pays=true&chunk_size=1048576&block_size=6291456"
        "&concurrency=8"
    )
    assert store.root == "bucket/some/prefix"
    assert store.protocol == "s3"
    assert store.chunk_size == 1 << 20
    opts = options_of(store)
    assert opts["endpoint_url"] == "http://127.0.0.1:8333"
    assert opts["anon"] is False
    assert opts["requester_pays"] is True
    assert opts["client_kwargs"] == {"region_name": "eu-west-1"}
    assert opts["use_listings_cache"] is False
    assert store._backend._concurrency == 8  # type: ignore[attr-defined]
    assert store._backend._block_size == 6 * 2**20  # type: ignore[attr-defined]
    assert "concurrency" not in opts
    assert "chunk_size" not in opts
    assert "block_size" not in opts


def test_keyword_options_win_and_are_never_shown() -> None:
    store = FsspecArtifactStore.from_uri(
        f"s3://bucket/p?endpoint_url=http://127.0.0.1:1&secret={SECRET}&key=AKIAEXAMPLE",
        secret="from-kwargs",
        client_kwargs={"aws_secret_access_key": "nested-secret"},
    )
    assert options_of(store)["secret"] == "from-kwargs"
    for text in (str(store.uri), repr(store.uri), repr(store)):
        assert SECRET not in text
        assert "from-kwargs" not in text
        assert "nested-secret" not in text
        assert "AKIAEXAMPLE" not in text  # key= is masked too
    assert "endpoint_url=http://127.0.0.1:1" in str(store.uri)


def test_userinfo_credentials() -> None:
    store = FsspecArtifactStore.from_uri(f"s3://AKIAUSER:{SECRET}@bucket/p?endpoint_url=http://x")
    assert options_of(store)["key"] == "AKIAUSER"
    assert options_of(store)["secret"] == SECRET
    assert SECRET not in str(store.uri)
    assert SECRET not in repr(store)
    assert store.root == "bucket/p"


@pytest.mark.parametrize(
    ("uri", "error"),
    [
        ("s3://", InvalidURIError),
        ("s3:///just/a/path", InvalidURIError),
        ("s3://bucket:9000/p", InvalidURIError),
        ("s3://bucket/p?block_size=1024", ConfigError),
        ("filesystem://./x?endpoint_url=http://x", ConfigError),
        ("file:///tmp/x?chunk_size=0", ConfigError),
        ("file:///tmp/x?chunk_size=abc", ConfigError),
        ("file:///tmp/x?fsync=maybe", ConfigError),
        ("s3://bucket/p?concurrency=0", ConfigError),
        ("no scheme at all", InvalidURIError),
    ],
)
def test_bad_uris(uri: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        FsspecArtifactStore.from_uri(uri)


def test_keyword_store_options_replace_the_query_ones(tmp_path: Path) -> None:
    """A store option given as a keyword wins; the query's value is dropped unchecked and is
    never passed on as an fsspec storage option."""
    bad = "chunk_size=x&fsync=maybe&block_size=x&concurrency=x"
    store = FsspecArtifactStore(
        f"s3://bucket/p?endpoint_url=http://127.0.0.1:1&{bad}",
        chunk_size=4096,
        fsync=True,
        block_size=6 * 2**20,
        concurrency=2,
    )
    assert store.chunk_size == 4096
    assert store._backend._block_size == 6 * 2**20  # type: ignore[attr-defined]
    assert store._backend._concurrency == 2  # type: ignore[attr-defined]
    assert set(options_of(store)) == {"endpoint_url", "use_listings_cache"}
    local = FsspecArtifactStore(f"filesystem://{tmp_path}?{bad}", chunk_size=4096, fsync=False)
    assert (local.chunk_size, local.root, local.protocol) == (4096, str(tmp_path), "file")
    ref = local.put(b"kept")
    assert local.get(ref) == b"kept"


def test_local_rejects_storage_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no storage options"):
        FsspecArtifactStore.from_uri(f"file://{tmp_path}", key="k")


def test_secret_not_in_parse_errors() -> None:
    with pytest.raises(InvalidURIError) as info:
        FsspecArtifactStore.from_uri(f"s3://user:{SECRET}@bucket:notaport/p")
    assert SECRET not in str(info.value)


def test_gs_uri_is_parsed_without_touching_the_network() -> None:
    """gs:// (extra [gcs]) is only constructed here: no GCS server can run on this machine."""
    store = FsspecArtifactStore.from_uri("gs://my-bucket/artifacts?project=demo")
    assert store.root == "my-bucket/artifacts"
    assert store.protocol == "gs"
    assert options_of(store)["project"] == "demo"


def test_unknown_protocol_is_a_config_error() -> None:
    store = FsspecArtifactStore.from_uri("nosuchproto://x/y")
    with pytest.raises(ConfigError, match="nosuchproto"):
        store.put(b"x")


def test_missing_driver_names_what_to_install() -> None:
    """sftp:// needs paramiko, which is not installed here."""
    import importlib.util

    assert importlib.util.find_spec("paramiko") is None
    store = FsspecArtifactStore.from_uri(f"sftp://user:{SECRET}@127.0.0.1/x")
    with pytest.raises(ConfigError, match="paramiko") as info:
        store.exists(hashlib.sha256(b"").hexdigest())
    assert SECRET not in str(info.value)


def test_entry_points() -> None:
    """pinnacle-fs registers its schemes (not memory://, which pinnacle-protocols owns)."""
    ours = {
        ep.name: ep
        for ep in entry_points(group="pinnacle.artifact_stores")
        if ep.dist is not None and ep.dist.name == "pinnacle-fs"
    }
    assert set(ours) == {"filesystem", "file", "s3", "s3a", "gs", "gcs"}
    factory = ours["filesystem"].load()
    store = factory("filesystem://./somewhere")
    assert isinstance(store, FsspecArtifactStore)
    assert isinstance(store, ArtifactStore)
    assert isinstance(store.uri, RedactedURI)


def test_memory_uri_works_when_called_directly() -> None:
    store = FsspecArtifactStore.from_uri("memory://direct-call-test")
    ref = store.put(b"in memory")
    assert store.get(ref) == b"in memory"
    assert FsspecArtifactStore.from_uri("memory://direct-call-test").exists(ref)  # shared fs
    store.drop(force=True)


def test_importing_does_not_import_drivers() -> None:
    code = (
        "import sys, tempfile\n"
        "import pinnacle_fs, pinnacle_fs.testing\n"
        "from pinnacle_fs import FsspecArtifactStore\n"
        "assert 'fsspec' not in sys.modules and 's3fs' not in sys.modules\n"
        "s = FsspecArtifactStore.from_uri('filesystem://' + tempfile.mkdtemp())\n"
        "s.get(s.put(b'x')); list(s.iter_refs())\n"
        "assert 'fsspec' not in sys.modules, 'local stores need no fsspec'\n"
        "FsspecArtifactStore.from_uri('s3://b/p?endpoint_url=http://127.0.0.1:1')\n"
        "assert 's3fs' not in sys.modules and 'botocore' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_from_filesystem_generic_path(tmp_path: Path) -> None:
    """Any fsspec filesystem object: here fsspec's LocalFileSystem (temp + mv + makedirs)."""
    from fsspec.implementations.local import LocalFileSystem

    store = FsspecArtifactStore.from_filesystem(LocalFileSystem(), str(tmp_path / "generic"))
    assert store.protocol == "file"
    assert str(store.uri).startswith("file://")
    data = b"generic" * 100_000
    ref = store.put(data)
    assert (tmp_path / "generic" / ref.sha256[:2] / ref.sha256).read_bytes() == data
    assert store.get(ref) == data
    assert store.put(data) == ref
    with store.open(ref) as r:
        assert r.read() == data
    assert list(store.iter_refs()) == [ref]
    assert list((tmp_path / "generic" / ".pinnacle-tmp").iterdir()) == []
    store.drop(force=True)
    assert list(store.iter_refs()) == []


def test_memory_reads_are_private_copies() -> None:
    """Two readers of one memory:// blob do not share a position (fsspec shares file objects)."""
    store = FsspecArtifactStore.from_uri("memory://private-readers")
    ref = store.put(b"0123456789")
    with store.open(ref) as a, store.open(ref) as b:
        assert a.read(3) == b"012"
        assert b.read(3) == b"012"
        assert a.read() == b"3456789"
        assert b.read() == b"3456789"
    store.drop(force=True)


def test_closed_error_is_backend_unavailable() -> None:
    store = FsspecArtifactStore.from_uri("memory://closed-test")
    store.close()
    with pytest.raises(BackendUnavailable, match="closed"):
        store.put(b"x")
