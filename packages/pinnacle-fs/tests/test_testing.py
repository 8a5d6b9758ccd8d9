"""The SeaweedFS launcher in pinnacle_fs.testing (real `weed`, plus stand-ins for failures)."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from pinnacle_fs.testing import SeaweedFSError, find_weed, run_seaweedfs


def fake_weed(tmp_path: Path, body: str) -> str:
    """A stand-in `weed` shell script (the real server cannot be made to fail on purpose)."""
    path = tmp_path / "weed"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.s3
def test_lifecycle_of_a_real_server(tmp_path: Path) -> None:
    with run_seaweedfs(tmp_path / "weed-data", secret_key="s3cr3t-for-test") as server:
        assert alive(server.pid)
        assert server.endpoint_url.startswith("http://127.0.0.1:")
        assert len(set(server.ports.values())) == len(server.ports)
        status, _ = server.request("GET", "/")
        assert status == 200
        server.create_bucket("lifecycle")
        server.create_bucket("lifecycle")  # already ours: fine
        assert server.request("PUT", "/lifecycle/k", b"v")[0] == 200
        assert server.request("GET", "/lifecycle/k") == (200, b"v")
        assert "s3cr3t-for-test" not in server.s3_uri("lifecycle")
    assert not alive(server.pid)
    with socket.socket() as s:  # nothing listens on its S3 port any more
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        s.bind(("127.0.0.1", server.ports["s3.port"]))


def test_missing_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PINNACLE_WEED", str(tmp_path / "nope"))
    with pytest.raises(SeaweedFSError, match="not an executable"):
        find_weed()


def test_found_in_the_venv() -> None:
    assert os.access(find_weed(), os.X_OK)


def test_server_exiting_early_shows_its_log(tmp_path: Path) -> None:
    weed = fake_weed(tmp_path, 'echo "bind: address already in use (fake)" >&2; exit 3')
    with (
        pytest.raises(SeaweedFSError, match="address already in use") as info,
        run_seaweedfs(tmp_path / "d", weed=weed),
    ):
        pass
    assert "3 attempts" in str(info.value)


def test_server_never_ready_times_out_and_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    weed = fake_weed(tmp_path, f'echo $$ > {pid_file}; echo "starting forever"; exec sleep 600')
    with (
        pytest.raises(SeaweedFSError, match="not ready after 1 s") as info,
        run_seaweedfs(tmp_path / "d", weed=weed, startup_timeout=1.0),
    ):
        pass
    assert "starting forever" in str(info.value)
    assert not alive(int(pid_file.read_text()))
