"""URI parsing, redaction and translation between stacks (SQLAlchemy, ibis, pymongo, fsspec).

:class:`RedactedURI` is the only form in which a store URI is shown to a person: its ``str``
and ``repr`` replace the password with ``***``. :func:`translate_uri` is the one place where
the spec's URI forms (``sqlite://file.db``, ``postgres://...``) become what each driver expects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, unquote_plus, urlencode

from attrs import frozen

from pinnacle_protocols.errors import InvalidURIError

__all__ = [
    "PATH_SCHEMES",
    "REDACTED",
    "RedactedURI",
    "is_secret_key",
    "redact",
    "redact_uri",
    "redacted_repr",
    "translate_uri",
]

REDACTED = "***"

#: Schemes whose "authority" is really a local path (``sqlite://file.db``, ``filesystem://./data``).
PATH_SCHEMES = frozenset(
    {
        "sqlite",
        "sqlalchemy+sqlite",
        "duckdb",
        "filesystem",
        "file",
        "memory",
        "pandas",
        "polars",
        "datafusion",
        "local",
    }
)

_SCHEME_RE = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<rest>.*)$", re.DOTALL)
# The password runs from the first ':' after the user name to the LAST '@' of the run, so a
# password with an unencoded '/', '?', '#' or '@' is still masked (over-masking is harmless).
# The scheme is bounded ({0,40}) so that a long run of letters cannot make matching quadratic.
_USERINFO_RE = re.compile(r"(?P<pre>[A-Za-z][A-Za-z0-9+.\-]{0,40}://[^/@:\s]*:)(?P<pw>\S*)(?=@)")
_QUERY_PAIR_RE = re.compile(r"(?P<pre>[?&;](?P<key>[^=&;#?\s]+)=)(?P<val>[^&;#\s]*)")
_QUERY_KEY_RE = re.compile(r"[?&](?P<key>[^=&#?]+)=")
#: Query option names that are secrets in full (compared lower-cased, without ``_ - .``).
_SECRET_QUERY_KEYS = frozenset({"key", "pass", "sig", "sas", "auth", "sk"})
#: A query option (or a part of a composite value) whose name, lower-cased and without
#: ``_ - .``, contains one of these carries a secret: tokens, passwords, secrets, signatures,
#: credentials and key material (``sslKeyPassword``, ``tlsCertificateKeyFilePassword``,
#: ``aws_secret_access_key``, ``X-Amz-Signature``, ``api_key``, ``private_key``, ...).
_SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "credential",
    "signature",
    "connectionstring",
    "apikey",
    "accesskey",
    "accountkey",
    "privatekey",
    "sessionkey",
    "sharedkey",
    "masterkey",
    "authkey",
    "clientkey",
    "encryptionkey",
)
#: Query options whose value is a list of ``NAME:value`` pairs (MongoDB's
#: ``authMechanismProperties=AWS_SESSION_TOKEN:...,SERVICE_NAME:...``): compared like keys.
_COMPOSITE_HINTS = ("properties", "props")
_COMPOSITE_SPLIT_RE = re.compile(r"(,|%2[cC])")
_COMPOSITE_SEP_RE = re.compile(r":|%3[aA]")


def redact(text: str) -> str:
    """Mask every ``scheme://user:password@`` password in free text (best effort, for messages).

    Used on strings that may not parse as a URI at all, e.g. inside an error message. Query
    options are masked by the same rule as :class:`RedactedURI`: the value of every option
    whose name carries a secret (``?password=``, ``&aws_secret_access_key=``, ``&token=``,
    ``&sslKeyPassword=``, ...), and the secret parts of composite values
    (``authMechanismProperties=AWS_SESSION_TOKEN:***,SERVICE_NAME:x``).
    """
    text = _USERINFO_RE.sub(lambda m: m.group("pre") + REDACTED, text)
    return _QUERY_PAIR_RE.sub(_mask_secret_pair, text)


def redact_uri(text: str) -> str:
    """A text meant to be one URI, as it may be shown: :class:`RedactedURI`'s form when it
    parses, else masked strictly (the whole password region and every secret query option to
    the end), for reprs of objects that keep a raw URI string."""
    try:
        return str(RedactedURI.parse(text))
    except InvalidURIError:
        return _redact_whole(text)


def redacted_repr(value: object) -> str:
    """``repr(value)`` with a URI string redacted (:func:`redact_uri`): for attrs fields'
    ``repr=`` of objects that keep a raw URI, e.g. ``field(repr=redacted_repr)``."""
    return repr(redact_uri(value)) if isinstance(value, str) else repr(value)


def _mask_secret_pair(m: re.Match[str]) -> str:
    return m.group("pre") + _mask_query_value(unquote_plus(m.group("key")), m.group("val"))


def _mask_query_value(key: str, value: str) -> str:
    """``value`` (as written, possibly percent-encoded) of query option ``key``, secrets masked.

    The whole value when the option name carries a secret; otherwise, in a composite value
    (``NAME:value,NAME:value``), the value of every part whose name carries a secret.
    """
    if _is_secret_key(key):
        return REDACTED
    if not _COMPOSITE_SEP_RE.search(value):
        return value
    parts = _COMPOSITE_SPLIT_RE.split(value)
    in_secret = False
    for i in range(0, len(parts), 2):  # odd indexes are the separators
        sep = _COMPOSITE_SEP_RE.search(parts[i])
        if sep is None:
            if in_secret:  # a secret with an unencoded ',' goes on: mask the rest of it too
                parts[i] = REDACTED
            continue
        in_secret = _is_secret_key(unquote_plus(parts[i][: sep.start()]))
        if in_secret:
            parts[i] = parts[i][: sep.end()] + REDACTED
    return "".join(parts)


def _redact_whole(text: str) -> str:
    """Mask a text that is known to be one URI (for parse errors): stricter than :func:`redact`.

    Two regions are masked, whatever they contain (spaces, '/', '#', '&', '@'): from the first
    ':' after ``scheme://`` to the last '@' (the password, however badly encoded), and from the
    first secret query key (``password=``, ``token=``, ...) to the end.
    """
    m = _SCHEME_RE.match(text)
    start = len(m.group("scheme")) + 3 if m else 0
    spans: list[tuple[int, int]] = []
    at = text.rfind("@")
    colon = text.find(":", start, at) if at > start else -1
    if colon != -1:
        spans.append((colon + 1, at))
    for key in _QUERY_KEY_RE.finditer(text, start):
        if _may_hold_secret(unquote_plus(key.group("key"))):
            spans.append((key.end(), len(text)))
            break
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    out, pos = [], 0
    for a, b in merged:
        out += [text[pos:a], REDACTED]
        pos = b
    out.append(text[pos:])
    return "".join(out)


def _normal_key(key: str) -> str:
    return re.sub(r"[\s_\-.]", "", key.lower())


def is_secret_key(key: str) -> bool:
    """Whether a query option (or composite part, or driver option) named ``key`` holds a
    secret: the one rule of :class:`RedactedURI`, for every scheme."""
    k = _normal_key(key)
    return k in _SECRET_QUERY_KEYS or any(part in k for part in _SECRET_KEY_PARTS)


_is_secret_key = is_secret_key


def _may_hold_secret(key: str) -> bool:
    """A secret option, or a composite one whose parts may be secrets (``authMechanism...``)."""
    k = _normal_key(key)
    return _is_secret_key(key) or any(h in k for h in _COMPOSITE_HINTS)


@frozen(kw_only=True, repr=False)
class RedactedURI:
    """A parsed store URI whose text form never shows the password or any other secret.

    One rule, for every scheme, decides what ``str``/``repr`` mask (and :func:`redact` on free
    text): the password of the user info; the value of every query option whose name,
    compared case-insensitively and without ``_``, ``-`` and ``.``, is ``key``, ``pass``,
    ``sig``, ``sas``, ``auth`` or ``sk`` or contains ``password``, ``passwd``, ``pwd``,
    ``passphrase``, ``secret``, ``token``, ``credential``, ``signature`` or a key-material name
    (``apikey``, ``accesskey``, ``privatekey``, ...); and inside a composite value such as
    ``authMechanismProperties=AWS_SESSION_TOKEN:x,SERVICE_NAME:y`` the value of every part
    whose name is a secret by the same rule. Over-masking is preferred to a leak.

    Attributes:
        scheme: Lower-cased scheme, e.g. ``"postgresql"`` or ``"mongodb+srv"``.
        username: Decoded user name, or ``None``.
        password: Decoded password, or ``None``. Never part of ``str()`` or ``repr()``.
        hosts: ``(host, port)`` pairs; several for MongoDB replica sets, IPv6 hosts without
            brackets. Empty for path schemes (see :data:`PATH_SCHEMES`).
        path: For network schemes the part after the authority (``"/db"``); for path schemes
            the whole location after ``scheme://`` (``"./data"``, ``"/abs/x.db"``, ``""``).
        query: The query string as ordered ``(key, value)`` pairs, preserved for the driver.
        fragment: The fragment, or ``""``.
    """

    scheme: str
    username: str | None = None
    password: str | None = None
    hosts: tuple[tuple[str, int | None], ...] = ()
    path: str = ""
    query: tuple[tuple[str, str], ...] = ()
    fragment: str = ""

    # ------------------------------------------------------------------ parsing
    @classmethod
    def parse(cls, uri: str | RedactedURI) -> RedactedURI:
        """Parse ``uri``; raise :class:`InvalidURIError` (with a redacted message) if malformed."""
        if isinstance(uri, RedactedURI):
            return uri
        if not isinstance(uri, str):
            raise InvalidURIError(f"a store URI must be a string, got {type(uri).__name__}")
        text = uri.strip()
        if not text:
            raise InvalidURIError("empty URI: expected 'scheme://...', e.g. 'sqlite://data.db'")
        shown = _redact_whole(text)
        if any(c < " " or c == "\x7f" for c in text):
            raise InvalidURIError(
                f"URI {shown!r} contains control characters (newline, tab, NUL, ...): "
                "percent-encode them"
            )
        if " " in text.split("?", 1)[0].split("://", 1)[0]:
            raise InvalidURIError(f"URI {shown!r} contains whitespace in its scheme")
        m = _SCHEME_RE.match(text)
        if m is None:
            raise InvalidURIError(
                f"URI {shown!r} has no scheme: expected 'scheme://...', "
                "e.g. 'postgresql://user@host/db' or 'filesystem://./artifacts'"
            )
        scheme = m.group("scheme").lower()
        rest = m.group("rest")
        rest, _, fragment = rest.partition("#")
        rest, _, query_text = rest.partition("?")
        # Parts of a mangled URI may hold pieces of an unencoded password: quote them only
        # when the URI has no user info at all.
        echo = "@" not in text
        _check_percent(query_text, shown, echo=False)  # may hold ?password=...
        try:
            query = tuple(
                parse_qsl(query_text, keep_blank_values=True, strict_parsing=False, errors="strict")
            )
        except ValueError as exc:
            raise InvalidURIError(
                f"URI {shown!r} has a malformed query string (percent-escapes must decode to UTF-8)"
            ) from exc
        if scheme in PATH_SCHEMES:
            # ``file:///home/me/x@2x.png`` is a path; ``file://user:pw@host/x`` is not.
            if "@" in rest and (scheme != "file" or "@" in rest.split("/", 1)[0]):
                raise InvalidURIError(
                    f"URI {shown!r}: scheme {scheme!r} takes a path, not user@host "
                    "(encode a literal '@' in a file name as '%40')"
                )
            _check_percent(rest, shown, echo=echo)
            return cls(
                scheme=scheme,
                path=_unquote(rest, shown, echo=echo),
                query=query,
                fragment=fragment,
                hosts=(),
            )
        authority, slash, path = rest.partition("/")
        path = slash + path
        if any(c.isspace() for c in authority):
            raise InvalidURIError(
                f"URI {shown!r} has whitespace in its user, password or host part: "
                "percent-encode it (a space is '%20')"
            )
        username = password = None
        if "@" in authority:
            userinfo, _, authority = authority.rpartition("@")
            user_raw, has_pw, pw_raw = userinfo.partition(":")
            _check_percent(userinfo, shown, echo=False)
            username = _unquote(user_raw, shown, echo=False) or None
            password = _unquote(pw_raw, shown, echo=False) if has_pw else None
        hosts = _parse_hosts(authority, shown, echo=echo) if authority else ()
        _check_percent(path, shown, echo=echo)
        return cls(
            scheme=scheme,
            username=username,
            password=password,
            hosts=hosts,
            path=_unquote(path, shown, echo=echo),
            query=query,
            fragment=fragment,
        )

    # ------------------------------------------------------------------ accessors
    @property
    def host(self) -> str | None:
        """The first host, or ``None``."""
        return self.hosts[0][0] if self.hosts else None

    @property
    def port(self) -> int | None:
        """The first host's port, or ``None``."""
        return self.hosts[0][1] if self.hosts else None

    @property
    def database(self) -> str | None:
        """The database name: the first path segment of a network URI, or ``None``."""
        if self.scheme in PATH_SCHEMES:
            return None
        name = self.path.lstrip("/").split("/", 1)[0]
        return name or None

    @property
    def query_dict(self) -> dict[str, str]:
        """The query as a dict (last value wins)."""
        return dict(self.query)

    @property
    def is_path_scheme(self) -> bool:
        """Whether the part after ``scheme://`` is a local path (sqlite, duckdb, filesystem...)."""
        return self.scheme in PATH_SCHEMES

    # ------------------------------------------------------------------ rendering
    def _render(self, *, reveal: bool, scheme: str | None = None) -> str:
        scheme = scheme or self.scheme
        # '+' is escaped in query values: drivers decode a bare '+' as a space.
        q = "&".join(
            f"{quote(k, safe='')}="
            + (
                quote(v, safe=":/,.-_~@")
                if reveal
                else _mask_query_value(k, quote(v, safe=":/,.-_~@"))
            )
            for k, v in self.query
        )
        tail = ("?" + q if self.query else "") + ("#" + self.fragment if self.fragment else "")
        if self.scheme in PATH_SCHEMES:
            # '@' is only allowed (and so only rendered bare) after the first segment of file://
            bare_at = self.scheme == "file" and "@" not in self.path.split("/", 1)[0]
            safe = "/:.-_~+=,@" if bare_at else "/:.-_~+=,"
            return f"{scheme}://{quote(self.path, safe=safe)}{tail}"
        auth = ""
        if self.username is not None or self.password is not None:
            auth = quote(self.username or "", safe="")
            if self.password is not None:
                auth += ":" + (quote(self.password, safe="") if reveal else REDACTED)
            auth += "@"
        hosts = ",".join(
            (f"[{_quote_host(h)}]" if ":" in h else _quote_host(h))
            + (f":{p}" if p is not None else "")
            for h, p in self.hosts
        )
        return f"{scheme}://{auth}{hosts}{quote(self.path, safe='/:.-_~+=,@')}{tail}"

    def __str__(self) -> str:
        return self._render(reveal=False)

    def secrets(self) -> frozenset[str]:
        """The decoded values that ``str()`` masks: the password, the value of every secret
        query option and the secret parts of composite options (for scrubbing them out of text
        that was not built from this object, e.g. a driver's error message)."""
        found = {self.password} if self.password else set()
        for key, value in self.query:
            if not value:
                continue
            if _is_secret_key(key):
                found.add(value)
                continue
            for part in value.split(","):
                name, sep, secret = part.partition(":")
                if sep and secret and _is_secret_key(name):
                    found.add(secret)
        return frozenset(found)

    def __repr__(self) -> str:
        return f"RedactedURI({self._render(reveal=False)!r})"

    def reveal(self) -> str:
        """The full URI including the password: only for handing to a driver, never to print."""
        return self._render(reveal=True)

    def with_scheme(self, scheme: str) -> RedactedURI:
        """A copy with another scheme (path schemes keep their path)."""
        from attrs import evolve

        return evolve(self, scheme=scheme)

    def without_query(self) -> RedactedURI:
        """A copy without query string and fragment."""
        from attrs import evolve

        return evolve(self, query=(), fragment="")


