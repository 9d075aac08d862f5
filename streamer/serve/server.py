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
import json
import logging
import signal
import threading
import time
import urllib.parse
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from ..driver.batcher import Batcher, BatchSettings
from .broadcast import Broadcast, run_ingest
from ..text.decoder import make_decoder
from ..errors import StreamerError
from ..sources.live import IngestSettings, LiveSource
from .protocol import ClientConfig, ProtocolError, decode_frame, parse_config, stream_settings
from ..core.stream import Recognizer, StreamSettings
from .http import MetricsRoutes, Routes, check_origins, token_ok
from .session import Session
from .telemetry import Metrics

log = logging.getLogger("streamer.server")
VIEWER_PATH = "/live"  # the broadcast's websocket
CLOSE_POLICY, CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN, CLOSE_INTERNAL = 1008, 1001, 1013, 1011
FAILED_BY_US = {1002: "protocol_error", 1003: "protocol_error", 1007: "protocol_error", 1009: "frame_too_big"}
SEND_TIMEOUT_S = 10.0  # after eof, how long the last events may take to reach a slow client
CLOSE_TIMEOUT_S = 5.0  # how long a closing handshake may take before the connection is dropped
METRICS_HOST = "127.0.0.1"  # the metrics port's address unless given: this machine only
SHUTDOWN_S = 3.5  # after SIGTERM, how long streams may take to send their last finals before they are cut


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
    def __init__(self, load_backend, settings: ServerSettings = ServerSettings(),
                 stream_defaults: StreamSettings = StreamSettings()):
        """load_backend: a function that returns the Backend (called on a worker thread at start)."""
        self.load_backend, self.settings, self.stream_defaults = load_backend, settings, stream_defaults
        self.metrics = Metrics()
        self.backend = None
        self.decoder = None  # a beam decoder shared by every stream, when the defaults ask for one
        self.batcher: Batcher | None = None
        self.sessions: set[Session] = set()
        self.stopping = asyncio.Event()
        self.port: int | None = None
        self.metrics_port: int | None = None  # where the metrics listen, when they have a port of their own
        self.ready = asyncio.Event()
        self.broadcast = None if settings.ingest is None else Broadcast(
            settings.viewer_queue, settings.history, self.metrics.dropped_viewers.labels("not_reading").inc)
        self._ingest_stop = threading.Event()
        self._ingest: asyncio.Task | None = None
        self._handlers: set[asyncio.Task] = set()
        self._slots = 0  # stream connections admitted or waiting for their config
        self.fatal: str | None = None  # why the server stopped by itself (the broadcast's input failed at once)
        self.routes = Routes(settings.token, settings.allowed_origins, self.metrics, self.ready, self.stopping,
                             settings.public_metrics, metrics_here=settings.metrics_port is None)

    # ---- life cycle
    async def serve(self, started=None) -> None:
        """Listen, load and warm the model, serve until SIGTERM/SIGINT, then end every stream and return."""
        from websockets.asyncio.server import serve

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        async with serve(self._handle, self.settings.host, self.settings.port, process_request=self._http,
                         max_size=self.settings.max_frame_bytes, max_queue=64,
                         ping_interval=self.settings.ping_interval_s, ping_timeout=self.settings.ping_interval_s,
                         close_timeout=CLOSE_TIMEOUT_S,
                         server_header="streamer") as server, self._metrics_listener():
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
        if self.batcher is not None:
            await self.batcher.close(timeout_s=0.5)
        if self.backend is not None:
            self.backend.close()
        if consumer.done() and not consumer.cancelled() and consumer.exception() is not None:
            raise consumer.exception()  # the model could not be loaded
        if self.fatal is not None:
            raise StreamerError(self.fatal)

    @asynccontextmanager
    async def _metrics_listener(self):
        """/metrics, /healthz and /readyz on the metrics port while the server runs, when it has one."""
        from websockets.asyncio.server import serve

        host, port = self.settings.metrics_host or METRICS_HOST, self.settings.metrics_port
        if port is None:
            yield
            return
        routes = MetricsRoutes(self.metrics, self.ready, self.stopping)
        try:
            listener = await serve(no_websocket, host, port, process_request=lambda _, request: routes(request),
                                   server_header="streamer")
        except OSError as exc:
            raise StreamerError(f"cannot listen on {host}:{port} for metrics: {exc.strerror or exc}") from None
        async with listener:
            self.metrics_port = listener.sockets[0].getsockname()[1]
            log.info("metrics on http://%s:%d/metrics", host, self.metrics_port)
            yield

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
        for handler in list(self._handlers):
            handler.cancel()
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=1.0)

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


    # ---- HTTP on the same port
    def _http(self, connection, request):
        return self.routes(request)

    def _token_ok(self, token: str | None) -> bool:
        return token_ok(token, self.settings.token)

    # ---- one connection
    async def _handle(self, ws) -> None:
        if ws.request.path.partition("?")[0] == VIEWER_PATH:
            await self._view(ws)
            return
        self._slots += 1  # taken before the config arrives, so clients that connect at once cannot overshoot
        try:
            await self._stream(ws)
        finally:
            self._slots -= 1

    async def _stream(self, ws) -> None:
        """One stream: its config, then audio until eof (or shutdown, idle time, a failure), then its end."""
        try:
            config = await self._config(ws)
            settings = stream_settings(self.stream_defaults, config.settings)
        except ProtocolError as error:
            self.metrics.refused.labels(error.code).inc()
            await self._refuse(ws, error)
            return
        except Exception as exc:  # the client left (or was failed) before its config: nothing to clean up
            self._count_failed(exc, self.metrics.refused)
            return
        recognizer = Recognizer(self.backend.info, settings, self.decoder)
        session = Session(ws, config, recognizer.stream(config.sample_rate), self.metrics, self.settings.send_queue)
        entry = self.batcher.add(session.stream, session.sink)
        self.sessions.add(session)
        self._handlers.add(asyncio.current_task())
        self.metrics.streams.inc()
        sender = asyncio.create_task(self._send(session))
        try:
            await ws.send(json.dumps({"type": "ready", "sample_rate": config.sample_rate, "format": config.format,
                                      "model": self.backend.info.manifest.get("source"),
                                      "partials": config.partials}))
            ended = await self._receive(session, entry)
            if ended:
                await self._finish(session, entry, sender)
        except Exception as exc:  # the client went away (or sent what the protocol cannot take): others go on
            log.debug("stream ended: %s", exc.__class__.__name__)
            self._count_failed(exc, self.metrics.refused)
        finally:
            self._handlers.discard(asyncio.current_task())
            self.batcher.remove(entry)
            self.sessions.discard(session)
            self.metrics.streams.dec()
            sender.cancel()

    async def _view(self, ws) -> None:
        """A viewer of the broadcast: ready, the recent captions, then every event as it comes, until end."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(ws.request.path).query)
        if self.broadcast is None:
            self.metrics.refused.labels("no_broadcast").inc()
            await self._refuse(ws, ProtocolError("no_broadcast", "this server has no broadcast: start it with --ingest"))
            return
        if not self._token_ok(query.get("token", [None])[0]):
            self.metrics.refused.labels("unauthorized").inc()
            await self._refuse(ws, ProtocolError("unauthorized", "a token is required: add ?token=… to the URL"))
            return
        if len(self.broadcast.viewers) >= self.settings.max_viewers:  # no await between this and join: no race
            self.metrics.refused.labels("busy").inc()
            await self._refuse(ws, ProtocolError("busy", f"the broadcast is full ({self.settings.max_viewers} "
                                                         "viewers); try again later"))
            return
        viewer = self.broadcast.join()
        self.metrics.viewers.inc()
        try:
            await ws.send(json.dumps({"type": "ready", "mode": "viewer", "video": self.settings.video_url}))
            while True:
                message = await viewer.queue.get()
                sent = asyncio.ensure_future(ws.send(json.dumps(message, ensure_ascii=False)))
                while not sent.done():  # a viewer that stops reading is dropped, not waited for
                    await asyncio.wait({sent}, timeout=0.5)
                    if viewer.dropped and not sent.done():
                        sent.cancel()
                        ws.transport.abort()
                        return
                sent.result()
                if message["type"] == "end":
                    await ws.close(CLOSE_GOING_AWAY if self.stopping.is_set() else 1000)
                    return
                if viewer.dropped and viewer.queue.empty():
                    await ws.close(CLOSE_POLICY, "viewer too slow: dropped from the broadcast")
                    return
        except Exception as exc:  # the viewer went away, or its connection failed
            if not viewer.dropped:
                self._count_failed(exc, self.metrics.dropped_viewers, lost=True)
            return
        finally:
            self.broadcast.leave(viewer)
            self.metrics.viewers.dec()

    async def _config(self, ws) -> ClientConfig:
        if not self.ready.is_set():
            raise ProtocolError("not_ready", "the model is still loading; try again in a moment")
        if self.stopping.is_set():
            raise ProtocolError("stopping", "the server is shutting down")
        if self._slots > self.settings.max_streams:
            raise ProtocolError("busy", f"the server is full ({self.settings.max_streams} streams); try again later")
        try:
            message = await asyncio.wait_for(ws.recv(), self.settings.idle_timeout_s)
        except asyncio.TimeoutError:
            raise ProtocolError("idle", f"no config within {self.settings.idle_timeout_s:g} s") from None
        config = parse_config(message)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(ws.request.path).query)
        token = config.token if config.token is not None else query.get("token", [None])[0]
        if not self._token_ok(token):
            raise ProtocolError("unauthorized", "a token is required and the one given is wrong"
                                if token else "a token is required: add \"token\" to the config")
        return config

    async def _refuse(self, ws, error: ProtocolError) -> None:
        code = CLOSE_TRY_AGAIN if error.code in ("busy", "not_ready", "stopping") else CLOSE_POLICY
        try:
            await ws.send(json.dumps(error.to_json()))
            await ws.close(code, error.message[:120])
        except Exception:
            pass

    async def _receive(self, session: Session, entry) -> bool:
        """Audio into the stream until eof, shutdown or idle time (True: finish the stream and say end);
        False when the client has to be dropped. A connection already closing (a ping went unanswered: the
        server failed it) ends when it is closed, under recv, not as idle or with finals nobody reads."""
        from websockets.protocol import State

        ws = session.ws
        while True:
            if session.failed:
                return True
            receive = asyncio.ensure_future(ws.recv())
            stop = asyncio.ensure_future(self._stop_or_fail(entry))
            done, _ = await asyncio.wait({receive, stop}, timeout=self.settings.idle_timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if receive not in done and ws.state is State.OPEN:
                receive.cancel()
                if not done:  # said after the stream's last finals, right before end
                    self.metrics.refused.labels("idle").inc()
                    session.farewell = ProtocolError("idle", f"no audio for {self.settings.idle_timeout_s:g} s: "
                                                             "ending the stream").to_json()
                return True
            message = await receive  # raises when the client is gone
            if session.overflowed:
                self.metrics.refused.labels("not_reading").inc()
                await ws.close(CLOSE_POLICY, "client does not read its captions")
                return False
            if isinstance(message, str):
                if self._control(session, message):
                    return True
                continue
            try:
                block = decode_frame(message, session.config.format)
            except ProtocolError as error:
                session.put(error.to_json())
                continue
            session.audio_arrived(len(block), session.config.sample_rate)
            try:
                await self.batcher.feed(entry, block)
            except StreamerError as error:
                session.put(ProtocolError("bad_audio", f"{error}; the frame was dropped").to_json())

    def _control(self, session: Session, message: str) -> bool:
        """A text message after the config: eof ends the stream (True); anything else is an error event."""
        try:
            data = json.loads(message)
        except (ValueError, RecursionError):
            session.put(ProtocolError("bad_message", "text messages after the config must be JSON, such as "
                                                     "{\"type\": \"eof\"}; audio goes in binary frames").to_json())
            return False
        if isinstance(data, dict) and data.get("type") == "eof":
            return True
        session.put(ProtocolError("bad_message", "the only text message after the config is {\"type\": \"eof\"}; "
                                                 "audio goes in binary frames").to_json())
        return False

    async def _stop_or_fail(self, entry) -> None:
        """Returns at shutdown, or when the stream's recognition failed."""
        stop = asyncio.ensure_future(self.stopping.wait())
        failed = asyncio.ensure_future(entry.ended.wait())
        try:
            await asyncio.wait({stop, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            failed.cancel()

    async def _finish(self, session: Session, entry, sender: asyncio.Task) -> None:
        """End of the client's audio: the last finals, then end, then a close (normal, going away at shutdown,
        internal error after a failure). Bounded: a stream that cannot finish in time is cut."""
        await self.batcher.end(entry)
        drain_s = SHUTDOWN_S if self.stopping.is_set() else (self.settings.batch.max_lag_s or 0) + SEND_TIMEOUT_S
        try:
            await asyncio.wait_for(entry.drained.wait(), drain_s)
        except asyncio.TimeoutError:
            log.warning("a stream's last finals did not come within %.1f s", drain_s)
        if session.farewell is not None:
            session.put(session.farewell)
        session.put({"type": "end"})
        sent = asyncio.ensure_future(session.outbox.join())
        await asyncio.wait({sent, sender}, timeout=SHUTDOWN_S if self.stopping.is_set() else SEND_TIMEOUT_S,
                           return_when=asyncio.FIRST_COMPLETED)
        sent.cancel()
        code = CLOSE_INTERNAL if session.failed else CLOSE_GOING_AWAY if self.stopping.is_set() else 1000
        if session.failed:
            self.metrics.refused.labels("recognition_failed").inc()
        await session.ws.close(code, "recognition failed" if session.failed else "")

    def _count_failed(self, exc: Exception, counter, lost: bool = False) -> None:
        """A connection that failed under a send or receive, counted by why (lost: a broken connection counts
        too, as for viewers, whose broadcast it ends; a stream's client that vanishes ended it itself)."""
        reason = failure_reason(exc)
        if reason is not None and (lost or reason != "connection_lost"):
            counter.labels(reason).inc()

    async def _send(self, session: Session) -> None:
        """The client's events in order; ends when the client is gone."""
        while True:
            message = await session.outbox.get()
            try:
                await session.ws.send(json.dumps(message, ensure_ascii=False))
            finally:
                session.outbox.task_done()


def failure_reason(exc: Exception) -> str | None:
    """Why a connection closed under a send or receive, as a metric reason: ping_timeout (no pong: the client
    does not read), frame_too_big, protocol_error (bad frames), connection_lost (no close frame either way); None
    when the client closed it, or the server did for a reason counted where it closed it."""
    from websockets.exceptions import ConnectionClosed

    if not isinstance(exc, ConnectionClosed) or (exc.rcvd is not None and (exc.sent is None or exc.rcvd_then_sent)):
        return None
    if exc.sent is None:
        return "connection_lost"
    if exc.sent.code == CLOSE_INTERNAL and "keepalive" in exc.sent.reason:
        return "ping_timeout"
    return FAILED_BY_US.get(exc.sent.code)


async def no_websocket(ws) -> None:
    """The metrics port answers every request over HTTP: a websocket never opens there."""
    await ws.close(CLOSE_POLICY, "no websockets on the metrics port")
