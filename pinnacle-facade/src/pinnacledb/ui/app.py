"""The Starlette app of ``pinnacle ui``: pages, the JSON API and the guards in front of them.

Guards, outermost first (every request, every route, static files included):

1. read-only: any method but GET and HEAD is answered 405 before anything else runs;
2. host: on a loopback bind, a request whose ``Host`` is not a loopback name is refused (400),
   so a web page on another site cannot read the API through DNS rebinding;
3. token (remote mode): every request carries the token, as ``Authorization: Bearer TOKEN``
   or the cookie set when the page is opened once with ``?token=TOKEN`` (then redirected
   without it); compared in constant time. Without it: 401.

Every response carries a strict Content-Security-Policy (scripts and styles from this server
only, no inline script) and ``no-store``. All Datalayer calls run on one worker thread, in
turn: stores are built and used on that thread (some drivers' connections are thread-bound),
and the event loop stays free.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pinnacle_protocols.errors import BackendUnavailable, NotFoundError
from pinnacledb.ui.data import (
    MAX_ROWS,
    BadParameter,
    Deployment,
    int_param,
    page_params,
    version_param,
)
from pinnacledb.ui.layout import NODE_HEIGHT, NODE_WIDTH

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from pinnacledb.base.datalayer import Datalayer

__all__ = ["TOKEN_COOKIE", "create_app", "is_loopback"]

log = logging.getLogger(__name__)
T = TypeVar("T")

TOKEN_COOKIE: Final = "pinnacle_ui_token"  # noqa: S105 - a cookie name, not a secret
_HERE = Path(__file__).parent
_READ_METHODS = frozenset({"GET", "HEAD"})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
_SECURITY_HEADERS: Final = (
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is loopback."""
    name = host.strip().lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_of(header: str) -> str:
    """The host part of a ``Host`` header (without the port)."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """ASGI middleware: read-only methods, loopback Host (local mode), token (remote mode)."""

    def __init__(self, app: ASGIApp, *, token: str | None, check_host: bool) -> None:
        """Guard ``app``; ``token`` None means no token is asked (loopback only)."""
        self.app = app
        self.token = None if token is None else token.encode()
        self.check_host = check_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the request, or refuse it."""
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, send)
            return  # websockets: nothing here speaks them
        send = _with_headers(send)
        if scope["method"] not in _READ_METHODS:
            response: Response = PlainTextResponse(
                "pinnacle ui is read-only: only GET and HEAD are answered\n",
                status_code=405,
                headers={"Allow": "GET, HEAD"},
            )
            await response(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.check_host and not is_loopback(_host_of(headers.get("host", ""))):
            response = PlainTextResponse(
                "this server answers loopback host names only (localhost, 127.0.0.1, [::1])\n",
                status_code=400,
            )
            await response(scope, receive, send)
            return
        if self.token is not None:
            refused = self._check_token(scope, headers)
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _matches(self, supplied: str | None) -> bool:
        assert self.token is not None
        if not supplied:
            return False
        return hmac.compare_digest(supplied.encode("utf-8", "surrogateescape"), self.token)

    def _check_token(self, scope: Scope, headers: Mapping[str, str]) -> Response | None:
        query = scope.get("query_string", b"").decode("latin-1")
        pairs = parse_qsl(query, keep_blank_values=True)
        given = [v for k, v in pairs if k == "token"]
        if given:
            if len(given) == 1 and self._matches(given[0]):
                # trade the token in the URL (history, logs) for an HttpOnly cookie
                rest = urlencode([(k, v) for k, v in pairs if k != "token"])
                location = scope.get("path", "/") + (f"?{rest}" if rest else "")
                redirect = RedirectResponse(location, status_code=303)
                redirect.set_cookie(
                    TOKEN_COOKIE,
                    given[0],
                    httponly=True,
                    samesite="strict",
                    secure=scope.get("scheme") == "https",
                )
                return redirect
            return _unauthorized()
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and self._matches(auth[7:].strip()):
            return None
        cookie = _cookie(headers.get("cookie", ""), TOKEN_COOKIE)
        if self._matches(cookie):
            return None
        return _unauthorized()


def _unauthorized() -> Response:
    return PlainTextResponse(
        "a token is required: send 'Authorization: Bearer TOKEN', or open the page once with "
        "?token=TOKEN\n",
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="pinnacle ui"'},
    )


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            names = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in _SECURITY_HEADERS if k not in names]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


# ---------------------------------------------------------------------- the app
def _status_of(exc: BaseException) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, (BadParameter, ValueError)):
        return 400
    if isinstance(exc, BackendUnavailable):
        return 503
    return 500


