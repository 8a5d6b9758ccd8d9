"""The ComputeBackend contract on ``ray+local://`` and, through Ray Client, on ``ray://``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pinnacle_protocols.compute import ComputeBackend
from pinnacle_protocols.testing import ComputeBackendContract
from pinnacle_ray import RayComputeBackend

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.ray


class TestRayLocalContract(ComputeBackendContract):
    @pytest.fixture
    def make_backend(self, ray_local: RayComputeBackend) -> ComputeBackend:
        return ray_local


# slow: about 25 s (a Ray Client server on the shared instance, the contract from a second
# process). Pants deselects slow tests; there the forked Ray Client server refused connections
# (not investigated), while the uv run of the whole suite, which runs slow tests, passes it.
@pytest.mark.slow
def test_ray_client_contract(
    ray_local: RayComputeBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole contract again from another process, as a Ray Client of the same instance.

    The session's Ray instance gets a Ray Client server (the one ``ray start --head`` runs);
    a fresh pytest process runs ``_client_contract.py`` on ``ray://IP:PORT``. Ray allows one
    connection per process, so the client cannot live in this one.
    """
    import ray

    node: Any = ray._private.worker._global_node  # the instance ray+local:// started
    assert node is not None
    with socket_port() as port:
        node._ray_params.ray_client_server_port = port
    # The client server forks a server per client while its gRPC threads run; with gRPC's fork
    # handlers on, that child dies at once on this machine, every time (ray-project/ray#63202):
    # a cluster that serves Ray Client needs this in its environment (see the README).
    monkeypatch.setenv("GRPC_ENABLE_FORK_SUPPORT", "false")
    # The client server's per-client drivers are processes of this one: under `uv run`
    # (scripts/test) Ray would give their jobs this directory as a working_dir path, which a
    # Ray Client job refuses ("Expected URI but received path"). A cluster started under
    # `uv run` needs the same (see the README).
    monkeypatch.setenv("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    node.start_ray_client_server()  # stopped with the instance (ray.shutdown)
    env = {
        **os.environ,
        "PINNACLE_TEST_RAY_URI": f"ray://{node.node_ip_address}:{port}",
        # the instance has token authentication on; a client must say so (Ray >= 2.60)
        "RAY_AUTH_MODE": "token",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-x",
            "--basetemp",
            str(tmp_path / "t"),
            str(HERE / "_client_contract.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=HERE,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "11 passed" in done.stdout, done.stdout[-2000:]


class socket_port:
    """A free TCP port (closed again when the block ends, for the server to take)."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("", 0))
        port: int = self._sock.getsockname()[1]
        return port

    def __exit__(self, *_exc: object) -> None:
        self._sock.close()
