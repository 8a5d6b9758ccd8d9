"""MongoDB URIs, the lazily created client and the translation of driver errors.

Every store of this package holds one :class:`MongoConnection`. It validates the URI when the
store is built (so a URI without a database name fails at once, with a clear message) but only
imports pymongo and creates the ``MongoClient`` on first use.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from datetime import UTC
from typing import TYPE_CHECKING, Any

import attrs

from pinnacle_protocols.errors import (
    BackendUnavailable,
    ConfigError,
    InvalidURIError,
    PinnacleError,
)
from pinnacle_protocols.uri import RedactedURI, redact, translate_uri

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.database import Database

__all__ = [
    "DEFAULT_SERVER_SELECTION_TIMEOUT_MS",
    "MONGO_SCHEMES",
    "MongoConnection",
    "parse_mongo_uri",
]

#: URI schemes this package serves.
MONGO_SCHEMES = frozenset({"mongodb", "mongodb+srv"})
#: How long the client looks for a usable server before the store raises BackendUnavailable.
DEFAULT_SERVER_SELECTION_TIMEOUT_MS = 5_000

# MongoDB database names: no '/\. "$*<>:|?', no NUL, fewer than 64 bytes.
_BAD_DB_CHARS = re.compile(r'[/\\. "$*<>:|?\x00]')
_MAX_DB_BYTES = 63
# Server error codes that mean "these credentials are wrong or may not do this".
_AUTH_CODES = frozenset({13, 18})

Document = dict[str, Any]


def parse_mongo_uri(uri: str | RedactedURI) -> RedactedURI:
    """Parse and check a ``mongodb://`` or ``mongodb+srv://`` URI that names a database.

    Raises:
        InvalidURIError: wrong scheme, no host, no (or an invalid) database name, or an SRV URI
            with a port or several hosts. The message shows the URI with its password masked.
    """
    u = RedactedURI.parse(uri)
    if u.scheme not in MONGO_SCHEMES:
        raise InvalidURIError(
            f"{u} is not a MongoDB URI: use mongodb://host:27017/database "
            "or mongodb+srv://cluster.example.net/database"
        )
    if not u.hosts:
        raise InvalidURIError(f"{u} has no host: use e.g. mongodb://localhost:27017/documents")
    if u.scheme == "mongodb+srv" and (len(u.hosts) != 1 or u.port is not None):
        raise InvalidURIError(
            f"{u}: a mongodb+srv:// URI names exactly one host name and no port "
            "(the port and replica set members come from DNS); use mongodb:// for host:port lists"
        )
    name = u.database
    example = f"{u.scheme}://{','.join(_host_text(h, p) for h, p in u.hosts)}/documents"
    if name is None:
        raise InvalidURIError(
            f"{u} names no database: put the database name in the path, e.g. {example} "
            "(connection options such as ?authSource=admin go after it)"
        )
    rest = u.path.lstrip("/")[len(name) :]
    if rest.strip("/"):
        raise InvalidURIError(
            f"{u}: the path must be just the database name, got {u.path!r}; e.g. {example}"
        )
    if _BAD_DB_CHARS.search(name) or len(name.encode("utf-8")) > _MAX_DB_BYTES:
        raise InvalidURIError(
            f"{u}: {name!r} is not a valid MongoDB database name (at most {_MAX_DB_BYTES} bytes, "
            'none of / \\ . space " $ * < > : | ?)'
        )
    return u


def _host_text(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive int (milliseconds), got {value!r}")
    return value


@attrs.define(kw_only=True, eq=False)
class MongoConnection:
    """The URI, options and (lazily) the ``MongoClient`` of one store.

    Attributes:
        uri: The validated URI (password redacted when shown).
        server_selection_timeout_ms: How long to look for a server before BackendUnavailable;
            a ``serverSelectionTimeoutMS`` in the URI wins over the default but not over an
            explicit value.
        client_options: Extra keyword arguments for ``pymongo.MongoClient``.
    """

    uri: RedactedURI
    server_selection_timeout_ms: int | None = None
    client_options: Mapping[str, Any] = attrs.field(factory=dict)
    _client: MongoClient[Document] | None = attrs.field(default=None, alias="client")
    _owns_client: bool = attrs.field(default=True, init=False)
    _closed: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        if self._client is not None:
            self._owns_client = False
        if self.server_selection_timeout_ms is not None:
            _positive_int("server_selection_timeout_ms", self.server_selection_timeout_ms)

    @classmethod
    def from_options(
        cls, uri: str | RedactedURI, options: Mapping[str, Any], *, store: str
    ) -> tuple[MongoConnection, dict[str, Any]]:
        """Build a connection from ``from_uri`` options; return it and the options left over.

        Recognised: ``server_selection_timeout_ms`` (int), ``client`` (an existing
        ``MongoClient`` to share; the store will not close it) and ``client_options`` (a dict of
        ``MongoClient`` keyword arguments).
        """
        parsed = parse_mongo_uri(uri)
        rest = dict(options)
        timeout = rest.pop("server_selection_timeout_ms", None)
        client = rest.pop("client", None)
        client_options = rest.pop("client_options", None) or {}
        if not isinstance(client_options, Mapping):
            raise ConfigError(f"{store}: client_options must be a dict of MongoClient arguments")
        if client is not None:
            from pymongo import MongoClient

            if not isinstance(client, MongoClient):
                raise ConfigError(f"{store}: client must be a pymongo.MongoClient")
        return (
            cls(
                uri=parsed,
                server_selection_timeout_ms=timeout,
                client_options=dict(client_options),
                client=client,
            ),
            rest,
        )

    @property
    def database_name(self) -> str:
        """The database named in the URI's path."""
        name = self.uri.database
        assert name is not None  # checked by parse_mongo_uri
        return name

    @property
    def effective_timeout_ms(self) -> int:
        """The server-selection timeout the client uses, in milliseconds."""
        if self.server_selection_timeout_ms is not None:
            return self.server_selection_timeout_ms
        for key, value in self.uri.query:
            if key.lower() == "serverselectiontimeoutms" and value.isdigit():
                return int(value)
        return DEFAULT_SERVER_SELECTION_TIMEOUT_MS

    def _check_open(self) -> None:
        if self._closed:
            raise BackendUnavailable(
                f"{self.uri} is closed; create a new store with from_uri({str(self.uri)!r})"
            )

    def client(self) -> MongoClient[Document]:
        """The ``MongoClient``, created on first use (this is where pymongo is imported)."""
        self._check_open()
        if self._client is None:
            from pymongo import MongoClient
            from pymongo.errors import ConfigurationError, PyMongoError

            kwargs: dict[str, Any] = {
                "tz_aware": True,
                "tzinfo": UTC,
                "appname": "pinnacledb",
            }
            if self.server_selection_timeout_ms is not None or not any(
                k.lower() == "serverselectiontimeoutms" for k, _ in self.uri.query
            ):
                kwargs["serverSelectionTimeoutMS"] = self.effective_timeout_ms
            kwargs.update(self.client_options)
            try:
                # mongodb+srv:// resolves DNS here; everything else connects in the background.
                self._client = MongoClient(translate_uri(self.uri, "pymongo"), **kwargs)
            except ConfigurationError as exc:
                text = redact(str(exc))
                if self.uri.scheme == "mongodb+srv" and "DNS" in text:
                    raise BackendUnavailable(
                        f"cannot resolve the SRV records of {self.uri}: {text}; "
                        "check the host name and your DNS"
                    ) from exc
                raise ConfigError(f"invalid MongoDB client options for {self.uri}: {text}") from exc
            except (PyMongoError, TypeError, ValueError) as exc:
                raise ConfigError(
                    f"cannot build a MongoDB client for {self.uri}: {redact(str(exc))}"
                ) from exc
        return self._client

    def database(self) -> Database[Document]:
        """The database named in the URI."""
        return self.client()[self.database_name]

    @contextlib.contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Translate driver errors raised inside the block into pinnacledb errors.

        Unreachable servers become BackendUnavailable, rejected credentials too (with a hint),
        other driver errors a PinnacleError naming the store and ``action``; the driver error
        is chained.
        """
        try:
            yield
        except PinnacleError:
            raise
        except Exception as exc:
            raise self.translate(exc, action) from exc

    def translate(self, exc: Exception, action: str) -> Exception:
        """The pinnacledb error for a driver exception (returns ``exc`` if it is not pymongo's)."""
        from pymongo import errors as pe

        if not isinstance(exc, pe.PyMongoError):
            return exc
        text = redact(str(exc))
        if len(text) > 600:
            text = text[:600] + "..."
        if isinstance(exc, pe.ConnectionFailure):
            return BackendUnavailable(
                f"MongoDB at {self.uri} is unreachable ({action}): {text}. Check that the server "
                "runs and that host, port, replicaSet and tls options are right; the client "
                f"gave up after {self.effective_timeout_ms} ms (option "
                "server_selection_timeout_ms)."
            )
        if isinstance(exc, pe.OperationFailure) and exc.code in _AUTH_CODES:
            return BackendUnavailable(
                f"MongoDB at {self.uri} refused the credentials or the operation ({action}): "
                f"{text}. Check the user name, password and authSource of the URI and the "
                "user's roles."
            )
        if isinstance(exc, pe.ConfigurationError):
            return ConfigError(f"MongoDB client configuration for {self.uri}: {text}")
        return PinnacleError(f"MongoDB at {self.uri}: {action} failed: {text}")

    def ping(self) -> None:
        """Round-trip to the server (BackendUnavailable if it cannot be reached in time)."""
        with self.errors("ping"):
            self.database().command("ping")

    def close(self) -> None:
        """Close the client if this connection created it; later use raises BackendUnavailable."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            client.close()