def create_app(
    db: Datalayer,
    *,
    token: str | None = None,
    check_host: bool = True,
    poll_seconds: float = 2.0,
) -> Starlette:
    """The app showing ``db`` (read-only).

    Args:
        db: The deployment to show; the caller closes it.
        token: When set, every request must carry it (remote mode).
        check_host: Refuse requests whose ``Host`` is not a loopback name (local mode).
        poll_seconds: How often the jobs table asks for fresh progress.
    """
    from pinnacledb import __version__
    from pinnacledb.ui.openapi import openapi_document

    view = Deployment(db)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pinnacle-ui")
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    templates.env.globals.update(
        NODE_WIDTH=NODE_WIDTH,
        NODE_HEIGHT=NODE_HEIGHT,
        version=__version__,
        poll_ms=int(poll_seconds * 1000),
    )
    templates.env.filters["qs"] = lambda params: urlencode(
        {k: v for k, v in params.items() if v is not None}
    )
    templates.env.filters["nbytes"] = _human_bytes
    templates.env.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False)
    openapi = openapi_document(__version__)

    async def run(fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    def api(
        produce: Callable[[Request], Callable[[], Any]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                body = await run(produce(request))
            except Exception as exc:
                status = _status_of(exc)
                if status == 500:
                    log.exception("pinnacle ui: %s failed", request.url.path)
                return JSONResponse({"error": view.message(exc), "status": status}, status)
            return JSONResponse(body)

        return endpoint

    def page(
        template: str, produce: Callable[[Request], Callable[[], dict[str, Any]]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                context = await run(produce(request))
            except Exception as exc:
                status = _status_of(exc)
                if status == 500:
                    log.exception("pinnacle ui: %s failed", request.url.path)
                return templates.TemplateResponse(
                    request, "error.html", {"error": view.message(exc), "status": status}, status
                )
            return templates.TemplateResponse(request, template, context)

        return endpoint

    read = _Readers(view)

    def wrap(
        name: str, fn: Callable[[Request], Callable[[], Any]]
    ) -> Callable[[Request], Callable[[], dict[str, Any]]]:
        def produce(r: Request) -> Callable[[], dict[str, Any]]:
            inner = fn(r)
            return lambda: {name: inner(), "query": dict(r.query_params)}

        return produce

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi)

    routes = [
        Route("/", page("overview.html", wrap("o", read.overview))),
        Route("/components", page("components.html", wrap("p", read.components))),
        Route("/component", page("component.html", read.component_page)),
        Route("/lineage", page("lineage.html", wrap("graph", read.lineage))),
        Route("/jobs", page("jobs.html", wrap("p", read.jobs))),
        Route("/job", page("job.html", wrap("j", read.job))),
        Route("/tables", page("tables.html", wrap("p", read.tables))),
        Route("/table", page("table.html", wrap("t", read.table))),
        Route("/api/openapi.json", openapi_json),
        *(
            Route(f"/api/{name}", api(getattr(read, name)))
            for name in ("overview", "components", "component", "lineage", "jobs", "job")
        ),
        Route("/api/tables", api(read.tables)),
        Route("/api/table", api(read.table)),
        Mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static"),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            executor.shutdown(wait=True)

    async def not_found(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "no such endpoint", "status": 404}, 404)
        return HTMLResponse("<!doctype html><title>404</title><p>not found</p>", 404)

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found})
    app.add_middleware(Guard, token=token, check_host=check_host)
    app.state.executor = executor
    return app


class _Readers:
    """One method per endpoint: parse the request's parameters (a BadParameter is a 400), then
    return the read to run on the worker thread."""

    def __init__(self, view: Deployment) -> None:
        self.view = view

    def overview(self, r: Request) -> Callable[[], Any]:
        return self.view.overview

    def components(self, r: Request) -> Callable[[], Any]:
        offset, limit = page_params(_opt(r, "offset"), _opt(r, "limit"))
        type_id = _opt(r, "type")
        return lambda: self.view.components(type_id, offset, limit)

    def component(self, r: Request) -> Callable[[], Any]:
        type_id, ident = _req(r, "type"), _req(r, "id")
        version = version_param(_opt(r, "version"))
        return lambda: self.view.component(type_id, ident, version)

    def component_page(self, r: Request) -> Callable[[], dict[str, Any]]:
        """The component and its neighbourhood graph (one hop)."""
        type_id, ident = _req(r, "type"), _req(r, "id")
        version = version_param(_opt(r, "version"))

        def both() -> dict[str, Any]:
            c = self.view.component(type_id, ident, version)
            return {"c": c, "g": self.view.lineage(type_id, ident, c["version"], 1)}

        return both

    def lineage(self, r: Request) -> Callable[[], Any]:
        type_id, ident = _opt(r, "type"), _opt(r, "id")
        version = version_param(_opt(r, "version"))
        depth = int_param(_opt(r, "depth"), "depth", 2, 0, 5)
        if (type_id is None) != (ident is None):
            raise BadParameter("lineage around a component needs both type and id")
        return lambda: self.view.lineage(type_id, ident, version, depth)

    def jobs(self, r: Request) -> Callable[[], Any]:
        offset, limit = page_params(_opt(r, "offset"), _opt(r, "limit"))
        status, component = _opt(r, "status"), _opt(r, "component")
        type_id, version = _opt(r, "type"), version_param(_opt(r, "version"))
        return lambda: self.view.jobs(
            status=status,
            component=component,
            offset=offset,
            limit=limit,
            type_id=type_id,
            version=version,
        )

    def job(self, r: Request) -> Callable[[], Any]:
        job_id = _req(r, "id")
        return lambda: self.view.job(job_id)

    def tables(self, r: Request) -> Callable[[], Any]:
        offset, limit = page_params(_opt(r, "offset"), _opt(r, "limit"))
        return lambda: self.view.tables(offset, limit)

    def table(self, r: Request) -> Callable[[], Any]:
        name = _req(r, "name")
        rows = int_param(_opt(r, "rows"), "rows", 20, 0, MAX_ROWS)
        return lambda: self.view.table(name, rows)


def _opt(request: Request, name: str) -> str | None:
    """One query parameter (None if absent or empty); given twice is a BadParameter."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise BadParameter(f"give {name} once, got it {len(values)} times")
    return values[0] if values and values[0] != "" else None


def _req(request: Request, name: str) -> str:
    """A required query parameter."""
    value = _opt(request, name)
    if value is None:
        raise BadParameter(f"the query parameter {name!r} is required")
    return value


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover
