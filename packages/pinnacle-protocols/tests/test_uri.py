"""RedactedURI parsing, redaction and translate_uri.

The redaction tests are the point of this file: a password in a URI must never reach
``str()``, ``repr()`` or the message (or traceback) of the error raised on a malformed URI.
"""

from __future__ import annotations

import contextlib
import inspect
import string
import time
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pinnacle_protocols import InvalidURIError, RedactedURI, redact, translate_uri
from pinnacle_protocols import uri as uri_module
from pinnacle_protocols.uri import PATH_SCHEMES, REDACTED, Stack

# ---------------------------------------------------------------------- parsing table

PARSE_CASES: list[tuple[str, dict[str, Any]]] = [
    (
        "postgresql://alice:s3cret@db.example:5432/prod",
        {
            "scheme": "postgresql",
            "username": "alice",
            "password": "s3cret",
            "hosts": (("db.example", 5432),),
            "path": "/prod",
            "database": "prod",
            "query": (),
        },
    ),
    (
        "postgres://alice:p%40ss@db.example/prod",
        {"scheme": "postgres", "username": "alice", "password": "p@ss", "database": "prod"},
    ),
    (
        "postgresql://al%3Aice:p%3Ass%2Fw%3Fr%23d%25@h/db",
        {"username": "al:ice", "password": "p:ss/w?r#d%", "hosts": (("h", None),)},
    ),
    # an unencoded '@' in the password: the last '@' of the authority separates the host
    ("postgresql://u:p@ss@h/db", {"username": "u", "password": "p@ss", "hosts": (("h", None),)}),
    ("postgresql://u:pa:ss@h/db", {"username": "u", "password": "pa:ss"}),
    ("postgresql://u@h/db", {"username": "u", "password": None}),
    ("postgresql://:pw@h/db", {"username": None, "password": "pw"}),
    ("postgresql://u:@h/db", {"username": "u", "password": ""}),
    (
        "POSTGRESQL://H/db",
        {"scheme": "postgresql", "hosts": (("H", None),), "database": "db"},
    ),
    (
        "mongodb://u:p@h1:27017,h2,h3:27019/app?replicaSet=rs0",
        {
            "scheme": "mongodb",
            "hosts": (("h1", 27017), ("h2", None), ("h3", 27019)),
            "host": "h1",
            "port": 27017,
            "database": "app",
            "query": (("replicaSet", "rs0"),),
        },
    ),
    (
        "mongodb://[::1]:27017/db",
        {"hosts": (("::1", 27017),), "host": "::1", "port": 27017, "database": "db"},
    ),
    (
        "mongodb://[::1],[fe80::1]:27018,10.0.0.1:27019",
        {"hosts": (("::1", None), ("fe80::1", 27018), ("10.0.0.1", 27019)), "path": ""},
    ),
    ("mongodb://[2001:db8::7]", {"hosts": (("2001:db8::7", None),), "database": None}),
    (
        "mongodb+srv://u:p@cluster0.example.net/db?retryWrites=true&w=majority",
        {
            "scheme": "mongodb+srv",
            "hosts": (("cluster0.example.net", None),),
            "database": "db",
            "query": (("retryWrites", "true"), ("w", "majority")),
        },
    ),
    # query order is kept, repeated keys too; query_dict keeps the last one
    (
        "postgresql://h/db?z=1&a=2&m=3&a=4",
        {
            "query": (("z", "1"), ("a", "2"), ("m", "3"), ("a", "4")),
            "query_dict": {"z": "1", "a": "4", "m": "3"},
        },
    ),
    ("postgresql://h/db?flag&empty=", {"query": (("flag", ""), ("empty", ""))}),
    ("postgresql://h/db?tz=%2B01%3A00&sp=a+b", {"query": (("tz", "+01:00"), ("sp", "a b"))}),
    ("mysql://root@127.0.0.1:3306/test", {"hosts": (("127.0.0.1", 3306),), "database": "test"}),
    ("postgresql://h:00080", {"port": 80}),
    ("postgresql://h:65535", {"port": 65535}),
    ("postgresql://h:1", {"port": 1}),
    ("postgresql://h:/db", {"hosts": (("h", None),)}),
    ("postgresql:///db", {"hosts": (), "host": None, "port": None, "database": "db"}),
    ("postgresql://h/db/extra/seg", {"path": "/db/extra/seg", "database": "db"}),
    ("postgresql://h/my%20db", {"path": "/my db", "database": "my db"}),
    ("postgresql://h/db#frag", {"fragment": "frag", "path": "/db"}),
    # path schemes: everything after scheme:// is a local path
    (
        "sqlite://file.db",
        {
            "scheme": "sqlite",
            "path": "file.db",
            "hosts": (),
            "database": None,
            "username": None,
            "password": None,
            "is_path_scheme": True,
        },
    ),
    ("sqlite:///abs/dir/file.db", {"path": "/abs/dir/file.db", "hosts": ()}),
    ("sqlite://", {"path": "", "hosts": ()}),
    ("sqlite://:memory:", {"path": ":memory:"}),
    ("sqlite://sub/dir/f.db?mode=ro", {"path": "sub/dir/f.db", "query": (("mode", "ro"),)}),
    ("sqlite://a%40b.db", {"path": "a@b.db"}),
    ("sqlite://my%20data.db", {"path": "my data.db"}),
    ("duckdb://data.duckdb", {"scheme": "duckdb", "path": "data.duckdb"}),
    ("duckdb:///abs/data.duckdb", {"path": "/abs/data.duckdb"}),
    ("filesystem://./data", {"scheme": "filesystem", "path": "./data", "hosts": ()}),
    ("filesystem://.pinnacledb/artifacts/", {"path": ".pinnacledb/artifacts/"}),
    ("filesystem:///var/lib/x", {"path": "/var/lib/x"}),
    ("file:///home/me/x@2x.png", {"scheme": "file", "path": "/home/me/x@2x.png"}),
    ("memory://", {"scheme": "memory", "path": "", "is_path_scheme": True}),
    ("memory://name", {"path": "name"}),
    (
        "s3://bucket/prefix/sub?endpoint_url=http://127.0.0.1:8333&region=us-east-1",
        {
            "scheme": "s3",
            "hosts": (("bucket", None),),
            "path": "/prefix/sub",
            "query": (("endpoint_url", "http://127.0.0.1:8333"), ("region", "us-east-1")),
            "is_path_scheme": False,
        },
    ),
    ("s3://bucket", {"hosts": (("bucket", None),), "path": ""}),
    ("  sqlite://padded.db  ", {"path": "padded.db"}),
]


