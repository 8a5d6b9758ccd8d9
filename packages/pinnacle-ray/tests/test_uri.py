"""URIs, options and imports of pinnacle-ray; nothing here starts Ray."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pinnacle_protocols.errors import ConfigError
from pinnacle_ray import RayComputeBackend
from pinnacle_ray._connection import ClientTarget, LocalTarget


def test_uri_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="needs the host"):
        RayComputeBackend.from_uri("ray://")
    with pytest.raises(ConfigError, match="workers must be an integer"):
        RayComputeBackend.from_uri("ray+local://?workers=zero")
    with pytest.raises(ConfigError, match="workers must be an integer"):
        RayComputeBackend.from_uri("ray+local://?workers=0")
    with pytest.raises(ConfigError, match="takes only"):
        RayComputeBackend.from_uri("ray+local://host?workers=2")
    with pytest.raises(ConfigError, match="unknown option"):
        RayComputeBackend.from_uri("ray://h:1?workers=2")
    with pytest.raises(ConfigError, match="timeout must be a number"):
        RayComputeBackend.from_uri("ray://h:1?timeout=-1")
    with pytest.raises(ConfigError, match="not a ray"):
        RayComputeBackend.from_uri("dask://h:1")
    with pytest.raises(ConfigError, match="no user or password") as caught:
        RayComputeBackend.from_uri("ray://u:pw-not-shown@head:10001")
    assert "pw-not-shown" not in str(caught.value)

    remote = RayComputeBackend.from_uri("ray://head.example?timeout=3")
    assert remote.target == ClientTarget(host="head.example", port=10001, timeout=3.0)
    assert str(remote.uri) == "ray://head.example?timeout=3"
    local = RayComputeBackend.from_uri("ray+local://", workers="3")
    assert local.target == LocalTarget(workers=3)
    assert repr(local) == "RayComputeBackend(ray+local://)"
    # building and closing a backend that never ran anything connects nowhere
    remote.close()
    local.close()


def test_importing_and_building_does_not_import_ray() -> None:
    code = (
        "import json, sys\n"
        "from pinnacle_ray import RayComputeBackend\n"
        "RayComputeBackend.from_uri('ray+local://?workers=2').close()\n"
        "RayComputeBackend.from_uri('ray://head:10001').close()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'ray')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []
