"""The one overload policy, for every command: audio is skipped as silence while captions trail it too far.

When recognition cannot keep up, a stream's partials first merge and drop hops (``WindowSettings.
max_hops``); then, when its captions trail the audio by more than ``max_lag_s``, newly arriving audio
is skipped: fed as silence of the same length, so times stay on the audio's clock, until the lag is
back under half of it. How far captions trail is one measure: how long the block waited after it was
read (``waited_s``: a live source read on a thread, ``streamer.sources.handoff``) plus what the stream
has received and not yet committed beyond what its settings make it wait (``Stream.lag_s``). Captions
of audio already received are never dropped. A ``Skipper`` per stream applies it; the batcher owns
them (``BatchSettings.max_lag_s``), so no command applies a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..core.events import Error
from ..core.pcm import check_block


@dataclass(frozen=True)
class Skip:
    """Audio that was skipped, in the stream's time (seconds from its first sample)."""

    start_s: float
    end_s: float


class Skipper:
    """One stream's side of the policy: which blocks go in as they are and which as silence."""

    def __init__(self, max_lag_s: float | None, on_skip: Callable[[Skip], None] = lambda skip: None):
        """max_lag_s None: nothing is ever skipped; on_skip: told of each skip when it ends."""
        self.max_lag_s, self.on_skip = max_lag_s, on_skip
        self.skipping = False
        self.position_s = 0.0  # the stream's time at the next block
        self.skipped_s = 0.0  # in all
        self._from_s = 0.0  # where the skip going on began

    def admit(self, block: np.ndarray, rate: int, lag_s: float) -> tuple[np.ndarray, list]:
        """The block or silence in its place, and the events to tell the stream's user (an ``Error`` of code
        ``behind`` once per skip). A block the stream would refuse raises its StreamerError here, before the
        skipper counts it (core.pcm.check_block, the one block check)."""
        block = check_block(block)
        events = []
        if self.max_lag_s is not None:
            if self.skipping and lag_s < self.max_lag_s / 2:
                self.finish()
            elif not self.skipping and lag_s > self.max_lag_s:
                self.skipping, self._from_s = True, self.position_s
                events.append(Error("behind", f"captions are {lag_s:.1f} s behind the audio (more than "
                                              f"{self.max_lag_s:g} s): new audio is skipped until they catch up; "
                                              "the captions of audio already received still come"))
        seconds = len(block) / rate
        self.position_s += seconds
        if not self.skipping:
            return block, events
        self.skipped_s += seconds
        return np.zeros_like(block), events

    def finish(self) -> None:
        """The skip going on (if any) ends here: on_skip is told."""
        if self.skipping:
            self.skipping = False
            self.on_skip(Skip(self._from_s, self.position_s))