@pytest.mark.parametrize(("uri", "expected"), PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_parse_table(uri: str, expected: dict[str, Any]) -> None:
    u = RedactedURI.parse(uri)
    for attr, value in expected.items():
        assert getattr(u, attr) == value, attr


def test_parse_accepts_a_parsed_uri_unchanged() -> None:
    u = RedactedURI.parse("postgresql://u:p@h/db")
    assert RedactedURI.parse(u) is u


def test_path_schemes_have_no_hosts_or_credentials() -> None:
    for scheme in sorted(PATH_SCHEMES):
        u = RedactedURI.parse(f"{scheme}://some/dir")
        assert u.hosts == ()
        assert u.username is None
        assert u.password is None
        assert u.path == "some/dir"


# ---------------------------------------------------------------------- str / repr

STR_CASES = [
    (
        "postgresql://alice:s3cret@db.example:5432/prod",
        "postgresql://alice:***@db.example:5432/prod",
    ),
    ("postgres://u:p%40ss@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
    ("mongodb://u:p@h1:1,[::1]:2/db", "mongodb://u:***@h1:1,[::1]:2/db"),
    ("mongodb://u@h", "mongodb://u@h"),
    ("mongodb://:pw@h", "mongodb://:***@h"),
    ("postgresql://u:@h/db", "postgresql://u:***@h/db"),
    ("sqlite://file.db", "sqlite://file.db"),
    ("sqlite://", "sqlite://"),
    ("filesystem://./data", "filesystem://./data"),
    (
        "s3://b/p?endpoint_url=http://127.0.0.1:8333&aws_secret_access_key=AKIAxyz",
        "s3://b/p?endpoint_url=http://127.0.0.1:8333&aws_secret_access_key=***",
    ),
]


@pytest.mark.parametrize(("uri", "shown"), STR_CASES)
def test_str_and_repr(uri: str, shown: str) -> None:
    u = RedactedURI.parse(uri)
    assert str(u) == shown
    assert repr(u) == f"RedactedURI({shown!r})"


SECRET_KEYS = [
    "password",
    "Password",
    "PWD",
    "secret",
    "secret_key",
    "aws_secret_access_key",
    "aws_session_token",
    "token",
    "access_token",
    "api_key",
    "client_secret",
    "db_password",
    "X-Amz-Security-Token",
    "X-Amz-Signature",
    "sig",
    # issue 15: options that carry secrets in every scheme's drivers
    "sslKeyPassword",
    "sslpassword",
    "tlsCertificateKeyFilePassword",
    "passwd",
    "key",
    "private_key",
    "X-Amz-Credential",
    "credentials",
    "aws_access_key_id",
    "sas",
    "SharedAccessSignature",
    "AccountKey",
    "refresh-token",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_query_values_are_redacted(key: str) -> None:
    token = "Zq8vTopSecretValue42"
    u = RedactedURI.parse(f"postgresql://h/db?sslmode=require&{key}={token}&app=x")
    for text in (str(u), repr(u)):
        assert token not in text
        assert f"{quote(key, safe='')}={REDACTED}" in text
        assert "sslmode=require" in text
        assert "app=x" in text
    # the driver still gets it
    assert u.query_dict[key] == token
    assert token in u.reveal()


COMPOSITE_SECRET = "IQoJb3JpZ2luX2VjEXAMPLETOKEN"


@pytest.mark.parametrize(
    "value",
    [
        f"AWS_SESSION_TOKEN:{COMPOSITE_SECRET},SERVICE_NAME:svc",
        f"SERVICE_NAME:svc,AWS_SESSION_TOKEN:{COMPOSITE_SECRET}",
        f"ENVIRONMENT:azure,TOKEN_RESOURCE:x,OIDC_TOKEN:{COMPOSITE_SECRET}",
        f"AWS_SESSION_TOKEN:{COMPOSITE_SECRET[:5]},{COMPOSITE_SECRET[5:]}",  # unencoded ','
    ],
)
def test_secret_parts_of_composite_options_are_redacted(value: str) -> None:
    """``authMechanismProperties`` (MongoDB AWS/OIDC auth) is a list of NAME:value pairs."""
    raw = f"mongodb://u@h/db?authMechanism=MONGODB-AWS&authMechanismProperties={value}&w=1"
    u = RedactedURI.parse(raw)
    for text in (str(u), repr(u), redact(f"cannot reach {raw}: timeout"), redact(u.reveal())):
        assert COMPOSITE_SECRET[:5] not in text
        assert COMPOSITE_SECRET[5:] not in text
        assert "authMechanism=MONGODB-AWS" in text
        assert "w=1" in text
    assert "SERVICE_NAME:svc" in str(u) or "SERVICE_NAME" not in value
    assert u.query_dict["authMechanismProperties"] == value  # the driver still gets it
    encoded = raw.replace(f"TOKEN:{COMPOSITE_SECRET}", f"TOKEN%3A{COMPOSITE_SECRET}")
    assert COMPOSITE_SECRET not in redact(encoded)


def test_non_secret_query_values_are_kept() -> None:
    u = RedactedURI.parse("mongodb://h/db?authSource=admin&tls=true&keyfile_path=/x")
    assert str(u) == "mongodb://h/db?authSource=admin&tls=true&keyfile_path=/x"


NASTY_PASSWORDS = [
    "p@ss",
    "p:ss",
    "p/ss",
    "p?ss",
    "p#ss",
    "p%ss",
    "%41%42",
    "p ss",
    "p+ss",
    "[::1]",
    "a,b",
    "' OR 1=1 --",
    '"; DROP TABLE users; --',
    "$(rm -rf /)",
    "pässwörd😀",
    "パスワード",
    "\n\t\r",
    "\x00\x7f",
    "***",
    "@@@",
    "amp&ersand=eq",
    "https://x:y@z",
    "back\\slash",
    "",
]


@pytest.mark.parametrize("password", NASTY_PASSWORDS)
def test_nasty_passwords_parse_and_redact(password: str) -> None:
    enc = quote(password, safe="")
    u = RedactedURI.parse(f"postgresql://alice:{enc}@db.example:5432/prod?sslmode=require")
    assert u.password == password
    assert u.username == "alice"
    assert u.hosts == (("db.example", 5432),)
    shown = "postgresql://alice:***@db.example:5432/prod?sslmode=require"
    assert str(u) == shown
    assert repr(u) == f"RedactedURI({shown!r})"
    assert RedactedURI.parse(u.reveal()) == u


# ---------------------------------------------------------------------- redaction property

#: Text a random "password" could coincide with: the URI templates below and every message
#: the parser can produce (Hypothesis mines string constants from the source under test).
_BOILERPLATE = "\n".join(
    [
        "postgresql://alice:@db.example:5432/prod?sslmode=require mongodb h1 h2 h3",
        inspect.getsource(uri_module),
        "InvalidURIError(RedactedURI(",
    ]
)

#: Long random tokens: a short password like "a" could appear in other parts by coincidence.
tokens = st.one_of(
    st.text(
        alphabet=st.characters(codec="utf-8"),
        min_size=12,
        max_size=40,
    ),
    st.text(alphabet=string.ascii_letters + string.digits + string.punctuation + " ", min_size=12),
).filter(lambda pw: pw not in _BOILERPLATE and pw.strip() == pw)


def _assert_hidden(text: str, password: str) -> None:
    assert password not in text
    assert quote(password, safe="") not in text
    assert quote_plus(password, safe="") not in text


@given(password=tokens)
@example(password="Sup3r/S3cret?Passw0rd#")
@example(password="p@ss:word@@host/xyzzy")
def test_password_never_in_str_or_repr(password: str) -> None:
    enc = quote(password, safe="")
    for uri in (
        f"postgresql://alice:{enc}@db.example:5432/prod?sslmode=require",
        f"mongodb://alice:{enc}@h1,h2:27018,[::1]/prod",
        f"mysql+pymysql://alice:{enc}@db.example/prod",
        f"postgresql://db.example/prod?password={enc}&token={enc}",
        f"s3://bucket/prefix?aws_secret_access_key={enc}",
    ):
        u = RedactedURI.parse(uri)
        assert password in (u.password, u.query_dict.get("password"), *u.query_dict.values())
        _assert_hidden(str(u), password)
        _assert_hidden(repr(u), password)
        _assert_hidden(str(u.with_scheme("postgres")), password)
        _assert_hidden(redact(u.reveal()), password)


def _malformed_encoded(enc: str) -> list[str]:
    return [
        f"postgresql://alice:{enc}@db.example:99999/prod",
        f"postgresql://alice:{enc}@db.example:abc/prod",
        f"mongodb://alice:{enc}@[::1/prod",
        f"mongodb://alice:{enc}@h1]/prod",
        f"mongodb://alice:{enc}@h1,,h2/prod",
        f"postgresql://alice:{enc}@db.example/prod%zz",
        f"postgresql://alice:{enc}%zz@db.example/prod",
        f"postgresql://alice:{enc}@db.example/prod?x=%zz",
        f"postgresql://alice:{enc}@db example/prod",
        f"postgresql://alice:{enc}@db.example/pr\nod",
        f"sqlite://alice:{enc}@file.db",
        f"postgresql://db.example:99999/prod?password={enc}",
        f"postgresql://db.example:99999/prod?aws_secret_access_key={enc}&x=1",
    ]


def _assert_error_hides(exc: BaseException, password: str) -> None:
    _assert_hidden(str(exc), password)
    _assert_hidden(repr(exc), password)
    _assert_hidden("".join(traceback.format_exception(exc)), password)


@given(password=tokens)
@example(password="Sup3r/S3cret?Passw0rd#")
@example(password="pass word with spaces")
def test_password_never_in_error_of_malformed_uri(password: str) -> None:
    enc = quote(password, safe="")
    reference = _malformed_encoded("REFERENCE-PASSWORD")
    for uri, ref_uri in zip(_malformed_encoded(enc), reference, strict=True):
        with pytest.raises(InvalidURIError) as info:
            RedactedURI.parse(uri)
        _assert_error_hides(info.value, password)
        # stronger: the message does not depend on the password at all
        with pytest.raises(InvalidURIError) as ref_info:
            RedactedURI.parse(ref_uri)
        assert str(info.value) == str(ref_info.value)


@given(password=tokens)
@example(password="12/x@evil.example:1/")
@example(password="p w@h:99999/db?x")
def test_password_never_in_error_of_unencoded_password(password: str) -> None:
    """An unencoded password may make a URI malformed; the error must still hide it."""
    for uri in (
        f"postgresql://alice:{password}@db.example:99999/prod",
        f"postgresql://alice:{password}@db.example/prod",
        f"mongodb://alice:{password}@h1,,h2/prod",
        f"postgresql://alice:{password}@db.example/prod?password={password}",
    ):
        try:
            RedactedURI.parse(uri)
        except InvalidURIError as exc:
            _assert_error_hides(exc, password)


# ---------------------------------------------------------------------- malformed table

PW = "Sup3rS3cretPassw0rd"

MALFORMED = [
    "",
    "   ",
    "no-scheme-here",
    f"alice:{PW}@db.example/prod",
    f"://alice:{PW}@h/db",
    f"1pg://alice:{PW}@h/db",
    f"post gres://alice:{PW}@h/db",
    f"postgresql:/alice:{PW}@h/db",
    f"postgresql://alice:{PW}@h:99999/db",
    f"postgresql://alice:{PW}@h:65536/db",
    f"postgresql://alice:{PW}@h:abc/db",
    f"postgresql://alice:{PW}@h:0/db",
    f"postgresql://alice:{PW}@h:-1/db",
    f"postgresql://alice:{PW}@h:+80/db",
    f"postgresql://alice:{PW}@h:²/db",
    f"postgresql://alice:{PW}@h:٣/db",
    f"postgresql://alice:{PW}@h:1:2/db",
    f"mongodb://alice:{PW}@[::1/db",
    f"mongodb://alice:{PW}@h]/db",
    f"mongodb://alice:{PW}@[::1]x/db",
    f"mongodb://alice:{PW}@[1.2.3.4]/db",
    f"mongodb://alice:{PW}@[]/db",
    f"mongodb://alice:{PW}@h1,,h2/db",
    f"mongodb://alice:{PW}@h1,/db",
    f"mongodb://alice:{PW}@,h1/db",
    f"mongodb://alice:{PW}@:27017/db",
    f"mongodb://alice:{PW}@h%zz/db",
    f"postgresql://alice:{PW}@ho st/db",
    f"postgresql://alice:{PW} x@h/db",
    f"postgresql://alice:{PW}\t@h/db",
    f"postgresql://alice:{PW}@h/d\x00b",
    f"postgresql://alice:{PW}@h/d\nb",
    f"postgresql://alice:{PW}@h/d\x7fb",
    f"postgresql://alice:{PW}@h/db%zz",
    f"postgresql://alice:{PW}@h/db%4",
    f"postgresql://alice:{PW}%zz@h/db",
    f"postgresql://alice:{PW}@h/db?x=%zz",
    f"postgresql://alice:{PW}@h/db?x=%",
    f"postgresql://alice:{PW}@h/db%ff",
    f"postgresql://alice:%ff{PW}@h/db",
    f"postgresql://alice:{PW}@h/db?x=%ff",
    f"postgresql://alice:{PW}/x@h/db",
    f"postgresql://alice:{PW}?x@h/db",
    f"postgresql://alice:{PW}#x@h/db",
    f"sqlite://alice:{PW}@file.db",
    "sqlite://data@2x.db",
    f"duckdb://alice:{PW}@x.duckdb",
    f"filesystem://alice:{PW}@host/dir",
    f"file://alice:{PW}@host/x",
    f"postgresql://h:99999/db?password={PW}",
    f"postgresql://h:99999/db?token={PW}&secret={PW}",
    f"s3://alice:{PW}@bucket:70000/prefix",
    f"mongodb://h:99999/db?authMechanismProperties=AWS_SESSION_TOKEN:{PW},SERVICE_NAME:x",
    f"mongodb://h:99999/db?sslKeyPassword={PW}&tls=true",
]


@pytest.mark.parametrize("uri", MALFORMED, ids=[repr(u)[:60] for u in MALFORMED])
def test_malformed_uri_raises_redacted_error(uri: str) -> None:
    with pytest.raises(InvalidURIError) as info:
        RedactedURI.parse(uri)
    message = str(info.value)
    assert message
    _assert_error_hides(info.value, PW)
    # InvalidURIError is a ConfigError and a ValueError: callers may catch either
    assert isinstance(info.value, ValueError)


def test_malformed_table_is_big_enough() -> None:
    assert len(MALFORMED) >= 30


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("", "empty"),
        ("no-scheme-here", "no scheme"),
        ("postgresql://h:99999/db", "invalid port '99999'"),
        ("postgresql://h:abc/db", "invalid port 'abc'"),
        ("mongodb://[::1/db", "unbalanced '['"),
        ("mongodb://h]/db", "unbalanced ']'"),
        ("mongodb://h1,,h2", "empty host"),
        ("postgresql://h/db%zz", "broken percent-escape near '%zz'"),
        ("postgresql://h/d\nb", "control characters"),
        ("sqlite://a@b.db", "takes a path, not user@host"),
        ("postgresql://ho st/db", "whitespace"),
    ],
)
def test_error_messages_say_what_is_wrong(uri: str, fragment: str) -> None:
    with pytest.raises(InvalidURIError, match=None) as info:
        RedactedURI.parse(uri)
    assert fragment in str(info.value)


def test_port_is_not_echoed_when_it_may_be_part_of_a_password() -> None:
    # "alice:p" looks like host "alice" and port "p": "p" is really the start of the password
    with pytest.raises(InvalidURIError) as info:
        RedactedURI.parse("postgresql://alice:pXq7/rest-of-password@h/db")
    assert "pXq7" not in str(info.value)


def test_non_string_is_rejected() -> None:
    bad: Any = 5432
    with pytest.raises(InvalidURIError, match="must be a string"):
        RedactedURI.parse(bad)


# ---------------------------------------------------------------------- redact() on free text


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("connect to postgresql://u:hunter2@h/db failed", "hunter2"),
        ("connect to postgresql://u:hun/ter2@h/db failed", "hun/ter2"),
        ("connect to postgresql://u:hun?ter2@h/db failed", "hun?ter2"),
        ("mongodb://u:a@b@h1,h2/db: timeout", "a@b"),
        ("s3://b/p?aws_secret_access_key=AKIAsecret&x=1 denied", "AKIAsecret"),
        ("postgresql://h/db?sslmode=require&password=hunter2", "hunter2"),
        ("mysql://u@h/db?ssl-key-password=hunter2 refused", "hunter2"),
        ("mongodb://h/?tlsCertificateKeyFilePassword=hunter2&tls=true", "hunter2"),
        ("gs://b/p?credential=hunter2", "hunter2"),
        ("mongodb://h/?authMechanismProperties=AWS_SESSION_TOKEN:hunter2 x", "hunter2"),
    ],
)
def test_redact_free_text(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert REDACTED in out


def test_redact_leaves_harmless_text_alone() -> None:
    text = "table 'x' not found in postgresql://u@h:5432/db?sslmode=require"
    assert redact(text) == text


# ---------------------------------------------------------------------- translate_uri

TRANSLATE_CASES: list[tuple[str, Stack, str]] = [
    # sqlite: relative (the spec's form), absolute, in memory
    ("sqlite://file.db", "sqlalchemy", "sqlite:///file.db"),
    ("sqlite://sub/dir/file.db", "sqlalchemy", "sqlite:///sub/dir/file.db"),
    ("sqlite:///abs/file.db", "sqlalchemy", "sqlite:////abs/file.db"),
    ("sqlite://", "sqlalchemy", "sqlite://"),
    ("sqlite://:memory:", "sqlalchemy", "sqlite://"),
    ("sqlite://file.db?mode=ro", "sqlalchemy", "sqlite:///file.db?mode=ro"),
    ("sqlite://file.db", "ibis", "sqlite://file.db"),
    ("sqlite:///abs/file.db", "ibis", "sqlite:///abs/file.db"),
    ("sqlite://", "ibis", "sqlite://"),
    ("sqlite://:memory:", "ibis", "sqlite://"),
    # duckdb
    ("duckdb://data.duckdb", "sqlalchemy", "duckdb:///data.duckdb"),
    ("duckdb:///abs/data.duckdb", "sqlalchemy", "duckdb:////abs/data.duckdb"),
    ("duckdb://", "sqlalchemy", "duckdb:///:memory:"),
    ("duckdb://:memory:", "sqlalchemy", "duckdb:///:memory:"),
    ("duckdb://data.duckdb", "ibis", "duckdb://data.duckdb"),
    ("duckdb:///abs/data.duckdb", "ibis", "duckdb:///abs/data.duckdb"),
    ("duckdb://", "ibis", "duckdb://"),
    # postgres
    ("postgres://u:p%40ss@h:5432/db", "sqlalchemy", "postgresql://u:p%40ss@h:5432/db"),
    (
        "postgresql://u@h/db?sslmode=require",
        "sqlalchemy",
        "postgresql://u@h/db?sslmode=require",
    ),
    ("postgresql://u:pw@h/db", "ibis", "postgres://u:pw@h/db"),
    ("postgres://u:pw@h/db", "ibis", "postgres://u:pw@h/db"),
    ("postgresql+asyncpg://u@h/db", "sqlalchemy", "postgresql+asyncpg://u@h/db"),
    # mysql / mariadb
    ("mysql://root@127.0.0.1:3306/test", "sqlalchemy", "mysql://root@127.0.0.1:3306/test"),
    ("mariadb://root:pw@127.0.0.1/test", "sqlalchemy", "mysql://root:pw@127.0.0.1/test"),
    ("mysql://root@127.0.0.1:3306/test", "ibis", "mysql://root@127.0.0.1:3306/test"),
    ("mariadb://root:pw@127.0.0.1/test", "ibis", "mysql://root:pw@127.0.0.1/test"),
    # mongodb
    (
        "mongodb://u:p%3Aw@h1:27017,h2,[::1]:27019/db?replicaSet=rs0",
        "pymongo",
        "mongodb://u:p%3Aw@h1:27017,h2,[::1]:27019/db?replicaSet=rs0",
    ),
    ("mongodb+srv://u:pw@c.example.net/db", "pymongo", "mongodb+srv://u:pw@c.example.net/db"),
    # fsspec
    ("filesystem://./data", "fsspec", "./data"),
    ("filesystem:///abs/data", "fsspec", "/abs/data"),
    ("filesystem://", "fsspec", "."),
    ("file:///abs/data", "fsspec", "file:///abs/data"),
    (
        "s3://bucket/prefix?endpoint_url=http://127.0.0.1:8333",
        "fsspec",
        "s3://bucket/prefix?endpoint_url=http://127.0.0.1:8333",
    ),
    ("memory://", "fsspec", "memory://"),
]


@pytest.mark.parametrize(("uri", "stack", "expected"), TRANSLATE_CASES)
def test_translate_uri(uri: str, stack: Stack, expected: str) -> None:
    assert translate_uri(uri, stack) == expected
    assert translate_uri(RedactedURI.parse(uri), stack) == expected


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("postgres://u:pw@h:5432/db", "postgresql+psycopg://u:pw@h:5432/db"),
        ("mariadb://root@h/test", "mysql+pymysql://root@h/test"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),  # explicit driver wins
        ("sqlite://file.db", "sqlite:///file.db"),  # a dialect the mapping does not list
    ],
)
def test_translate_uri_names_the_drivers_the_caller_chooses(uri: str, expected: str) -> None:
    drivers = {"postgresql": "psycopg", "mysql": "pymysql"}
    assert translate_uri(uri, "sqlalchemy", drivers=drivers) == expected


