"""The batcher driven concurrently: a real ONNX Runtime backend (tiny-nb) wrapped to fail, delay and reorder
its calls; streams whose post-model work, sink or feed raise. One failure costs one stream, never the others."""

import asyncio
import random
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.core.events import Error, Final
from streamer.core.stream import Recognizer, StreamSettings
from streamer.backends.backend import Capabilities, ModelInput
from streamer.driver.batcher import Batcher, BatchSettings
from streamer.backends.onnx import OnnxBackend, OnnxModel

from helpers import batcher_clips, clean_finals, finals_of, run_streams, to_int16

DC = 0.05  # the offset that marks one client's audio (its windows' mean), so a backend can single it out


@pytest.fixture(scope="module")
def backend(tiny_nb):
    return OnnxBackend(OnnxModel(tiny_nb), max_batch=16, max_in_flight=4)


@pytest.fixture(scope="module")
def clips():
    """Four streams: two paused (sentences with silence between), two monologues without pauses; the
    second (paused) is the longest, about 40 s."""
    return batcher_clips()


class Wrapped:
    """The real backend, with faults: every n-th call raises; calls are delayed at random (so several in
    flight finish out of order); windows of the DC-marked stream can be made to fail or come back empty."""

    def __init__(self, inner, fail_every: int = 0, max_delay_s: float = 0.0, seed: int = 0,
                 poison_dc_every: int = 0, refuse_dc: bool = False, max_in_flight: int | None = None):
        self.inner, self.info = inner, inner.info
        self.capabilities = Capabilities(inner.capabilities.max_batch, inner.capabilities.rows_independent,
                                         max_in_flight or inner.capabilities.max_in_flight)
        self.fail_every, self.max_delay_s, self.rng = fail_every, max_delay_s, random.Random(seed)
        self.poison_dc_every, self.refuse_dc = poison_dc_every, refuse_dc
        self.calls = self.failed = self.dc_rows = 0

    async def logits(self, batch: list[ModelInput]) -> list[np.ndarray]:
        self.calls += 1
        await asyncio.sleep(self.rng.uniform(0, self.max_delay_s))
        if self.fail_every and self.calls % self.fail_every == 0:
            self.failed += 1
            raise RuntimeError(f"injected failure of call {self.calls}")
        marked = [i for i, item in enumerate(batch) if item.stats is not None and item.stats[0] > DC / 2]
        if self.refuse_dc and marked:
            raise RuntimeError("injected: this window cannot be run")
        out = await self.inner.logits(batch)
        for i in marked:
            self.dc_rows += 1
            if self.poison_dc_every and self.dc_rows % self.poison_dc_every == 0:
                out[i] = out[i][:0]  # no frames: the stream's post-model work (deliver) raises
        return out

    def close(self) -> None:
        pass


def check_failed_stream(events, clean: list[dict]) -> None:
    """Ends with one error event; its finals are the clean run's, the last possibly cut short (the words
    committed when it failed: stable text is never taken back)."""
    assert isinstance(events[-1], Error) and events[-1].code == "recognition_failed"
    assert sum(isinstance(e, Error) for e in events) == 1
    got = finals_of(events)
    assert got[:-1] == clean[:max(0, len(got) - 1)]
    if got:
        last, reference = got[-1], clean[len(got) - 1]
        assert last == reference or [w["word"] for w in reference["words"]][:len(last["words"])] == \
            [w["word"] for w in last["words"]]


def test_failed_calls_and_a_failing_stream_cost_that_stream_alone(backend, clips):
    """Acceptance: a backend that fails every 7th call and a stream whose post-model work raises at its 20th
    delivery: every other stream's finals are a clean run's; the hit stream ends with an error event and
    the finals it had; the consumer goes on."""
    audios = [to_int16(a) for a in clips]
    clean = [clean_finals(backend, a) for a in audios]
    delivered = [0]

    def once_in_fifty(i, stream, sink) -> None:
        if i != 1:
            return
        deliver = stream.deliver

        def flaky_deliver(request, logits):
            delivered[0] += 1
            if delivered[0] == 20:
                raise RuntimeError("injected: post-model work failed")
            return deliver(request, logits)

        stream.deliver = flaky_deliver

    flaky = Wrapped(backend, fail_every=7, max_delay_s=0.01, seed=1)
    events = asyncio.run(run_streams(flaky, audios, BatchSettings(max_windows=4, max_wait_ms=5), patch=once_in_fifty))
    assert flaky.failed >= 3 and delivered[0] >= 20
    for i in (0, 2, 3):
        assert finals_of(events[i]) == clean[i]
        assert not any(isinstance(e, Error) for e in events[i])
    check_failed_stream(events[1], clean[1])


