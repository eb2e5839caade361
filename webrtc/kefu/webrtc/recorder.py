"""Records one party's packets, as received, into one file per party (no decoding).

Two formats, one per codec a leg can negotiate (``recorder_for``):

- Opus → Ogg Opus (``OggOpusRecorder``): each packet is muxed as it arrives
  and the muxer flushes every packet (pages of at most 0.2 s), so a process
  killed mid-call leaves a playable file missing at most its last page.
- PCMU → WAV, format tag 7 (G.711 mu-law), 8 kHz mono (``WavMulawRecorder``):
  the payloads are the file's data chunk byte for byte.  The header's sizes
  are rewritten after every write (data first, then sizes), so the file on
  disk is always a complete, valid WAV: a process killed mid-call loses
  nothing it had delivered.

Both place packets on a timeline that starts when recording starts; a gap of
20 ms or more (loss, a leg reconnecting, the party joining late) is filled
with silence (20 ms zero-length Opus frames; mu-law 0xFF bytes), so a file's
duration is the wall-clock duration of the recording up to its last packet.

Pause and resume: while paused, packets are placed on the timeline (it keeps
following the sender's clock) but not written.  On resume the paused span is
filled with silence up to the wall clock's position, so every party's file
stays aligned with the call's clock and with the pause/resume events; a
recording that ends while paused ends where the pause began.
``paused_intervals_ms`` gives each pause as (start, end) offsets in the
recording.  The alternative, cutting the paused span out, would shift every
later moment of the file away from the call's event log and from the other
party's file.

``close()`` makes the file durable before it returns: the file's data and the
directory entries leading to it are fsynced.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, NamedTuple

import av

from kefu.webrtc.opus import OPUS_CLOCK_RATE, OPUS_TIME_BASE, SAMPLES_PER_20MS, SILENCE_20MS
from kefu.webrtc.timeline import Timeline

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# codec (as negotiated on the leg) → file extension
RECORDING_EXTENSIONS = {"opus": "ogg", "pcmu": "wav"}


class PausedInterval(NamedTuple):
    """A pause, in ms from the start of the recording; ``end_ms`` is None while it lasts."""

    start_ms: int
    end_ms: int | None


class _PacketRecorder:
    """What both formats share: the timeline, gaps, pause/resume and a durable close."""

    codec: ClassVar[str]
    rate: ClassVar[int]  # samples per second of the file
    min_gap: ClassVar[int]  # the smallest gap (in samples) filled with silence

    def __init__(self, path: Path, *, clock: Clock = time.monotonic) -> None:
        self.path = path
        self.started_at = datetime.now(UTC)
        self.ended_at: datetime | None = None
        self._clock = clock
        self._origin = clock()
        # The timeline counts in 48 kHz samples; this file's rate divides it.
        self._scale = OPUS_CLOCK_RATE // self.rate
        self._timeline = Timeline(clock=clock, started_at=self._origin)
        self._written = 0  # samples in the file so far
        self._failed = False
        self._paused_since: float | None = None
        self._intervals: list[PausedInterval] = []
        self._new_dirs: list[Path] = []  # folders this recorder created, to fsync their parents

    # --- what a format provides

    def _samples(self, packet: av.Packet, payload: bytes) -> int:
        raise NotImplementedError

    def _append(self, payload: bytes, samples: int) -> None:
        raise NotImplementedError

    def _fill_silence(self, samples: int) -> None:
        """Append at least ``samples - min_gap + 1`` and at most ``samples`` samples of silence."""
        raise NotImplementedError

    def _finish(self) -> None:
        """Write what the format needs at the end and fsync the file."""
        raise NotImplementedError

    @property
    def has_audio(self) -> bool:
        raise NotImplementedError

    # --- the sink

    @property
    def duration_ms(self) -> int:
        return self._written * 1000 // self.rate

    @property
    def paused(self) -> bool:
        return self._paused_since is not None

    @property
    def paused_intervals_ms(self) -> tuple[PausedInterval, ...]:
        return tuple(self._intervals)

    def deliver(self, source: object, packet: av.Packet) -> None:
        if self.ended_at is not None or self._failed:
            return
        payload = bytes(packet)
        samples = self._samples(packet, payload)
        if not samples:
            return
        scale = self._scale
        position = self._timeline.place(source, packet.pts * scale, samples * scale) // scale
        if self._paused_since is not None:
            return  # placed, so the timeline keeps following the sender, but not written
        if position + samples <= self._written:
            return  # late: its slot was already filled
        self._guarded(self._write_at, position, payload, samples)

    def pause(self) -> None:
        """Stop writing received audio until ``resume()`` (idempotent)."""
        if self.ended_at is not None or self._paused_since is not None:
            return
        now = self._clock()
        self._paused_since = now
        self._intervals.append(PausedInterval(self._offset_ms(now), None))

    def resume(self) -> None:
        """Write received audio again; the paused span becomes silence (idempotent)."""
        if self.ended_at is not None or self._paused_since is None:
            return
        now = self._clock()
        self._end_pause(now)
        # Nothing written yet: the first packet's gap filling covers the pause.
        if self.has_audio and not self._failed:
            wall = round((now - self._origin) * self.rate)
            self._guarded(self._fill_to, wall)

    def close(self) -> None:
        """Finish the file and make it durable (idempotent).  A recorder that never got audio leaves no file."""
        if self.ended_at is not None:
            return
        now = self._clock()
        if self._paused_since is not None:
            self._end_pause(now)
        self.ended_at = datetime.now(UTC)
        if not self.has_audio:
            return
        try:
            self._finish()
            for folder in {self.path.parent, *(d.parent for d in self._new_dirs)}:
                fsync_directory(folder)
        except (OSError, av.FFmpegError):
            log.exception("closing recording %s failed", self.path)

    # --- helpers

    def _offset_ms(self, moment: float) -> int:
        return round((moment - self._origin) * 1000)

    def _end_pause(self, now: float) -> None:
        start = self._intervals[-1].start_ms
        self._intervals[-1] = PausedInterval(start, max(start, self._offset_ms(now)))
        self._paused_since = None

    def _write_at(self, position: int, payload: bytes, samples: int) -> None:
        self._fill_to(position)
        self._append(payload, samples)

    def _fill_to(self, position: int) -> None:
        if position - self._written >= self.min_gap:
            self._fill_silence(position - self._written)

    def _guarded(self, write: Callable[..., None], *args: object) -> None:
        try:
            write(*args)
        except (OSError, av.FFmpegError):
            log.exception("recording %s failed; the rest of this party's audio is not recorded", self.path)
            self._failed = True

    def _make_folder(self) -> None:
        missing = []
        folder = self.path.parent
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._new_dirs = missing


def fsync_directory(folder: Path) -> None:
    """Make the entries of ``folder`` (a new or renamed file in it) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- Opus

