"""The caption server: many live streams on one model, batched; HTTP on the same port.

    websocket  any path          the protocol of ``streamer.serve.protocol``, one stream per connection
    GET /                        the browser client (client/, installed as package data)
    GET /healthz                 200 while the process serves
    GET /readyz                  200 once the model is loaded and warmed, else 503
    GET /metrics                 Prometheus metrics (on an address of their own with metrics_port)

Streams share one ``Batcher`` over one ``Backend`` (model calls and post-model work off the event
loop). A stream never waits for another: its events go to its own bounded queue, a client that does
not read is dropped, a stream the server cannot keep up with has new audio skipped (the batcher's
overload policy: an error event of code ``behind``, captions go on), and a stream
whose recognition fails gets an error event, its finals so far, ``end`` and close code 1011 while
the others go on. Limits (streams, frame size, idle time), an optional token (config message or
``?token=``, compared in constant time, never logged) and allowed origins (default: the server's own
page and clients that send no Origin, such as scripts). Every stream or viewer the server refuses or
ends for cause is counted by reason (``streamer_refused_streams``, ``streamer_dropped_viewers``).
SIGTERM ends every stream as its client's eof would (last finals, ``end``) within ``SHUTDOWN_S``, then
the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from dataclasses import dataclass, field

from websockets.asyncio.server import serve

from ..core.stream import Recognizer, StreamSettings
from ..driver.batcher import Batcher, BatchSettings
from ..errors import StreamerError
from ..sources.live import IngestSettings, LiveSource
from ..text.incremental import make_decoder
from .broadcast import Broadcast, run_ingest, serve_viewer
from .connections import StreamConnections
from .http import Routes, check_origins, metrics_listener
from .session import SHUTDOWN_S
from .telemetry import Metrics

log = logging.getLogger("streamer.server")
VIEWER_PATH = "/live"  # the broadcast's websocket
CLOSE_TIMEOUT_S = 5.0  # how long a closing handshake may take before the connection is dropped


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    max_streams: int = 16
    max_frame_bytes: int = 256 * 1024  # 1.3 s of 48 kHz float32: a browser sends 100 ms frames
    idle_timeout_s: float = 30.0  # no message for this long ends the stream (its finals are sent first)
    send_queue: int = 512  # events waiting for a client that does not read before it is dropped
    ping_interval_s: float = 20.0  # a client that answers no ping for as long again is dropped (it does not read)
    token: str | None = field(default=None, repr=False)
    allowed_origins: tuple[str, ...] = ()  # besides the server's own; "*" allows any
    public_metrics: bool = False  # /metrics without the token
    metrics_port: int | None = None  # /metrics (no token), /healthz, /readyz on a port of their own, not on port
    metrics_host: str | None = None  # the metrics port's address; None: METRICS_HOST
    batch: BatchSettings = BatchSettings(max_lag_s=10.0)  # a stream whose captions trail its audio more than
    # max_lag_s has new audio skipped (streamer.driver.overload)
    ingest: str | None = None  # broadcast mode: transcribe this input once for every viewer at /live
    ingest_settings: IngestSettings = IngestSettings(live=None)
    video_url: str | None = None  # the viewer page shows this video beside the captions
    viewer_queue: int = 256  # events waiting for a viewer before it is dropped
    max_viewers: int = 1000  # viewers of the broadcast at once; more are refused (busy)
    history: int = 20  # finals a viewer who joins late gets first

    def __post_init__(self) -> None:
        if self.max_streams < 1 or self.max_frame_bytes < 64 or self.idle_timeout_s <= 0 or self.max_viewers < 1:
            raise StreamerError("max_streams and max_viewers must be ≥ 1, max_frame_bytes ≥ 64 and idle_timeout_s > 0")
        if self.metrics_host is not None and self.metrics_port is None:
            raise StreamerError("--metrics-host is the address of the metrics port: give --metrics-port too")
        if self.metrics_port is not None and self.public_metrics:
            raise StreamerError("--public-metrics is for /metrics on the main port; with --metrics-port they are "
                                "served only there, without the token: leave out one of them")
        check_origins(self.allowed_origins)


class CaptionServer:
    """The server's life cycle: listen, load and warm the model, serve stream connections
    (``streamer.serve.connections``) and broadcast viewers (``streamer.serve.broadcast``), stop at SIGTERM."""

    def __init__(self, load_backend, settings: ServerSettings = ServerSettings(),
                 stream_defaults: StreamSettings = StreamSettings()):
        """load_backend: a function that returns the Backend (called on a worker thread at start)."""
        self.load_backend, self.settings, self.stream_defaults = load_backend, settings, stream_defaults
        self.metrics = Metrics()
        self.backend = None
        self.decoder = None  # a beam decoder shared by every stream, when the defaults ask for one
        self.batcher: Batcher | None = None
        self.stopping = asyncio.Event()
        self.port: int | None = None
        self.metrics_port: int | None = None  # where the metrics listen, when they have a port of their own
        self.ready = asyncio.Event()
        self.streams = StreamConnections(self, settings, stream_defaults, self.metrics, self.ready, self.stopping)
        self.broadcast = None if settings.ingest is None else Broadcast(
            settings.viewer_queue, settings.history, self.metrics.dropped_viewers.labels("not_reading").inc)
        self._ingest_stop = threading.Event()
        self._ingest: asyncio.Task | None = None
        self.fatal: str | None = None  # why the server stopped by itself (the broadcast's input failed at once)
        self.routes = Routes(settings.token, settings.allowed_origins, self.metrics, self.ready, self.stopping,
                             settings.public_metrics, metrics_here=settings.metrics_port is None)

    @property
    def sessions(self) -> set:
        return self.streams.sessions

    async def serve(self, started=None) -> None:
        """Listen, load and warm the model, serve until SIGTERM/SIGINT, then end every stream and return."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        async with serve(self._handle, self.settings.host, self.settings.port,
                         process_request=lambda _, request: self.routes(request),
                         max_size=self.settings.max_frame_bytes, max_queue=64,
                         ping_interval=self.settings.ping_interval_s, ping_timeout=self.settings.ping_interval_s,
                         close_timeout=CLOSE_TIMEOUT_S, server_header="streamer") as server, \
                metrics_listener(self.settings, self.metrics, self.ready, self.stopping, self._metrics_at):
            self.port = server.sockets[0].getsockname()[1]
            log.info("listening on http://%s:%d/", self.settings.host, self.port)
            if started is not None:
                started(self)
            consumer = asyncio.create_task(self._load_and_run())
            stopping = asyncio.create_task(self.stopping.wait())
            await asyncio.wait({consumer, stopping}, return_when=asyncio.FIRST_COMPLETED)
            self.stopping.set()
            self._ingest_stop.set()
            log.info("stopping: ending %d streams", len(self.sessions))
            server.close(close_connections=False)  # no new connections; the streams end as at eof
            await self._wind_down()
            consumer.cancel()
        await self._close(consumer)

    def _metrics_at(self, port: int) -> None:
        self.metrics_port = port

    async def _close(self, consumer: asyncio.Task) -> None:
        if self.batcher is not None:
            await self.batcher.close(timeout_s=0.5)
        if self.backend is not None:
            self.backend.close()
        if consumer.done() and not consumer.cancelled() and consumer.exception() is not None:
            raise consumer.exception()  # the model could not be loaded
        if self.fatal is not None:
            raise StreamerError(self.fatal)

    async def _run_ingest(self, source, stream) -> None:
        """The broadcast's input; one that fails before it ever gave audio stops the server with its reason."""
        failure = await run_ingest(source, stream, self.batcher, self.broadcast, log.info)
        if failure is not None:
            self.fatal = f"the input cannot be read: {failure}"
            self.stopping.set()

    async def _wind_down(self) -> None:
        """Every stream ends as at eof; what has not ended after SHUTDOWN_S is cut."""
        deadline = time.monotonic() + SHUTDOWN_S
        if self._ingest is not None:
            await asyncio.wait({self._ingest}, timeout=SHUTDOWN_S)
        while self.sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.sessions:
            log.warning("%d streams did not end within %.1f s: closing them", len(self.sessions), SHUTDOWN_S)
            self.metrics.refused.labels("shutdown").inc(len(self.sessions))
        await self.streams.cancel(timeout_s=1.0)

    async def _load_and_run(self) -> None:
        self.backend = await asyncio.to_thread(self.load_backend)
        info = self.backend.info
        self.decoder = await asyncio.to_thread(make_decoder, info, self.stream_defaults.decoder)
        self.batcher = Batcher(self.backend, self.settings.batch, self.metrics.batch_done, log.warning)
        await self.batcher.warm_up()
        if self.broadcast is not None:
            source = await asyncio.to_thread(LiveSource, self.settings.ingest, self.settings.ingest_settings,
                                             log.info, self._ingest_stop)
            stream = Recognizer(info, self.stream_defaults, self.decoder).stream()
            self._ingest = asyncio.create_task(self._run_ingest(source, stream))
        self.ready.set()
        log.info("model ready: %s (%s)", info.manifest.get("source"), info.manifest.get("precision"))
        await self.batcher.run()

    async def _handle(self, ws) -> None:
        if ws.request.path.partition("?")[0] == VIEWER_PATH:
            await serve_viewer(ws, self.broadcast, self.settings, self.metrics, self.stopping)
        else:
            await self.streams.handle(ws)
