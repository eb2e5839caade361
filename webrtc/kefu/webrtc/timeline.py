"""One continuous 48 kHz timeline across the successive legs that feed a sink.

A party's leg can be replaced mid-call (page reload): the new leg's RTP
timestamps start from an unrelated origin.  A ``Timeline`` keeps what a sink
emits continuous: packets of one source keep their own spacing (gaps stay
gaps), and a new source resumes where the previous one ended, or at the wall
clock's position if that is later.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kefu.webrtc.opus import OPUS_CLOCK_RATE


class Timeline:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic, started_at: float | None = None) -> None:
        self._clock = clock
        self._started_at = started_at
        self._source: object | None = None
        self._offset = 0
        self._end = 0

    @property
    def end(self) -> int:
        """The sample just after the last placed packet."""
        return self._end

    def place(self, source: object, pts: int, samples: int) -> int:
        """Where a packet of ``source`` at ``pts`` (its own clock) falls on this timeline."""
        if source is not self._source:
            now = self._clock()
            if self._started_at is None:
                self._started_at = now
            wall = int((now - self._started_at) * OPUS_CLOCK_RATE)
            self._offset = max(self._end, wall) - pts
            self._source = source
        position = pts + self._offset
        self._end = max(self._end, position + samples)
        return position
