"""The caption server's Prometheus metrics, in a registry of its own (no process-wide state)."""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..driver.batcher import BatchReport


class Metrics:
    """Prometheus metrics of one server (its own registry: no process-wide state)."""

    def __init__(self):
        self.registry = r = CollectorRegistry()
        latency = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
        self.streams = Gauge("streamer_active_streams", "Streams being captioned", registry=r)
        self.audio = Counter("streamer_audio_seconds", "Seconds of audio received", registry=r)
        self.compute = Counter("streamer_compute_seconds", "Seconds spent in model calls", registry=r)
        self.rtf = Gauge("streamer_real_time_factor", "Model compute over audio received, last 30 s", registry=r)
        self.partial = Histogram("streamer_partial_latency_seconds",
                                 "From the arrival of the audio a partial ends with to the partial", buckets=latency,
                                 registry=r)
        self.final = Histogram("streamer_final_latency_seconds",
                               "From the arrival of a final's last word to the final", buckets=latency, registry=r)
        self.batch = Histogram("streamer_batch_windows", "Windows per model call", buckets=(1, 2, 3, 4, 6, 8, 12, 16),
                               registry=r)
        self.batch_streams = Histogram("streamer_batch_streams", "Streams per model call",
                                       buckets=(1, 2, 3, 4, 6, 8, 12, 16), registry=r)
        self.queue = Gauge("streamer_queue_depth", "Streams waiting for the model when a call starts", registry=r)
        self.dropped = Counter("streamer_dropped_partials", "Partial hops dropped because the model was behind",
                               registry=r)
        self.refused = Counter("streamer_refused_streams", "Streams and viewers the server refused or ended, by "
                               "reason: the error code they were sent (busy, unauthorized, bad_config, idle, ...), "
                               "origin, not_reading, ping_timeout, frame_too_big, protocol_error, recognition_failed, "
                               "shutdown", ["reason"], registry=r)
        self.behind = Counter("streamer_behind", "Times a stream fell more than --max-lag-s behind (new audio "
                              "skipped until it caught up)", registry=r)
        self.viewers = Gauge("streamer_viewers", "Viewers following the broadcast", registry=r)
        self.dropped_viewers = Counter("streamer_dropped_viewers", "Viewers who lost the broadcast before its end, "
                                       "by reason: not_reading (their queue filled), ping_timeout, connection_lost",
                                       ["reason"], registry=r)
        self._recent: deque[tuple[float, float, float]] = deque()  # (time, compute s, audio s)

    def batch_done(self, report: BatchReport) -> None:
        self.compute.inc(report.compute_s)
        self.batch.observe(report.windows)
        self.batch_streams.observe(report.streams)
        self.queue.set(report.waiting)
        self._add_recent(report.compute_s, 0.0)

    def audio_in(self, seconds: float) -> None:
        self.audio.inc(seconds)
        self._add_recent(0.0, seconds)

    def _add_recent(self, compute_s: float, audio_s: float) -> None:
        now = time.monotonic()
        self._recent.append((now, compute_s, audio_s))
        while self._recent and self._recent[0][0] < now - 30:
            self._recent.popleft()
        audio = sum(a for _, _, a in self._recent)
        if audio:
            self.rtf.set(sum(c for _, c, _ in self._recent) / audio)

    def text(self) -> bytes:
        return generate_latest(self.registry)
