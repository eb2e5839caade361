"""Audio primitives for the media plane: Opus and G.711 mu-law codecs, 48/8 kHz resampling, mixing, tones.

Conventions: PCM is a 1-D numpy ``int16`` array, mono.  The internal rate is
48 kHz (Opus's clock) in 20 ms frames of 960 samples; PCMU runs at 8 kHz, 160
samples (and 160 bytes) per 20 ms.  Nothing here knows about calls: each piece
takes a frame and returns a frame, keeping whatever state it needs (codec
state, filter history) on its own object, so one object serves one stream.

Measured per 20 ms frame of espeak-ng speech (``timeit``, best of 7 runs of
1000 frames, one core of a shared 2-vCPU AMD EPYC, Python 3.11, PyAV 18.1 with
libopus, numpy 2.4; ``docs/media-audio.md`` has the method).  A frame
lasts 20,000 µs, so a figure divided by 200 is the percentage of one core a
stream keeps busy (the Opus encoder: about 1 %):

=====================================  =========
operation                               µs/frame
=====================================  =========
``OpusEncoder.encode`` (32 kb/s)              208
``OpusDecoder.decode``                         37
``OpusDecoder.decode`` (lost packet)           37
``mulaw_encode`` (160 samples)                2.4
``mulaw_decode`` (160 bytes)                  1.6
``Resampler48kTo8k`` (960 -> 160)              33
``Resampler8kTo48k`` (160 -> 960)              20
``mix`` (3 frames)                             12
``mix_minus`` (10 frames)                      29
``tone`` (20 ms)                               17
=====================================  =========
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import av
import numpy as np
import numpy.typing as npt

from kefu.webrtc.opus import OPUS_CLOCK_RATE, SAMPLES_PER_20MS, SILENCE_20MS

Pcm = npt.NDArray[np.int16]

RATE: Final = OPUS_CLOCK_RATE  # 48 kHz, the internal rate
FRAME: Final = SAMPLES_PER_20MS  # 960 samples, 20 ms at 48 kHz
PCMU_RATE: Final = 8_000
PCMU_FRAME: Final = 160  # 20 ms at 8 kHz
_RATIO: Final = RATE // PCMU_RATE  # 6


def _to_int16(samples: npt.NDArray[np.floating]) -> Pcm:
    return np.clip(np.rint(samples), -32768, 32767).astype(np.int16)


def _check_pcm(pcm: np.ndarray, what: str) -> None:
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(f"{what} must be a 1-D int16 array, got {pcm.dtype} with shape {pcm.shape}")


# --------------------------------------------------------------------------- Opus


class OpusEncoder:
    """libopus (through PyAV), 48 kHz mono: one 20 ms frame in, one packet payload out.

    ``application="voip"`` favours speech intelligibility; 32 kb/s is what
    browsers send for a mono voice.  libopus's 312-sample lookahead (6.5 ms)
    delays the decoded audio; packets never wait for it (no buffering here).
    """

    def __init__(self, *, bitrate: int = 32_000, application: str = "voip") -> None:
        self._codec = av.CodecContext.create("libopus", "w")
        self._codec.sample_rate = RATE
        self._codec.layout = "mono"
        self._codec.format = "s16"
        self._codec.bit_rate = bitrate
        self._codec.options = {"application": application, "frame_duration": "20"}
        self._codec.open()
        self._pts = 0

    def encode(self, pcm: Pcm) -> bytes:
        _check_pcm(pcm, "an Opus frame")
        if len(pcm) != FRAME:
            raise ValueError(f"an Opus frame is {FRAME} samples (20 ms at 48 kHz), got {len(pcm)}")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        self._pts += FRAME
        packets = self._codec.encode(frame)
        if len(packets) != 1:  # libopus emits one packet per full frame; anything else is a PyAV change
            raise RuntimeError(f"libopus returned {len(packets)} packets for one 20 ms frame")
        return bytes(packets[0])


class OpusDecoder:
    """libopus (through PyAV), 48 kHz mono: one packet payload in, its PCM out (960 samples for 20 ms).

    A lost packet (``b""``) or one libopus cannot decode is replaced by the
    zero-length frame ``SILENCE_20MS``: libopus answers it with 20 ms of
    packet-loss concealment (it extends the last sound and fades it).  libopus
    keeps concealing with a low noise (about -36 dBFS) for as long as packets
    stay lost, so after ``MAX_CONCEALED`` lost packets in a row (100 ms) the
    decoder returns plain silence until a packet arrives.
    """

    MAX_CONCEALED: Final = 5

    def __init__(self) -> None:
        self._codec = av.CodecContext.create("libopus", "r")
        self._codec.sample_rate = RATE
        self._codec.layout = "mono"
        self._codec.open()
        self._lost_in_a_row = 0

    def decode(self, payload: bytes) -> Pcm:
        if payload:
            try:
                pcm = self._decode(payload)
            except av.error.FFmpegError:
                pass
            else:
                self._lost_in_a_row = 0
                return pcm
        self._lost_in_a_row += 1
        if self._lost_in_a_row > self.MAX_CONCEALED:
            return np.zeros(FRAME, dtype=np.int16)
        return self._decode(SILENCE_20MS)

    def _decode(self, payload: bytes) -> Pcm:
        frames = self._codec.decode(av.Packet(payload))
        if not frames:
            return np.zeros(FRAME, dtype=np.int16)
        chunks = [frame.to_ndarray().reshape(-1) for frame in frames]
        pcm = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
        if pcm.dtype != np.int16:  # libopus decodes to s16 when asked for nothing else
            pcm = _to_int16(pcm.astype(np.float64) * 32768)
        return pcm


# --------------------------------------------------------------------------- G.711 mu-law
#
# The tables follow the ITU's reference implementation (G.191 STL, g711.c):
# the encoder takes the 14 most significant bits of a 16-bit sample, folds a
# negative sample with the one's complement (so -1 and 0 are the two zeros of
# mu-law's sign-magnitude code), adds the bias 33 and finds the segment; the
# decoder returns the middle of each quantisation interval, scaled back to 16
# bits (full scale +-32124).


def _mulaw_encode_table() -> npt.NDArray[np.uint8]:
    linear = np.arange(-32768, 32768, dtype=np.int32)
    magnitude = np.where(linear < 0, ~linear, linear) >> 2
    biased = np.minimum(magnitude + 33, 0x1FFF)
    segment = 1 + np.searchsorted(np.array([64, 128, 256, 512, 1024, 2048, 4096]), biased, side="right")
    code = ((8 - segment) << 4) | (15 - ((biased >> segment) & 0x0F))
    code = np.where(linear >= 0, code | 0x80, code)
    return code.astype(np.uint8)


def _mulaw_decode_table() -> Pcm:
    code = np.arange(256, dtype=np.int32)
    inverted = ~code
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    step = 4 << (exponent + 1)
    magnitude = (0x80 << exponent) + step * mantissa + step // 2 - 4 * 33
    return np.where(code < 0x80, -magnitude, magnitude).astype(np.int16)


_MULAW_ENCODE: Final = _mulaw_encode_table()  # indexed by sample + 32768
_MULAW_DECODE: Final = _mulaw_decode_table()  # indexed by code


def mulaw_encode(pcm8k: Pcm) -> bytes:
    """G.711 mu-law (PCMU) bytes for 8 kHz samples, one byte per sample."""
    _check_pcm(pcm8k, "PCMU input")
    return _MULAW_ENCODE[pcm8k.astype(np.int32) + 32768].tobytes()


def mulaw_decode(payload: bytes) -> Pcm:
    """8 kHz samples for G.711 mu-law (PCMU) bytes."""
    return _MULAW_DECODE[np.frombuffer(payload, dtype=np.uint8)]


# --------------------------------------------------------------------------- resampling 48 kHz <-> 8 kHz
#
# One low-pass FIR serves both directions: 144 taps, Kaiser window (beta 7),
# cut-off 3.9 kHz at 48 kHz.  Passband flat to -0.3 dB at 3.4 kHz (the
# telephone band), at least 55 dB of rejection from 4.6 kHz (whatever folds
# back below 3.4 kHz at 8 kHz) and 80 dB from 6 kHz.  Delay 71.5 samples at
# 48 kHz (1.5 ms) each way.  Each resampler keeps the last input samples as
# filter history, so consecutive frames join without a click.

_TAPS: Final = 144


def _design_lowpass() -> npt.NDArray[np.float64]:
    n = np.arange(_TAPS) - (_TAPS - 1) / 2
    taps = np.sinc(2 * 3_900 / RATE * n) * np.kaiser(_TAPS, 7.0)
    return taps / taps.sum()


_LOWPASS: Final = _design_lowpass()
# For the interpolator: row i of the window (input x[m - 23 + i]) feeds output
# 6m + p through tap 6 * (23 - i) + p; times 6 to make up for the zeros that
# upsampling inserts.
_POLYPHASE: Final = (_RATIO * _LOWPASS.reshape(_TAPS // _RATIO, _RATIO))[::-1].copy()


class Resampler48kTo8k:
    """48 kHz -> 8 kHz: low-pass, then keep every sixth sample.  960 samples in, 160 out.

    Any input whose length is a multiple of 6 is accepted; one object per stream.
    """

    def __init__(self) -> None:
        self._history = np.zeros(_TAPS - 1, dtype=np.float64)

    def __call__(self, pcm48k: Pcm) -> Pcm:
        _check_pcm(pcm48k, "48 kHz input")
        if len(pcm48k) % _RATIO:
            raise ValueError(f"48 kHz input must be a multiple of {_RATIO} samples, got {len(pcm48k)}")
        signal = np.concatenate((self._history, pcm48k))
        self._history = signal[len(signal) - (_TAPS - 1) :]
        windows = np.lib.stride_tricks.sliding_window_view(signal, _TAPS)[::_RATIO]
        return _to_int16(windows @ _LOWPASS)  # the filter is symmetric: no need to reverse it


class Resampler8kTo48k:
    """8 kHz -> 48 kHz: polyphase interpolation with the same low-pass.  160 samples in, 960 out."""

    def __init__(self) -> None:
        self._history = np.zeros(_TAPS // _RATIO - 1, dtype=np.float64)

    def __call__(self, pcm8k: Pcm) -> Pcm:
        _check_pcm(pcm8k, "8 kHz input")
        signal = np.concatenate((self._history, pcm8k))
        self._history = signal[len(signal) - len(self._history) :]
        windows = np.lib.stride_tricks.sliding_window_view(signal, _TAPS // _RATIO)
        return _to_int16((windows @ _POLYPHASE).reshape(-1))


def resample_48k_to_8k(pcm48k: Pcm) -> Pcm:
    """A whole 48 kHz signal at 8 kHz (a fresh ``Resampler48kTo8k``; streams keep one instead)."""
    return Resampler48kTo8k()(pcm48k)


def resample_8k_to_48k(pcm8k: Pcm) -> Pcm:
    """A whole 8 kHz signal at 48 kHz (a fresh ``Resampler8kTo48k``; streams keep one instead)."""
    return Resampler8kTo48k()(pcm8k)


# --------------------------------------------------------------------------- mixing and tones


def mix(frames: Sequence[Pcm]) -> Pcm:
    """The sum of equally long frames, added in int32 and clipped to int16."""
    if not frames:
        raise ValueError("mix needs at least one frame")
    return np.clip(_stack(frames).sum(axis=0), -32768, 32767).astype(np.int16)


def mix_minus(frames: Sequence[Pcm]) -> list[Pcm]:
    """For each party of a conference, the mix of everyone else (the sum is computed once)."""
    if not frames:
        return []
    stacked = _stack(frames)
    return list(np.clip(stacked.sum(axis=0) - stacked, -32768, 32767).astype(np.int16))


def _stack(frames: Sequence[Pcm]) -> npt.NDArray[np.int32]:
    length = len(frames[0])
    for frame in frames:
        _check_pcm(frame, "a frame to mix")
        if len(frame) != length:
            raise ValueError(f"frames to mix must be equally long, got {len(frame)} and {length} samples")
    return np.stack(frames).astype(np.int32)


def tone(freq: float, ms: int, amplitude: float = 0.5, *, rate: int = RATE) -> Pcm:
    """A sine of ``freq`` Hz lasting ``ms`` milliseconds; ``amplitude`` is a fraction of full scale."""
    if not 0 <= amplitude <= 1:
        raise ValueError(f"amplitude is a fraction of full scale (0..1), got {amplitude}")
    t = np.arange(rate * ms // 1000) / rate
    return _to_int16(amplitude * 32767 * np.sin(2 * np.pi * freq * t))


def silence(ms: int, *, rate: int = RATE) -> Pcm:
    return np.zeros(rate * ms // 1000, dtype=np.int16)


def frames_of(pcm: Pcm, size: int = FRAME) -> list[Pcm]:
    """``pcm`` cut into frames of ``size`` samples, the last one padded with silence."""
    padded = np.concatenate((pcm, np.zeros(-len(pcm) % size, dtype=np.int16)))
    return list(padded.reshape(-1, size))
