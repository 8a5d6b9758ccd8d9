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


# ---------------------------------------------------- issue 15: config reprs, query secrets
TOKEN = "IQoJb3JpZ2luTOKEN42"
#: A secret in every place a URI can carry one: the password and secret query options
#: (MongoDB AWS auth puts the session token inside authMechanismProperties).
MONGO_AWS = (
    "mongodb://AKIAUSER:hunter2@127.0.0.1:1/db?serverSelectionTimeoutMS=300"
    f"&authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:{TOKEN},"
    "SERVICE_NAME:svc"
)
PG_QUERY = (
    f"postgresql://alice@127.0.0.1:1/db?sslpassword={TOKEN}&connect_timeout=1"
    f"&tlsCertificateKeyFilePassword={TOKEN}&token={TOKEN}"
)
S3_QUERY = (
    f"s3://bucket/prefix?endpoint_url=http://127.0.0.1:1&aws_secret_access_key={TOKEN}"
    f"&aws_session_token={TOKEN}&key={TOKEN}"
)


def _clean_all(text: str) -> None:
    _clean(text)
    assert TOKEN not in text
    assert "hunter2" not in text


def test_repr_of_cfg_and_db_config_masks_every_uri() -> None:
    """repr(CFG) and repr(db.config) printed passwords (issue 15, item 2)."""
    from pinnacledb import CFG

    CFG.databackend = PG
    CFG.metadata = MONGO_AWS
    CFG.artifact_store = S3_QUERY
    for text in (repr(CFG), str(CFG)):
        _clean_all(text)
        assert "alice:***@127.0.0.1" in text
        assert "AWS_SESSION_TOKEN:***,SERVICE_NAME:svc" in text
    db = pinnacle(PG_QUERY, metadata_store=MONGO_AWS, artifact_store=S3_QUERY)
    assert db.config is not None
    for text in (repr(db.config), str(db.config), repr(db.config.databackend), repr(db)):
        _clean_all(text)
    assert "sslpassword=***" in repr(db.config)
    CFG.databackend = f"postgresql://u:{ENCODED}@h:notaport/db?token={TOKEN}"  # malformed
    _clean_all(repr(CFG))


@pytest.mark.nx27017
def test_query_secrets_never_shown_python_api(caplog: pytest.LogCaptureFixture) -> None:
    """Secrets in query options stay out of repr(db), errors and logs (issue 15, item 3)."""
    caplog.set_level(logging.DEBUG)
    db = pinnacle(MONGO_AWS)
    _clean_all(repr(db) + repr(db.slots) + repr(db.config))
    for fn in (db.list_tables, db.show, lambda: db.artifact_store.put(b"x")):
        _clean_all(_failure_text(fn))
    _clean_all(caplog.text)
    db2 = pinnacle(PG_QUERY, metadata_store="memory://", artifact_store=S3_QUERY)
    _clean_all(repr(db2))
    _clean_all(_failure_text(db2.list_tables))
    _clean_all(_failure_text(lambda: db2.artifact_store.put(b"x")))
    _clean_all(caplog.text)


@pytest.mark.nx27017
@pytest.mark.parametrize("command", ["info", "doctor"])
def test_query_secrets_never_shown_cli(
    command: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    for databackend, metadata in ((MONGO_AWS, PG_QUERY), (PG_QUERY, MONGO_AWS)):
        monkeypatch.setenv("PINNACLEDB_METADATA", metadata)
        argv = [command, "--databackend", databackend, "--artifact-store", S3_QUERY]
        main([*argv, "--verbose"] if command == "doctor" else argv)
        out, err = capsys.readouterr()
        _clean_all(out + err + caplog.text)
        assert "AWS_SESSION_TOKEN:***,SERVICE_NAME:svc" in out
        assert "sslpassword=***" in out


def test_cli_scrubber_finds_secrets_by_the_uri_rule() -> None:
    """The CLI's second line of defence (driver text that is not a URI) knows the same secrets
    as RedactedURI: composite parts and every secret option name."""
    from pinnacledb._secrets import Scrubber, secrets_of

    azure = "abfs://c/p?account_name=acct&connection_string=AccountKey%3Dabc123xyz"
    scrub = Scrubber(secrets_of([MONGO_AWS, azure]))
    text = scrub(f"driver: session token {TOKEN} expired; bad AccountKey=abc123xyz for hunter2")
    assert TOKEN not in text
    assert "abc123xyz" not in text
    assert "hunter2" not in text
    assert "acct" in text or "account_name" not in text