# Ogg Opus identification header (RFC 7845 section 5.1): version 1, one
# channel (a party is one voice; stereo packets decode down-mixed), no
# pre-skip, 48 kHz, no gain, channel mapping family 0.
_OPUS_HEAD = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 0, OPUS_CLOCK_RATE, 0, 0)
_MUXER_OPTIONS = {"flush_packets": "1", "page_duration": "200000"}


class OggOpusRecorder(_PacketRecorder):
    """One party's Opus packets in an Ogg Opus file; pts and durations in 48 kHz samples."""

    codec = "opus"
    rate = OPUS_CLOCK_RATE
    min_gap = SAMPLES_PER_20MS

    def __init__(self, path: Path, *, clock: Clock = time.monotonic) -> None:
        super().__init__(path, clock=clock)
        self._container: av.container.OutputContainer | None = None
        self._stream: av.audio.stream.AudioStream | None = None

    @property
    def has_audio(self) -> bool:
        return self._container is not None

    def _samples(self, packet: av.Packet, payload: bytes) -> int:
        return packet.duration or 0  # from the TOC byte (the leg's MediaFrame)

    def _fill_silence(self, samples: int) -> None:
        for _ in range(samples // SAMPLES_PER_20MS):
            self._append(SILENCE_20MS, SAMPLES_PER_20MS)

    def _append(self, payload: bytes, samples: int) -> None:
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
        self._make_folder()
        container = av.open(str(self.path), "w", format="ogg", options=_MUXER_OPTIONS)
        stream = container.add_stream("libopus", rate=OPUS_CLOCK_RATE, layout="mono")
        stream.codec_context.extradata = _OPUS_HEAD
        self._container, self._stream = container, stream

    def _finish(self) -> None:
        assert self._container is not None
        self._container.close()  # writes the last page and closes the file
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- PCMU

PCMU_RATE = 8_000
PCMU_SILENCE = 0xFF  # mu-law's encoding of 0
_WAVE_FORMAT_MULAW = 7
_FMT = struct.pack("<HHIIHHH", _WAVE_FORMAT_MULAW, 1, PCMU_RATE, PCMU_RATE, 1, 8, 0)  # + cbSize 0
# RIFF header, an 18-byte fmt chunk, a fact chunk (required for non-PCM
# formats: the sample count, here the data size), then the data chunk.
_RIFF_SIZE_AT = 4
_FACT_SAMPLES_AT = 12 + 8 + len(_FMT) + 8
_DATA_SIZE_AT = _FACT_SAMPLES_AT + 4 + 4
_HEADER_SIZE = _DATA_SIZE_AT + 4


def _wav_header(data_size: int) -> bytes:
    return (
        b"RIFF" + struct.pack("<I", _HEADER_SIZE - 8 + data_size) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(_FMT)) + _FMT
        + b"fact" + struct.pack("<II", 4, data_size)
        + b"data" + struct.pack("<I", data_size)
    )