def test_a_window_that_never_runs_fails_its_stream_only(backend, clips):
    """A batch holding one window the backend can never run: retried row by row, so the other streams'
    windows in it still run, and only the owner of the bad window fails."""
    audios = [to_int16(clips[0]), to_int16(clips[1], DC), to_int16(clips[2])]
    clean = [clean_finals(backend, a) for a in audios]
    events = asyncio.run(run_streams(Wrapped(backend, refuse_dc=True), audios,
                                     BatchSettings(max_windows=8, max_wait_ms=20, retry_delay_ms=1)))
    assert finals_of(events[0]) == clean[0] and finals_of(events[2]) == clean[2]
    check_failed_stream(events[1], clean[1])


def test_empty_logits_make_post_model_work_raise_for_that_stream(backend, clips):
    audios = [to_int16(clips[1], DC), to_int16(clips[3])]
    clean = [clean_finals(backend, a) for a in audios]
    events = asyncio.run(run_streams(Wrapped(backend, poison_dc_every=20), audios, BatchSettings(max_windows=2)))
    check_failed_stream(events[0], clean[0])
    assert finals_of(events[1]) == clean[1]


def test_a_feed_that_raises_ends_that_stream_alone(backend, clips):
    """A defect in one stream's pre-model work (feed raises what is not a refusal of bad input)."""
    audios = [to_int16(clips[0]), to_int16(clips[2])]
    clean = [clean_finals(backend, a) for a in audios]

    def breaks(i, stream, sink) -> None:
        if i == 0:
            feed, count = stream.feed, [0]

            def bad_feed(block):
                count[0] += 1
                if count[0] == 60:
                    raise ValueError("injected: feed failed")
                return feed(block)

            stream.feed = bad_feed

    events = asyncio.run(run_streams(backend, audios, BatchSettings(), patch=breaks))
    check_failed_stream(events[0], clean[0])
    assert finals_of(events[1]) == clean[1]


def test_a_sink_that_raises_ends_that_stream_alone(backend, clips):
    audios = [to_int16(clips[0]), to_int16(clips[2])]
    clean = [clean_finals(backend, a) for a in audios]
    events = asyncio.run(_run_with_bad_sink(backend, audios))
    assert isinstance(events[0][-1], Error) and not finals_of(events[0])
    assert finals_of(events[1]) == clean[1]


async def _run_with_bad_sink(backend, audios) -> list[list]:
    """Stream 0's sink raises on its first final; stream 1 runs beside it."""
    batcher = Batcher(backend, BatchSettings())
    consumer = asyncio.create_task(batcher.run())
    recognizer = Recognizer(backend.info, StreamSettings())
    events: list[list] = [[], []]

    def bad_sink(batch):
        if any(isinstance(e, Final) for e in batch) and not any(isinstance(e, Error) for e in batch):
            raise ValueError("injected: the sink failed")
        events[0].extend(batch)

    entries = [batcher.add(recognizer.stream(), bad_sink), batcher.add(recognizer.stream(), events[1].extend)]
    for i, entry in enumerate(entries):
        for start in range(0, len(audios[i]), 1600):
            await batcher.feed(entry, audios[i][start:start + 1600])
        await batcher.end(entry)
    for entry in entries:
        await asyncio.wait_for(entry.drained.wait(), 60)
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    await batcher.close()
    return events


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(max_windows=st.integers(1, 8), in_flight=st.integers(1, 4), seed=st.integers(0, 10_000),
       wait_ms=st.sampled_from([0.0, 5.0, 30.0]))
def test_finals_do_not_depend_on_batch_composition_or_calls_in_flight(backend, clips, max_windows, in_flight,
                                                                     seed, wait_ms):
    """Random batch sizes, K calls in flight finishing in random order, random block splits per stream:
    every stream's finals are those it gets alone."""
    rng = random.Random(seed)
    audios = [to_int16(a) for a in clips[:3]]
    clean = [clean_finals(backend, a) for a in audios]
    sizes = [[rng.randint(1, 8000) for _ in range(40)] for _ in audios]
    shuffled = Wrapped(backend, max_delay_s=0.02, seed=seed, max_in_flight=in_flight)
    events = asyncio.run(run_streams(shuffled, audios, BatchSettings(max_windows=max_windows, max_wait_ms=wait_ms),
                                     block_sizes=sizes, keep_up_every=rng.choice([0, 1, 3])))
    assert [finals_of(e) for e in events] == clean


class Scripted:
    """Streams for the scheduler alone: each always has a partial waiting; one has a commit too. Each take
    is noted with the batcher's clock."""

    def __init__(self, has_commit: bool, clock):
        self.has_commit, self.clock, self.taken = has_commit, clock, []

    def waiting(self):
        return (1, self.has_commit) if not self.has_commit else (1, True)

    def next_request(self, commit_first: bool = False):
        kind = "commit" if self.has_commit and commit_first else "partial"
        if kind == "commit":
            self.has_commit = False
        self.taken.append((kind, self.clock()))
        return _Request(kind)

    def deliver(self, request, logits):
        return []


class _Window:
    def __init__(self, kind):
        self.kind = kind


class _Request:
    def __init__(self, kind):
        self.window, self.audio, self.stats = _Window(kind), np.zeros(16000, np.float32), None


class FakeClock:
    def __init__(self):
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


class Instant:
    """A backend whose calls return at once (the scheduler's tests need no model)."""

    def __init__(self, info):
        self.info, self.capabilities = info, Capabilities(1, True, 1)
        self.calls = 0

    async def logits(self, batch):
        self.calls += 1
        return [np.zeros((self.info.geometry.n_frames(len(item.audio)), len(self.info.vocab)), np.float32)
                for item in batch]

    def close(self):
        pass


def test_a_commit_never_waits_behind_partials_past_the_bound(backend):
    """Ten streams always have partials waiting and one call runs at a time, one window each: the stream
    whose commit waits gets it run as soon as it has waited max_commit_wait_ms on the batcher's clock (a fake
    one, moved 10 ms a call), not never and not before."""

    async def scenario():
        clock, instant = FakeClock(), Instant(backend.info)
        batcher = Batcher(instant, BatchSettings(max_windows=1, max_wait_ms=0, max_commit_wait_ms=100), clock=clock)
        busy = [Scripted(False, clock) for _ in range(10)]
        late = Scripted(True, clock)
        for stream in [*busy, late]:
            batcher.add(stream, lambda events: None)
        consumer = asyncio.create_task(batcher.run())
        for _ in range(100):
            if not late.has_commit:
                break
            calls = instant.calls
            batcher.wake()
            while instant.calls == calls:  # the call this wake makes (the consumer runs in between)
                await asyncio.sleep(0)
            clock.now_s += 0.01
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await batcher.close()
        return [t for kind, t in late.taken if kind == "commit"], [k for k, _ in late.taken]

    commits, kinds = asyncio.run(scenario())
    assert commits and 0.1 - 1e-9 <= commits[0] <= 0.11 + 1e-9, commits
    assert "partial" in kinds[:-1]  # its partials ran in their turn meanwhile


def test_close_does_not_wait_for_a_hung_backend(backend):
    class Hung:
        info, capabilities = backend.info, Capabilities(1, True, 1)

        async def logits(self, batch):
            await asyncio.sleep(3600)

        def close(self):
            pass

    async def scenario():
        batcher = Batcher(Hung(), BatchSettings())
        stream = Recognizer(backend.info, StreamSettings()).stream()
        entry = batcher.add(stream, lambda events: None)
        consumer = asyncio.create_task(batcher.run())
        await batcher.feed(entry, to_int16(np.random.default_rng(0).standard_normal(48000) * 0.3))
        await asyncio.sleep(0.2)
        began = time.monotonic()
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await batcher.close(timeout_s=0.5)
        return time.monotonic() - began

    assert asyncio.run(scenario()) < 2.0


def test_a_defect_in_batching_itself_fails_those_streams_and_never_hangs_them(backend, clips):
    """The batcher's own code between taking requests and the backend (grouping windows by length) raises
    once: the streams in that batch end with an error event instead of waiting forever, and a stream
    added afterwards runs clean."""
    audios = [to_int16(clips[0]), to_int16(clips[2])]
    clean = clean_finals(backend, audios[1])

    async def run() -> tuple[list, list]:
        batcher = Batcher(backend, BatchSettings(max_wait_ms=20))
        groups, broken = batcher._groups, [False]

        def groups_once(requests):
            if not broken[0]:
                broken[0] = True
                raise TypeError("injected: grouping failed")
            return groups(requests)

        async def one_stream(audio) -> list:
            events: list = []
            entry = batcher.add(Recognizer(backend.info, StreamSettings()).stream(), events.extend)
            for start in range(0, len(audio), 1600):
                await batcher.feed(entry, audio[start:start + 1600])
            await batcher.end(entry)
            await asyncio.wait_for(entry.drained.wait(), 60)
            return events

        batcher._groups = groups_once
        consumer = asyncio.create_task(batcher.run())
        first = await one_stream(audios[0])
        later = await one_stream(audios[1])
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await batcher.close()
        return first, later

    first, later = asyncio.run(run())
    assert isinstance(first[-1], Error) and "injected: grouping failed" in first[-1].message
    assert finals_of(later) == clean