def test_protocols_name_no_database_driver() -> None:
    """Which DB-API driver a dialect uses is the store package's choice (issue #17): no driver
    module is named anywhere in pinnacle-protocols' source."""
    import pinnacle_protocols

    root = Path(pinnacle_protocols.__file__).parent
    drivers = ("psycopg", "pymysql", "pyodbc", "oracledb", "mysqlclient", "asyncpg")
    found = [
        f"{path.relative_to(root)}: {name}"
        for path in sorted(root.rglob("*.py"))
        for name in drivers
        if name in path.read_text(encoding="utf-8")
    ]
    assert found == []


@pytest.mark.parametrize(
    ("uri", "stack"),
    [
        ("sqlite://file.db", "pymongo"),
        ("postgresql://u:Sup3rS3cretPassw0rd@h/db", "pymongo"),
        ("filesystem://./data", "sqlalchemy"),
        ("s3://bucket/x", "sqlalchemy"),
        ("mongodb://u:Sup3rS3cretPassw0rd@h/db", "sqlalchemy"),
        ("mongodb+srv://u:Sup3rS3cretPassw0rd@h/db", "sqlalchemy"),
        ("memory://", "sqlalchemy"),
    ],
)
def test_translate_uri_rejects_meaningless_pairs(uri: str, stack: Stack) -> None:
    with pytest.raises(InvalidURIError) as info:
        translate_uri(uri, stack)
    _assert_error_hides(info.value, "Sup3rS3cretPassw0rd")


# ---------------------------------------------------------------------- reveal() round trip

_hostnames = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\.[a-z0-9]{1,6}){0,2}\Z")
_ipv6 = st.ip_addresses(v=6).map(str)
_any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
_hosts = st.lists(
    st.tuples(
        st.one_of(_hostnames, _ipv6, _any_text.filter(bool)),
        st.none() | st.integers(min_value=1, max_value=65535),
    ),
    min_size=0,
    max_size=3,
)
_network_schemes = st.sampled_from(
    ["postgresql", "postgres", "mysql", "mariadb", "mongodb", "mongodb+srv", "s3", "gcs"]
)


def _host_text(host: str, port: int | None) -> str:
    if ":" in host:
        text = f"[{quote(host, safe=':')}]"
    else:
        text = quote(host, safe="")
    return text + (f":{port}" if port is not None else "")


@st.composite
def network_uris(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    scheme = draw(_network_schemes)
    user = draw(st.none() | _any_text)
    password = draw(st.none() | _any_text)
    hosts = draw(_hosts)
    segments = draw(st.lists(_any_text, max_size=3))
    query = draw(st.lists(st.tuples(_any_text.filter(bool), _any_text), max_size=4))
    auth = ""
    if user is not None or password is not None:
        auth = quote(user or "", safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        auth += "@"
    path = "".join("/" + quote(s, safe="") for s in segments)
    qs = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
    text = f"{scheme}://{auth}{','.join(_host_text(h, p) for h, p in hosts)}{path}"
    if query:
        text += "?" + qs
    expected = {
        "scheme": scheme,
        "username": user or None,
        "password": password,
        "hosts": tuple(hosts),
        "path": "".join("/" + s for s in segments),
        "query": tuple(query),
    }
    return text, expected


@given(network_uris())
def test_reveal_round_trip_network(case: tuple[str, dict[str, Any]]) -> None:
    text, expected = case
    u = RedactedURI.parse(text)
    for attr, value in expected.items():
        assert getattr(u, attr) == value, attr
    assert RedactedURI.parse(u.reveal()) == u
    assert RedactedURI.parse(str(u)).password == (REDACTED if u.password is not None else None)
    # str() and repr() do not depend on the password at all
    if u.password is not None:
        other = attrs.evolve(u, password="something else")
        assert str(other) == str(u)
        assert repr(other) == repr(u)


@given(
    scheme=st.sampled_from(sorted(PATH_SCHEMES)),
    path=_any_text,
    query=st.lists(st.tuples(_any_text.filter(bool), _any_text), max_size=3),
)
def test_reveal_round_trip_path_schemes(
    scheme: str, path: str, query: list[tuple[str, str]]
) -> None:
    text = f"{scheme}://{quote(path, safe='/')}"
    if query:
        text += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
    u = RedactedURI.parse(text)
    assert u.path == path
    assert u.query == tuple(query)
    assert RedactedURI.parse(u.reveal()) == u


@pytest.mark.parametrize(
    "uri",
    [
        "sqlite://a%40b.db",
        "postgresql://h/db?a=b%2Bc",
        "postgresql://h/db?a=b+c",
        "mongodb://h%2Cx,h2/db",
        "file:///home/me/x@2x.png",
        "postgresql://u:p%2B%20w@h/db",
    ],
)
def test_reveal_round_trip_examples(uri: str) -> None:
    u = RedactedURI.parse(uri)
    assert RedactedURI.parse(u.reveal()) == u


def test_without_query_and_with_scheme() -> None:
    u = RedactedURI.parse("postgres://u:pw@h/db?password=x#frag")
    assert u.without_query().query == ()
    assert u.without_query().fragment == ""
    v = u.with_scheme("postgresql")
    assert v.scheme == "postgresql"
    assert v.password == "pw"
    assert str(v) == "postgresql://u:***@h/db?password=***#frag"


@pytest.mark.parametrize(
    "text",
    [
        "a" * 200_000,
        "a1" * 100_000,
        "x://u:" + "a" * 200_000 + " ",
        "postgresql://u:" + "p" * 200_000 + "@h:99999/db",
    ],
    ids=["letters", "letters-digits", "long-password-run", "long-uri"],
)
def test_redaction_is_linear_on_long_text(text: str) -> None:
    """A regex that backtracks over a long run would take minutes here (it used to)."""
    start = time.perf_counter()
    redact(text)
    with contextlib.suppress(InvalidURIError):
        RedactedURI.parse(text)
    assert time.perf_counter() - start < 10