class WavMulawRecorder(_PacketRecorder):
    """One party's PCMU packets in a mu-law WAV file; pts in 8 kHz samples, one byte per sample.

    Each write is one ``os.write`` of the payload followed by three small
    ``os.pwrite`` of the header sizes (RIFF, fact, data), which only ever
    claim bytes already written: the file is a valid WAV at every moment.
    """

    codec = "pcmu"
    rate = PCMU_RATE
    min_gap = 160  # 20 ms

    def __init__(self, path: Path, *, clock: Clock = time.monotonic) -> None:
        super().__init__(path, clock=clock)
        self._fd: int | None = None
        self._opened = False

    @property
    def has_audio(self) -> bool:
        return self._opened

    def _samples(self, packet: av.Packet, payload: bytes) -> int:
        return len(payload)

    def _fill_silence(self, samples: int) -> None:
        self._append(bytes([PCMU_SILENCE]) * samples, samples)

    def _append(self, payload: bytes, samples: int) -> None:
        if self._fd is None:
            self._open()
        assert self._fd is not None
        _write_all(self._fd, payload)
        self._written += samples
        self._write_sizes(self._fd, padding=0)

    def _write_sizes(self, fd: int, *, padding: int) -> None:
        os.pwrite(fd, struct.pack("<I", _HEADER_SIZE - 8 + self._written + padding), _RIFF_SIZE_AT)
        os.pwrite(fd, struct.pack("<I", self._written), _FACT_SAMPLES_AT)
        os.pwrite(fd, struct.pack("<I", self._written), _DATA_SIZE_AT)

    def _open(self) -> None:
        self._make_folder()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)  # no O_APPEND: Linux pwrite would append
        try:
            _write_all(fd, _wav_header(0))
        except OSError:
            os.close(fd)
            raise
        self._fd, self._opened = fd, True

    def _finish(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._written % 2 and not self._failed:  # RIFF chunks are word-aligned: a pad byte after odd data
                _write_all(fd, b"\x00")
                self._write_sizes(fd, padding=1)
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def recorder_for(codec: str, path: Path, *, clock: Clock = time.monotonic) -> OggOpusRecorder | WavMulawRecorder:
    """The recorder for a leg's negotiated codec: "opus" → Ogg Opus (.ogg), "pcmu" → mu-law WAV (.wav).

    ``path``'s suffix is replaced by the format's extension.
    """
    name = codec.lower()
    if name == "opus":
        return OggOpusRecorder(path.with_suffix(".ogg"), clock=clock)
    if name == "pcmu":
        return WavMulawRecorder(path.with_suffix(".wav"), clock=clock)
    raise ValueError(f"no recorder for codec {codec!r}")