_HOST_UNSAFE = frozenset("%,/@?#[] ")


def _quote_host(host: str) -> str:
    return "".join(
        quote(c, safe="") if c in _HOST_UNSAFE or c.isspace() or not c.isprintable() else c
        for c in host
    )


def _check_percent(part: str, shown: str, *, echo: bool) -> None:
    i = part.find("%")
    while i != -1:
        if not re.fullmatch(r"[0-9A-Fa-f]{2}", part[i + 1 : i + 3]):
            where = f" near {part[i : i + 3]!r}" if echo else ""
            raise InvalidURIError(
                f"URI {shown!r} has a broken percent-escape{where}: encode a literal '%' as '%25'"
            )
        i = part.find("%", i + 1)


def _unquote(part: str, shown: str, *, echo: bool) -> str:
    try:
        return unquote(part, errors="strict")
    except UnicodeDecodeError as exc:
        where = f" in {part!r}" if echo else ""
        raise InvalidURIError(
            f"URI {shown!r}: percent-escapes{where} do not decode to UTF-8 text"
        ) from exc


def _parse_hosts(authority: str, shown: str, *, echo: bool) -> tuple[tuple[str, int | None], ...]:
    hosts: list[tuple[str, int | None]] = []
    for item in authority.split(","):
        if not item:
            raise InvalidURIError(f"URI {shown!r} has an empty host in its host list")
        if item.startswith("["):
            end = item.find("]")
            if end == -1:
                raise InvalidURIError(f"URI {shown!r} has an unbalanced '[' in its host")
            host, port_text = item[1:end], item[end + 1 :]
            if port_text and not port_text.startswith(":"):
                raise InvalidURIError(f"URI {shown!r}: junk after IPv6 address")
            port_text = port_text[1:]
            if not host or ":" not in host:
                raise InvalidURIError(f"URI {shown!r}: '[...]' must hold an IPv6 address")
        else:
            if "]" in item or "[" in item:
                raise InvalidURIError(f"URI {shown!r} has an unbalanced ']' in its host")
            host, _, port_text = item.partition(":")
            if not host:
                raise InvalidURIError(f"URI {shown!r} has a port but no host")
        port: int | None = None
        if port_text:
            if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
                detail = f" {port_text!r}" if echo else ""
                raise InvalidURIError(
                    f"URI {shown!r} has an invalid port{detail}: expected a number from 1 to 65535"
                )
            port = int(port_text)
        _check_percent(host, shown, echo=echo)
        hosts.append((_unquote(host, shown, echo=echo), port))
    return tuple(hosts)


