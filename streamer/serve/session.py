"""One websocket connection of the caption server: its stream, its outgoing events (a bounded queue), and
when each piece of its audio arrived, for the latency metrics; and how any connection (a stream's or a
viewer's) is refused, closed and counted."""

from __future__ import annotations

import asyncio
import bisect
import json
import time
from collections import deque
from typing import Callable

from websockets.exceptions import ConnectionClosed

from ..core.events import Error, Final, Partial
from ..model.geometry import SAMPLE_RATE
from .protocol import ClientConfig, ProtocolError, event_message
from .telemetry import Metrics

CLOSE_POLICY, CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN, CLOSE_INTERNAL = 1008, 1001, 1013, 1011
FAILED_BY_US = {1002: "protocol_error", 1003: "protocol_error", 1007: "protocol_error", 1009: "frame_too_big"}
SEND_TIMEOUT_S = 10.0  # after eof, how long the last events may take to reach a slow client
SHUTDOWN_S = 3.5  # after SIGTERM, how long streams may take to send their last finals before they are cut


class Session:
    """One connection: its stream, its outgoing events, and when each piece of its audio arrived."""

    def __init__(self, ws, config: ClientConfig, stream, metrics: Metrics, queue_size: int,
                 clock: Callable[[], float] = time.monotonic):
        """clock: seconds, for when audio arrived and when its captions went out (the latency metrics)."""
        self.ws, self.config, self.stream, self.metrics, self.clock = ws, config, stream, metrics, clock
        self.outbox: asyncio.Queue = asyncio.Queue(maxsize=queue_size)
        self.samples_in = 0  # at the model's SAMPLE_RATE
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=4096)  # (16 kHz sample reached, time)
        self.overflowed = False
        self.failed = False  # recognition failed: the stream ends (its finals so far were sent)
        self.dropped_hops = 0
        self.farewell: dict | None = None  # an error event that goes out after the last finals (idle time)

    def audio_arrived(self, n_samples: int, rate: int) -> None:
        self.samples_in += round(n_samples * SAMPLE_RATE / rate)
        self._arrivals.append((self.samples_in, self.clock()))
        self.metrics.audio_in(n_samples / rate)

    def arrival(self, seconds: float) -> float | None:
        """When the audio at this stream time arrived."""
        positions = [p for p, _ in self._arrivals]
        i = bisect.bisect_left(positions, round(seconds * SAMPLE_RATE))
        return self._arrivals[i][1] if i < len(self._arrivals) else None

    def sink(self, events: list) -> None:
        """Events of the stream (or an exception from the model call) into the client's queue."""
        now = self.clock()
        for event in events:
            if isinstance(event, Error) and event.code == "behind":
                self.metrics.behind.inc()
            elif isinstance(event, Error):
                self.failed = True
            self._observe(event, now)
            message = event_message(event, self.config)
            if message is not None:
                self.put(message)
        dropped = self.stream.dropped_hops
        self.metrics.dropped.inc(max(0, dropped - self.dropped_hops))
        self.dropped_hops = max(self.dropped_hops, dropped)

    def _observe(self, event, now: float) -> None:
        if isinstance(event, Partial) and event.text:
            arrived = self.arrival(event.end_s)
            if arrived is not None:
                self.metrics.partial.observe(now - arrived)
        elif isinstance(event, Final):
            arrived = self.arrival(event.words[-1].end_s)
            if arrived is not None:
                self.metrics.final.observe(now - arrived)

    def put(self, message: dict) -> None:
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True  # the client does not read: the receive loop drops it


async def refuse(ws, error: ProtocolError) -> None:
    """The error event, then a close: try again later (busy, not ready, stopping) or policy (the rest)."""
    code = CLOSE_TRY_AGAIN if error.code in ("busy", "not_ready", "stopping") else CLOSE_POLICY
    try:
        await ws.send(json.dumps(error.to_json()))
        await ws.close(code, error.message[:120])
    except Exception:
        pass


def failure_reason(exc: Exception) -> str | None:
    """Why a connection closed under a send or receive, as a metric reason: ping_timeout (no pong: the client
    does not read), frame_too_big, protocol_error (bad frames), connection_lost (no close frame either way); None
    when the client closed it, or the server did for a reason counted where it closed it."""
    if not isinstance(exc, ConnectionClosed) or (exc.rcvd is not None and (exc.sent is None or exc.rcvd_then_sent)):
        return None
    if exc.sent is None:
        return "connection_lost"
    if exc.sent.code == CLOSE_INTERNAL and "keepalive" in exc.sent.reason:
        return "ping_timeout"
    return FAILED_BY_US.get(exc.sent.code)


def count_failed(exc: Exception, counter, lost: bool = False) -> None:
    """A connection that failed under a send or receive, counted by why (lost: a broken connection counts
    too, as for viewers, whose broadcast it ends; a stream's client that vanishes ended it itself)."""
    reason = failure_reason(exc)
    if reason is not None and (lost or reason != "connection_lost"):
        counter.labels(reason).inc()
