"""The caption server's stream connections: one stream per websocket, from its config to its end.

Each connection sends a config (``streamer.serve.protocol``), audio frames and eof, and gets partial
and final events back through its own bounded queue (``Session``). A connection is refused before its
stream starts when the model is not ready, the server is stopping or full, the config is bad or the
token wrong; once started, it ends at eof, idle time, shutdown (its last finals first) or when its
recognition fails (close code 1011), and the other streams go on.
"""

from __future__ import annotations

import asyncio
import json
import logging

from websockets.protocol import State

from ..core.stream import Recognizer, StreamSettings
from ..errors import StreamerError
from .http import query_token, token_ok
from .protocol import ClientConfig, ProtocolError, decode_frame, parse_config, stream_settings
from .session import (CLOSE_GOING_AWAY, CLOSE_INTERNAL, CLOSE_POLICY, SEND_TIMEOUT_S, SHUTDOWN_S, Session, count_failed,
                      refuse)
from .telemetry import Metrics

log = logging.getLogger("streamer.server")


class StreamConnections:
    """Every stream connection of one server: the sessions open now and the tasks that serve them."""

    def __init__(self, model, settings, stream_defaults: StreamSettings, metrics: Metrics,
                 ready: asyncio.Event, stopping: asyncio.Event):
        """model: what the streams share once it is loaded (``backend``, ``decoder``, ``batcher``: the
        CaptionServer); settings: ServerSettings."""
        self.model, self.settings, self.stream_defaults, self.metrics = model, settings, stream_defaults, metrics
        self.ready, self.stopping = ready, stopping
        self.sessions: set[Session] = set()
        self.handlers: set[asyncio.Task] = set()
        self.slots = 0  # stream connections admitted or waiting for their config

    async def handle(self, ws) -> None:
        self.slots += 1  # taken before the config arrives, so clients that connect at once cannot overshoot
        try:
            await self._stream(ws)
        finally:
            self.slots -= 1

    async def cancel(self, timeout_s: float) -> None:
        """Cut every connection still open."""
        for handler in list(self.handlers):
            handler.cancel()
        if self.handlers:
            await asyncio.wait(set(self.handlers), timeout=timeout_s)

    async def _stream(self, ws) -> None:
        """One stream: its config, then audio until eof (or shutdown, idle time, a failure), then its end."""
        try:
            config = await self._config(ws)
            settings = stream_settings(self.stream_defaults, config.settings)
        except ProtocolError as error:
            self.metrics.refused.labels(error.code).inc()
            await refuse(ws, error)
            return
        except Exception as exc:  # the client left (or was failed) before its config: nothing to clean up
            count_failed(exc, self.metrics.refused)
            return
        recognizer = Recognizer(self.model.backend.info, settings, self.model.decoder)
        session = Session(ws, config, recognizer.stream(config.sample_rate), self.metrics, self.settings.send_queue)
        entry = self.model.batcher.add(session.stream, session.sink)
        self.sessions.add(session)
        self.handlers.add(asyncio.current_task())
        self.metrics.streams.inc()
        sender = asyncio.create_task(self._send(session))
        try:
            await ws.send(json.dumps({"type": "ready", "sample_rate": config.sample_rate, "format": config.format,
                                      "model": self.model.backend.info.manifest.get("source"),
                                      "partials": config.partials}))
            ended = await self._receive(session, entry)
            if ended:
                await self._finish(session, entry, sender)
        except Exception as exc:  # the client went away (or sent what the protocol cannot take): others go on
            log.debug("stream ended: %s", exc.__class__.__name__)
            count_failed(exc, self.metrics.refused)
        finally:
            self.handlers.discard(asyncio.current_task())
            self.model.batcher.remove(entry)
            self.sessions.discard(session)
            self.metrics.streams.dec()
            sender.cancel()

    async def _config(self, ws) -> ClientConfig:
        if not self.ready.is_set():
            raise ProtocolError("not_ready", "the model is still loading; try again in a moment")
        if self.stopping.is_set():
            raise ProtocolError("stopping", "the server is shutting down")
        if self.slots > self.settings.max_streams:
            raise ProtocolError("busy", f"the server is full ({self.settings.max_streams} streams); try again later")
        try:
            message = await asyncio.wait_for(ws.recv(), self.settings.idle_timeout_s)
        except asyncio.TimeoutError:
            raise ProtocolError("idle", f"no config within {self.settings.idle_timeout_s:g} s") from None
        config = parse_config(message)
        token = config.token if config.token is not None else query_token(ws.request.path.partition("?")[2])
        if not token_ok(token, self.settings.token):
            raise ProtocolError("unauthorized", "a token is required and the one given is wrong"
                                if token else "a token is required: add \"token\" to the config")
        return config

    async def _receive(self, session: Session, entry) -> bool:
        """Audio into the stream until eof, shutdown or idle time (True: finish the stream and say end);
        False when the client has to be dropped. A connection already closing (a ping went unanswered: the
        server failed it) ends when it is closed, under recv, not as idle or with finals nobody reads."""
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
                await self.model.batcher.feed(entry, block)
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
        await self.model.batcher.end(entry)
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

    async def _send(self, session: Session) -> None:
        """The client's events in order; ends when the client is gone."""
        while True:
            message = await session.outbox.get()
            try:
                await session.ws.send(json.dumps(message, ensure_ascii=False))
            finally:
                session.outbox.task_done()