Stack = Literal["sqlalchemy", "ibis", "pymongo", "fsspec"]

#: The SQLAlchemy dialect a scheme means; which DB-API driver it uses is the caller's choice
#: (``translate_uri(..., drivers=...)``: pinnacle-sql passes its own), never this package's.
_SQLALCHEMY_DIALECTS = {
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mssql": "mssql",
    "oracle": "oracle",
    "sqlite": "sqlite",
    "duckdb": "duckdb",
}
_IBIS_SCHEMES = {"postgresql": "postgres", "mariadb": "mysql"}


def translate_uri(
    uri: str | RedactedURI, stack: Stack, *, drivers: Mapping[str, str] | None = None
) -> str:
    """Translate a pinnacledb URI into the connection string another stack expects.

    One URI means one database across stacks: ``sqlite://data.db`` (relative, the spec's form),
    ``sqlite:///abs/data.db`` (absolute) and ``sqlite://`` (in memory) become
    ``sqlite:///data.db`` / ``sqlite:////abs/data.db`` / ``sqlite://`` for SQLAlchemy and
    ``sqlite://data.db`` style for ibis; ``postgres://`` becomes the ``postgresql`` dialect
    for SQLAlchemy and ``postgres://`` for ibis; ``mariadb://`` becomes ``mysql``.

    ``drivers`` (SQLAlchemy only) maps a dialect to the DB-API driver to name in the URL,
    e.g. ``{"postgresql": "DRIVER"}`` gives ``postgresql+DRIVER://``; a dialect it does not
    list is left to SQLAlchemy's default driver, and an explicit ``dialect+driver`` scheme
    is kept as written. pinnacle-sql passes its drivers (``pinnacle_sql.DRIVERS``).

    The result contains the password: hand it to the driver, never print it.

    Raises:
        InvalidURIError: the scheme has no meaning for ``stack``.
    """
    u = RedactedURI.parse(uri)
    if stack == "sqlalchemy":
        dialect = _SQLALCHEMY_DIALECTS.get(u.scheme)
        if dialect is not None:
            chosen = (drivers or {}).get(dialect)
            driver = f"{dialect}+{chosen}" if chosen else dialect
        elif "+" in u.scheme and not u.scheme.startswith("mongodb"):  # dialect+driver
            driver = u.scheme
        else:
            raise InvalidURIError(f"{u} has no SQLAlchemy dialect for scheme {u.scheme!r}")
        if u.scheme in ("sqlite", "duckdb"):
            path = u.path
            if path in ("", ":memory:"):
                return f"{driver}://" if u.scheme == "sqlite" else f"{driver}:///:memory:"
            q = ("?" + urlencode(u.query)) if u.query else ""
            return f"{driver}:///{path}{q}"
        return u._render(reveal=True, scheme=driver)
    if stack == "ibis":
        if u.scheme in ("sqlite", "duckdb"):
            path = u.path
            if path in ("", ":memory:"):
                return f"{u.scheme}://"
            return f"{u.scheme}://{path}"
        return u._render(reveal=True, scheme=_IBIS_SCHEMES.get(u.scheme, u.scheme))
    if stack == "pymongo":
        if u.scheme not in ("mongodb", "mongodb+srv"):
            raise InvalidURIError(f"{u} is not a MongoDB URI (mongodb:// or mongodb+srv://)")
        return u._render(reveal=True)
    if u.scheme == "filesystem":
        return u.path or "."
    return u._render(reveal=True)
