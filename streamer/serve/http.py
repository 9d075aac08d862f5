"""HTTP on the caption server's port: the browser pages, health, readiness, metrics, and the checks a
websocket upgrade passes first (origin, a token given as ?token=, compared in constant time); and the routes of
the metrics port, when metrics have an address of their own."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import urllib.parse
from contextlib import asynccontextmanager
from http import HTTPStatus
from importlib.resources import files

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from prometheus_client import CONTENT_TYPE_LATEST

from ..errors import StreamerError
from .telemetry import Metrics

log = logging.getLogger("streamer.server")
METRICS_HOST = "127.0.0.1"  # the metrics port's address unless given: this machine only
CLOSE_POLICY = 1008

STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/worklet.js": ("worklet.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8"),
          "/viewer": ("viewer.html", "text/html; charset=utf-8"),
          "/viewer.js": ("viewer.js", "text/javascript; charset=utf-8")}
ORIGIN = re.compile(r"([a-z][a-z0-9+.-]*)://([^/?#@\\\s]+)", re.ASCII | re.IGNORECASE)  # scheme://host[:port], no path
METRICS_PATHS = ("/metrics", "/healthz", "/readyz")  # all the metrics port serves


class RepeatedHeader(Exception):
    """A request carried more than one of a header that must come once (Origin, Host, Authorization)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def single(headers, name: str) -> str | None:
    """The header's value, None when it is absent; RepeatedHeader when it comes more than once."""
    values = headers.get_all(name)
    if len(values) > 1:
        raise RepeatedHeader(name)
    return values[0] if values else None


def check_origins(allowed: tuple[str, ...]) -> None:
    """--allow-origin values are origins as browsers send them, or *."""
    for origin in allowed:
        if origin != "*" and not ORIGIN.fullmatch(origin):
            raise StreamerError(f"--allow-origin {origin!r} is not an origin: give scheme://host[:port] as a browser "
                                "sends it, without a path (https://example.org, http://localhost:3000), or *")


def query_token(query: str) -> str | None:
    """The token of a query string (``token=…``): the one place ``?token=`` is read."""
    return urllib.parse.parse_qs(query).get("token", [None])[0]


