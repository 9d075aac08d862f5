"""HTTP on the caption server's port: the browser pages, health, readiness, metrics, and the checks a
websocket upgrade passes first (origin, a token given as ?token=, compared in constant time)."""

from __future__ import annotations

import asyncio
import hmac
import urllib.parse
from http import HTTPStatus
from importlib.resources import files

from .telemetry import Metrics

STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/worklet.js": ("worklet.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8"),
          "/viewer": ("viewer.html", "text/html; charset=utf-8"),
          "/viewer.js": ("viewer.js", "text/javascript; charset=utf-8")}


def token_ok(given: str | None, expected: str | None) -> bool:
    if expected is None:
        return True
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def bearer(headers, query: str) -> str | None:
    """The token of an ``Authorization: Bearer`` header, else of ``?token=``."""
    scheme, _, value = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return urllib.parse.parse_qs(query).get("token", [None])[0]


def origin_allowed(headers, allowed: tuple[str, ...]) -> bool:
    """No Origin (a script), an allowed one, or the server's own page."""
    origin = headers.get("Origin")
    if origin is None or "*" in allowed or origin in allowed:
        return True
    return urllib.parse.urlsplit(origin).netloc == headers.get("Host")


def respond(status: HTTPStatus, body: bytes, content_type: str = "text/plain; charset=utf-8"):
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-store")])
    return Response(status.value, status.phrase, headers, body)


class Routes:
    """What the server answers to a plain HTTP request, and whether a websocket upgrade may go on (None)."""

    def __init__(self, token: str | None, allowed_origins: tuple[str, ...], metrics: Metrics,
                 ready: asyncio.Event, stopping: asyncio.Event, public_metrics: bool = False):
        """public_metrics: /metrics without the token (a scraper on a private network)."""
        self.token, self.allowed_origins, self.metrics = token, allowed_origins, metrics
        self.ready, self.stopping, self.public_metrics = ready, stopping, public_metrics

    def __call__(self, request):
        path, _, query = request.path.partition("?")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return self._upgrade(request.headers, query)
        if path == "/healthz":
            return respond(HTTPStatus.OK, b"ok\n")
        if path == "/readyz":
            ok = self.ready.is_set() and not self.stopping.is_set()
            return respond(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE,
                           b"ready\n" if ok else b"loading the model\n" if not self.ready.is_set() else b"stopping\n")
        if path == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST

            if not self.public_metrics and not token_ok(bearer(request.headers, query), self.token):
                return respond(HTTPStatus.UNAUTHORIZED, b"metrics need the token: Authorization: Bearer TOKEN\n")
            return respond(HTTPStatus.OK, self.metrics.text(), CONTENT_TYPE_LATEST)
        if path in STATIC:
            name, content_type = STATIC[path]
            return respond(HTTPStatus.OK, (files("streamer.client") / name).read_bytes(), content_type)
        return respond(HTTPStatus.NOT_FOUND, b"not found\n")

    def _upgrade(self, headers, query: str):
        if not origin_allowed(headers, self.allowed_origins):
            self.metrics.refused.labels("origin").inc()
            return respond(HTTPStatus.FORBIDDEN, b"origin not allowed\n")
        token = urllib.parse.parse_qs(query).get("token", [None])[0]
        if token is not None and not token_ok(token, self.token):
            self.metrics.refused.labels("token").inc()
            return respond(HTTPStatus.UNAUTHORIZED, b"wrong token\n")
        return None
