"""A password in every URI never appears in any output, log line or exception of a failing run.

Every store points at a closed port (127.0.0.1:1), so every operation fails for real.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

import pytest

from pinnacle_protocols.errors import ConfigError
from pinnacledb import LinearModel, pinnacle
from pinnacledb.cli import main

PASSWORD = "S3cr3t!pw"
ENCODED = "S3cr3t%21pw"
PG = f"postgresql://alice:{ENCODED}@127.0.0.1:1/db"
MYSQL = f"mysql://bob:{ENCODED}@127.0.0.1:1/db"
S3 = f"s3://key:{ENCODED}@bucket/prefix?endpoint_url=http://127.0.0.1:1"
MONGO = f"mongodb://carol:{ENCODED}@127.0.0.1:1/db?serverSelectionTimeoutMS=300"


def _clean(text: str) -> None:
    assert PASSWORD not in text
    assert ENCODED not in text


def _failure_text(fn: Callable[[], Any]) -> str:
    with pytest.raises(Exception) as info:
        fn()
    return "".join(traceback.format_exception(info.value))


@pytest.mark.postgres
@pytest.mark.mariadb
@pytest.mark.s3
def test_python_api_failing_run(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    db = pinnacle(PG, metadata_store=MYSQL, artifact_store=S3)
    _clean(repr(db))
    _clean(repr(db.slots))
    texts = [
        _failure_text(db.list_tables),
        _failure_text(lambda: db.insert("t", [{"a": 1}])),
        _failure_text(db.show),
        _failure_text(lambda: db.load("model", "m")),
        _failure_text(lambda: db.artifact_store.put(b"x")),
        _failure_text(lambda: db.apply(LinearModel.fit("m", [[1.0], [2.0]], [1.0, 2.0]))),
    ]
    for text in texts:
        _clean(text)
    _clean(caplog.text)
    _clean(repr(db.databackend) + repr(db.metadata) + repr(db.artifact_store))


@pytest.mark.nx27017
def test_python_api_failing_run_mongodb(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    db = pinnacle(MONGO)
    _clean(repr(db))
    _clean(_failure_text(db.list_tables))
    _clean(_failure_text(db.show))
    _clean(_failure_text(lambda: db.artifact_store.put(b"x")))
    _clean(caplog.text)


@pytest.mark.parametrize(
    "uri",
    [
        f"nosuchscheme://u:{ENCODED}@127.0.0.1/db",
        f"postgresql://u:{ENCODED}@127.0.0.1:notaport/db",
        f"postgresql://u:{ENCODED}@127.0.0.1:1/db%zz",
    ],
)
def test_configuration_errors_are_redacted(uri: str) -> None:
    with pytest.raises(ConfigError) as info:
        pinnacle(uri)
    _clean("".join(traceback.format_exception(info.value)))


@pytest.mark.postgres
@pytest.mark.mariadb
@pytest.mark.s3
@pytest.mark.parametrize("verbose", [[], ["--verbose"]], ids=["quiet", "verbose"])
def test_cli_doctor_failing_run(capsys: pytest.CaptureFixture[str], verbose: list[str]) -> None:
    code = main(
        ["doctor", "--databackend", PG, "--metadata", MYSQL, "--artifact-store", S3, *verbose]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert out.count("FAIL") == 3
    assert "***" in out
    _clean(out + err)


@pytest.mark.postgres
@pytest.mark.mariadb
def test_cli_commands_with_configured_passwords(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINNACLEDB_DATABACKEND", PG)
    monkeypatch.setenv("PINNACLEDB_METADATA", MYSQL)
    monkeypatch.setenv("PINNACLEDB_ARTIFACT_STORE", S3)
    for argv in (["info"], ["show"], ["migrate", "-v"], ["gc", "--dry-run"], ["demo"]):
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == (0 if argv == ["info"] else 1), (argv, out, err)
        _clean(out + err)