def token_ok(given: str | None, expected: str | None) -> bool:
    """The one token check (constant time; any token passes a server without one)."""
    if expected is None:
        return True
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def bearer(headers, query: str) -> str | None:
    """The token of an ``Authorization: Bearer`` header, else of ``?token=``."""
    scheme, _, value = (single(headers, "Authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return query_token(query)


def origin_allowed(headers, allowed: tuple[str, ...]) -> bool:
    """No Origin (a script: it could send any), an allowed one, or the server's own page: http(s)://HOST exactly
    as the Host header says, no path, no user, no other port (scheme and host in any case, as in URLs)."""
    origin = single(headers, "Origin")
    if origin is None or "*" in allowed:
        return True
    if origin.lower() in (a.lower() for a in allowed):
        return True
    own = ORIGIN.fullmatch(origin)
    host = single(headers, "Host")
    return (own is not None and own.group(1).lower() in ("http", "https") and bool(host)
            and own.group(2).lower() == host.lower())


def is_upgrade(headers) -> bool:
    return any("websocket" in value.lower() for value in headers.get_all("Upgrade"))


def health(path: str, ready: asyncio.Event, stopping: asyncio.Event):
    """/healthz and /readyz; None for another path."""
    if path == "/healthz":
        return respond(HTTPStatus.OK, b"ok\n")
    if path == "/readyz":
        ok = ready.is_set() and not stopping.is_set()
        return respond(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE,
                       b"ready\n" if ok else b"loading the model\n" if not ready.is_set() else b"stopping\n")
    return None


def metrics_page(metrics: Metrics):
    return respond(HTTPStatus.OK, metrics.text(), CONTENT_TYPE_LATEST)


def respond(status: HTTPStatus, body: bytes, content_type: str = "text/plain; charset=utf-8"):
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-store")])
    return Response(status.value, status.phrase, headers, body)


class Routes:
    """What the server answers to a plain HTTP request, and whether a websocket upgrade may go on (None)."""

    def __init__(self, token: str | None, allowed_origins: tuple[str, ...], metrics: Metrics,
                 ready: asyncio.Event, stopping: asyncio.Event, public_metrics: bool = False,
                 metrics_here: bool = True):
        """public_metrics: /metrics without the token (a scraper on a private network); metrics_here False: the
        metrics have an address of their own (``MetricsRoutes``), and this port does not serve them."""
        self.token, self.allowed_origins, self.metrics = token, allowed_origins, metrics
        self.ready, self.stopping = ready, stopping
        self.public_metrics, self.metrics_here = public_metrics, metrics_here

    def __call__(self, request):
        path, _, query = request.path.partition("?")
        try:
            if is_upgrade(request.headers):
                return self._upgrade(request.headers, query)
            return self._page(path, query, request.headers)
        except RepeatedHeader as repeated:
            return respond(HTTPStatus.BAD_REQUEST, f"one {repeated.name} header at most\n".encode())

    def _page(self, path: str, query: str, headers):
        if (answer := health(path, self.ready, self.stopping)) is not None:
            return answer
        if path == "/metrics" and self.metrics_here:
            if not self.public_metrics and not token_ok(bearer(headers, query), self.token):
                return respond(HTTPStatus.UNAUTHORIZED, b"metrics need the token: Authorization: Bearer TOKEN\n")
            return metrics_page(self.metrics)
        if path in STATIC:
            name, content_type = STATIC[path]
            return respond(HTTPStatus.OK, (files("streamer.client") / name).read_bytes(), content_type)
        return respond(HTTPStatus.NOT_FOUND, b"not found\n")

    def _upgrade(self, headers, query: str):
        try:
            allowed = origin_allowed(headers, self.allowed_origins)
        except RepeatedHeader as repeated:
            self.metrics.refused.labels("origin").inc()
            return respond(HTTPStatus.BAD_REQUEST, f"one {repeated.name} header at most\n".encode())
        if not allowed:
            self.metrics.refused.labels("origin").inc()
            return respond(HTTPStatus.FORBIDDEN, b"origin not allowed: a web page of another site needs "
                                                 b"--allow-origin on the server\n")
        token = query_token(query)
        if token is not None and not token_ok(token, self.token):
            self.metrics.refused.labels("unauthorized").inc()
            return respond(HTTPStatus.UNAUTHORIZED, b"wrong token\n")
        return None


class MetricsRoutes:
    """The metrics port: /metrics without the token (its address is the protection), /healthz and /readyz for
    probes; nothing else, no websockets."""

    def __init__(self, metrics: Metrics, ready: asyncio.Event, stopping: asyncio.Event):
        self.metrics, self.ready, self.stopping = metrics, ready, stopping

    def __call__(self, request):
        path = request.path.partition("?")[0]
        if is_upgrade(request.headers):
            return respond(HTTPStatus.NOT_FOUND, b"no websockets on the metrics port: streams and viewers connect to "
                                                 b"the main port\n")
        if path == "/metrics":
            return metrics_page(self.metrics)
        if (answer := health(path, self.ready, self.stopping)) is not None:
            return answer
        return respond(HTTPStatus.NOT_FOUND, f"the metrics port serves {', '.join(METRICS_PATHS)} only; the "
                                             "captions and pages are on the main port\n".encode())


@asynccontextmanager
async def metrics_listener(settings, metrics: Metrics, ready: asyncio.Event, stopping: asyncio.Event,
                           on_port=lambda port: None):
    """/metrics, /healthz and /readyz on the metrics port while the server runs, when it has one (settings:
    ServerSettings); on_port is told the port it listens on."""
    host, port = settings.metrics_host or METRICS_HOST, settings.metrics_port
    if port is None:
        yield
        return
    routes = MetricsRoutes(metrics, ready, stopping)
    try:
        listener = await serve(no_websocket, host, port, process_request=lambda _, request: routes(request),
                               server_header="streamer")
    except OSError as exc:
        raise StreamerError(f"cannot listen on {host}:{port} for metrics: {exc.strerror or exc}") from None
    async with listener:
        on_port(listener.sockets[0].getsockname()[1])
        log.info("metrics on http://%s:%d/metrics", host, listener.sockets[0].getsockname()[1])
        yield


async def no_websocket(ws) -> None:
    """The metrics port answers every request over HTTP: a websocket never opens there."""
    await ws.close(CLOSE_POLICY, "no websockets on the metrics port")

