"""DTMF: in-band detection and generation, and RFC 4733 telephone-events.

Two ways a caller's key press reaches an IVR:

- in-band, as the two tones themselves in the audio: ``DtmfDetector`` (fed
  decoded PCM frames) and ``dtmf_tone`` / ``dtmf_sequence`` to make them;
- out-of-band, as RTP ``telephone-event`` packets (RFC 4733):
  ``parse_telephone_event`` / ``build_telephone_event`` for one payload and
  ``TelephoneEventReceiver``, which turns a stream of them into digits.

Both report each key press exactly once, as one of ``0-9 * # A-D``.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from kefu.webrtc.audio import PCMU_RATE, RATE, Pcm, Resampler48kTo8k, silence, tone

ROW_FREQUENCIES: Final = (697.0, 770.0, 852.0, 941.0)
COLUMN_FREQUENCIES: Final = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD: Final = ("123A", "456B", "789C", "*0#D")
DIGITS: Final = "0123456789*#ABCD"  # index = RFC 4733 event code

# --------------------------------------------------------------------------- generation


def dtmf_tone(digit: str, ms: int = 100, rate: int = RATE, *, amplitude: float = 0.25) -> Pcm:
    """The two tones of ``digit``, each at ``amplitude`` of full scale (0.25: about -15 dBFS each)."""
    for row, keys in enumerate(KEYPAD):
        column = keys.find(digit) if len(digit) == 1 else -1
        if column >= 0:
            low = tone(ROW_FREQUENCIES[row], ms, amplitude, rate=rate).astype(np.int32)
            high = tone(COLUMN_FREQUENCIES[column], ms, amplitude, rate=rate).astype(np.int32)
            return (low + high).astype(np.int16)
    raise ValueError(f"not a DTMF digit: {digit!r}")


def dtmf_sequence(digits: str, *, tone_ms: int = 100, gap_ms: int = 100, rate: int = RATE) -> Pcm:
    """``digits`` dialled in-band: each tone followed by ``gap_ms`` of silence."""
    parts: list[Pcm] = []
    for digit in digits:
        parts += [dtmf_tone(digit, tone_ms, rate), silence(gap_ms, rate=rate)]
    return np.concatenate(parts) if parts else silence(0, rate=rate)


# --------------------------------------------------------------------------- in-band detection
#
# Analysis at 8 kHz in windows of 102 samples (12.75 ms; the frequency
# resolution of 78 Hz puts each neighbouring DTMF frequency near a null of
# the rectangular window), a new window every 51 samples (6.4 ms).  For each
# window the power at the eight DTMF frequencies is Goertzel's single-bin
# DFT, computed for all windows and frequencies at once as a product with a
# precomputed cosine/sine basis.  A window "hits" a digit when:
#
# - both the strongest row and the strongest column tone are at least
#   _MIN_AMPLITUDE (about -40 dBFS) on their own;
# - together they hold at least _MIN_TONE_SHARE of the window's energy (a
#   key press is two sines and little else; speech, music and noise spread
#   their energy elsewhere);
# - twist (ITU-T Q.24 style limits; which side is "normal" and which
#   "reverse" twist varies between texts, so the constants say it plainly):
#   the row (low) tone is at most 8 dB stronger than the column (high) tone,
#   since lines lose more of the high tone, and at most 4 dB weaker;
# - each other tone of the same group is at least 8 dB below the strongest.
#
# A digit is reported once, when _HITS_TO_BEGIN consecutive windows hit it
# (a tone of 40 ms always does; one of 23 ms never does).  The same digit is
# reported again only after _MISSES_TO_END consecutive windows without it (a
# pause of about 25 ms or more; an interruption of 10 ms does not end it).

_WINDOW: Final = 102
_HOP: Final = 51
_HITS_TO_BEGIN: Final = 4
_MISSES_TO_END: Final = 5
_MIN_AMPLITUDE: Final = 330.0  # peak, of a full scale of 32767
_MIN_TONE_SHARE: Final = 0.8
_MAX_ROW_OVER_COLUMN: Final = 10 ** (8 / 10)  # 8 dB, as a power ratio
_MAX_COLUMN_OVER_ROW: Final = 10 ** (4 / 10)  # 4 dB
_MIN_PEAK_OVER_NEIGHBOURS: Final = 10 ** (8 / 10)


def _goertzel_basis() -> npt.NDArray[np.float64]:
    n = np.arange(_WINDOW)[:, None]
    frequencies = np.array(ROW_FREQUENCIES + COLUMN_FREQUENCIES)[None, :]
    phase = 2 * np.pi * frequencies * n / PCMU_RATE
    return np.concatenate((np.cos(phase), np.sin(phase)), axis=1)  # (102, 16)


_BASIS: Final = _goertzel_basis()
# A sine of amplitude A at one of the frequencies has power (A * N / 2) ** 2.
_MIN_POWER: Final = (_MIN_AMPLITUDE * _WINDOW / 2) ** 2


def _classify_windows(windows: npt.NDArray[np.float64]) -> list[str | None]:
    """For each row of ``windows`` (shape ``(n, 102)``, 8 kHz), the digit it holds, or None."""
    projections = windows @ _BASIS
    power = projections[:, :8] ** 2 + projections[:, 8:] ** 2
    energy = np.einsum("ij,ij->i", windows, windows)
    rows, columns = power[:, :4], power[:, 4:]
    row = np.argmax(rows, axis=1)
    column = np.argmax(columns, axis=1)
    index = np.arange(len(windows))
    row_power, column_power = rows[index, row], columns[index, column]
    # Power (A N / 2)^2 of a sine is a share 2 P / (N E) of the window's energy E = A^2 N / 2.
    share = 2 * (row_power + column_power) / (_WINDOW * np.maximum(energy, 1.0))
    rows_sorted, columns_sorted = np.sort(rows, axis=1), np.sort(columns, axis=1)
    hit = (
        (row_power >= _MIN_POWER)
        & (column_power >= _MIN_POWER)
        & (share >= _MIN_TONE_SHARE)
        & (row_power <= column_power * _MAX_ROW_OVER_COLUMN)
        & (column_power <= row_power * _MAX_COLUMN_OVER_ROW)
        & (rows_sorted[:, -2] * _MIN_PEAK_OVER_NEIGHBOURS <= row_power)
        & (columns_sorted[:, -2] * _MIN_PEAK_OVER_NEIGHBOURS <= column_power)
    )
    return [KEYPAD[r][c] if h else None for r, c, h in zip(row.tolist(), column.tolist(), hit.tolist(), strict=True)]


class DtmfDetector:
    """Streaming in-band DTMF detector for one audio stream: feed PCM frames, get the digits pressed.

    ``rate`` is 8000 (PCMU) or 48000 (decoded Opus; resampled to 8 kHz here,
    so 48 kHz frames must be a multiple of 6 samples long, as 20 ms frames are).
    """

    def __init__(self, rate: int = RATE) -> None:
        if rate not in (PCMU_RATE, RATE):
            raise ValueError(f"DTMF detection runs on 8000 or 48000 Hz audio, not {rate}")
        self._downsample = Resampler48kTo8k() if rate == RATE else None
        self._pending = np.zeros(0, dtype=np.float64)  # 8 kHz samples not yet in a full window
        self._candidate: str | None = None
        self._hits = 0
        self._pressed: str | None = None  # reported and not yet released
        self._misses = 0

    def feed(self, pcm: Pcm) -> list[str]:
        """The digits whose key press became certain in this frame (usually none, at most a few)."""
        samples = self._downsample(pcm) if self._downsample is not None else pcm
        self._pending = np.concatenate((self._pending, samples.astype(np.float64)))
        if len(self._pending) < _WINDOW:
            return []
        windows = np.lib.stride_tricks.sliding_window_view(self._pending, _WINDOW)[::_HOP]
        self._pending = self._pending[len(windows) * _HOP :]
        digits = []
        for found in _classify_windows(windows):
            digit = self._step(found)
            if digit is not None:
                digits.append(digit)
        return digits

    def _step(self, found: str | None) -> str | None:
        if found is not None and found == self._candidate:
            self._hits += 1
        else:
            self._candidate, self._hits = found, 1 if found is not None else 0
        if self._pressed is not None:
            if found == self._pressed:
                self._misses = 0
                return None
            self._misses += 1
            if self._misses >= _MISSES_TO_END:
                self._pressed = None
        if self._candidate is not None and self._hits >= _HITS_TO_BEGIN and self._candidate != self._pressed:
            self._pressed, self._misses = self._candidate, 0
            return self._pressed
        return None


# --------------------------------------------------------------------------- RFC 4733 telephone-events
#
# Payload (RFC 4733 section 2.3): event (8 bits), E (end) bit, R bit, volume
# (6 bits, -dBm0), duration (16 bits, in RTP timestamp units since the event
# began).  All packets of one event carry the RTP timestamp of its start: a
# start packet (usually with the marker bit), updates with growing duration,
# and the end packet, sent three times.


class TelephoneEventError(ValueError):
    """A telephone-event payload that is not a well-formed DTMF event."""


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    event: int  # 0-15: DIGITS[event]
    end: bool
    volume: int  # 0-63, in -dBm0
    duration: int  # RTP timestamp units

    @property
    def digit(self) -> str:
        return DIGITS[self.event]


_EVENT = struct.Struct("!BBH")
_MAX_DURATION: Final = 0xFFFF


def parse_telephone_event(payload: bytes) -> TelephoneEvent:
    if len(payload) != _EVENT.size:
        raise TelephoneEventError(f"a telephone-event payload is {_EVENT.size} bytes, got {len(payload)}")
    event, flags, duration = _EVENT.unpack(payload)
    if event >= len(DIGITS):
        raise TelephoneEventError(f"telephone-event {event} is not a DTMF digit (0-15)")
    return TelephoneEvent(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)


def build_telephone_event(digit: str | int, *, duration: int, end: bool = False, volume: int = 10) -> bytes:
    """One telephone-event payload for ``digit`` (a character of ``DIGITS`` or its event code)."""
    event = DIGITS.find(digit) if isinstance(digit, str) and len(digit) == 1 else digit
    if not isinstance(event, int) or not 0 <= event < len(DIGITS):
        raise ValueError(f"not a DTMF digit: {digit!r}")
    if not 0 <= duration <= _MAX_DURATION:
        raise ValueError(f"duration is 16 bits (0-65535), got {duration}")
    if not 0 <= volume <= 63:
        raise ValueError(f"volume is 0-63 (-dBm0), got {volume}")
    return _EVENT.pack(event, (0x80 if end else 0) | volume, duration)


class TelephoneEventReceiver:
    """Digits from one stream of telephone-event packets, each reported once.

    An event is recognised by its RTP timestamp: the first packet seen with a
    new timestamp (start, update, or end when everything before it was lost)
    reports the digit; every later packet with that timestamp (updates, the
    three end packets, duplicates, reordered stragglers) is ignored.  An event
    longer than 0xFFFF timestamp units continues in a new segment whose
    timestamp is the previous one plus 0xFFFF (RFC 4733 section 2.5.1.3); that
    segment is not a new key press.  Malformed payloads are counted in
    ``rejected`` and otherwise ignored: they come from the network.
    """

    _REMEMBERED = 64  # recent event timestamps kept for de-duplication

    def __init__(self) -> None:
        self._seen: deque[int] = deque(maxlen=self._REMEMBERED)
        self._latest: _Segment | None = None
        self.rejected = 0

    def feed(self, payload: bytes, rtp_timestamp: int) -> str | None:
        try:
            event = parse_telephone_event(payload)
        except TelephoneEventError:
            self.rejected += 1
            return None
        timestamp = rtp_timestamp & 0xFFFFFFFF
        latest = self._latest
        if timestamp in self._seen:
            if latest is not None and latest.timestamp == timestamp:  # packets may arrive out of order
                latest.duration = max(latest.duration, event.duration)
                latest.ended = latest.ended or event.end
            return None
        continues = (
            latest is not None
            and latest.event == event.event
            and not latest.ended
            and latest.duration == _MAX_DURATION
            and timestamp == (latest.timestamp + _MAX_DURATION) & 0xFFFFFFFF
        )
        self._seen.append(timestamp)
        self._latest = _Segment(timestamp, event.event, event.duration, event.end)
        return None if continues else event.digit


@dataclass(slots=True)
class _Segment:
    """What the receiver knows of the latest event (segment) so far."""

    timestamp: int
    event: int
    duration: int
    ended: bool
