"""Records one party's Opus packets, as received, into an Ogg Opus file (no decoding).

Each packet is muxed as it arrives and the muxer flushes every packet (pages of
at most 0.2 s), so a process killed mid-call leaves a playable file.  Packets
are placed on a timeline that starts when recording starts; a gap of a packet
or more (loss, a leg reconnecting, the party joining late) is filled with
20 ms zero-length Opus frames, which decode to silence, so the file's duration
is the wall-clock duration of the recording.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import av

from kefu.webrtc.opus import OPUS_CLOCK_RATE, OPUS_TIME_BASE, SAMPLES_PER_20MS, SILENCE_20MS
from kefu.webrtc.timeline import Timeline

log = logging.getLogger(__name__)

# Ogg Opus identification header (RFC 7845 section 5.1): version 1, one
# channel (a party is one voice; stereo packets decode down-mixed), no
# pre-skip, 48 kHz, no gain, channel mapping family 0.
_OPUS_HEAD = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 0, OPUS_CLOCK_RATE, 0, 0)
_MUXER_OPTIONS = {"flush_packets": "1", "page_duration": "200000"}


class OggOpusRecorder:
    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.started_at = datetime.now(UTC)
        self.ended_at: datetime | None = None
        self._timeline = Timeline(clock=clock, started_at=clock())
        self._container: av.container.OutputContainer | None = None
        self._stream: av.audio.stream.AudioStream | None = None
        self._written = 0  # samples muxed so far
        self._failed = False

    @property
    def duration_ms(self) -> int:
        return self._written * 1000 // OPUS_CLOCK_RATE

    @property
    def has_audio(self) -> bool:
        return self._container is not None

    def deliver(self, source: object, packet: av.Packet) -> None:
        if self.ended_at is not None or self._failed or not packet.duration:
            return
        position = self._timeline.place(source, packet.pts, packet.duration)
        if position + packet.duration <= self._written:
            return  # late: its slot was already filled
        try:
            while position - self._written >= SAMPLES_PER_20MS:
                self._mux(SILENCE_20MS, SAMPLES_PER_20MS)
            self._mux(bytes(packet), packet.duration)
        except (OSError, av.FFmpegError):
            log.exception("recording %s failed; the rest of this party's audio is not recorded", self.path)
            self._failed = True

    def _mux(self, payload: bytes, samples: int) -> None:
        if self._container is None:
            self._open()
        assert self._container is not None and self._stream is not None
        out = av.Packet(payload)
        out.pts = out.dts = self._written
        out.time_base = OPUS_TIME_BASE
        out.duration = samples
        out.stream = self._stream
        self._container.mux(out)
        self._written += samples

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(self.path), "w", format="ogg", options=_MUXER_OPTIONS)
        stream = container.add_stream("libopus", rate=OPUS_CLOCK_RATE, layout="mono")
        stream.codec_context.extradata = _OPUS_HEAD
        self._container, self._stream = container, stream

    def close(self) -> None:
        """Finish the file (idempotent).  A recorder that never got audio leaves no file."""
        if self.ended_at is not None:
            return
        self.ended_at = datetime.now(UTC)
        if self._container is not None:
            try:
                self._container.close()
            except (OSError, av.FFmpegError):
                log.exception("closing recording %s failed", self.path)
