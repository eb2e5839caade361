"""In-process stand-ins for browsers and the audio checks the media tests share.

``ClientPeer`` is an aiortc peer that plays a known tone (numpy sine, paced in
real time) and collects the audio it receives, so a test can ask for "the
next second of what this party hears" and find the far end's tone in it.
"""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

RATE = 48_000
FRAME = 960  # 20 ms


class ToneTrack(MediaStreamTrack):
    """A microphone that plays one sine tone, paced like a real device."""

    kind = "audio"

    def __init__(self, frequency: float, *, amplitude: float = 0.3) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        else:
            # Pacing a media source, not waiting for async work.
            delay = self._start + self._pts / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        t = np.arange(self._pts, self._pts + FRAME) / RATE
        samples = (self.amplitude * 32767 * np.sin(2 * np.pi * self.frequency * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = Fraction(1, RATE)
        self._pts += FRAME
        return frame


class ClientPeer:
    """A browser stand-in: sends a tone, decodes and keeps what it hears."""

    def __init__(self, frequency: float) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(ToneTrack(frequency))
        self.connected = asyncio.Event()
        self.closed = asyncio.Event()
        self._listening: tuple[list[np.ndarray], int, asyncio.Future[np.ndarray]] | None = None
        self._reader: asyncio.Task[None] | None = None
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    async def listen(self, seconds: float, *, timeout: float = 10.0) -> np.ndarray:
        """The next ``seconds`` of received audio (mono, 48 kHz); fails after ``timeout``."""
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._listening = ([], int(seconds * RATE), future)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._listening = None

    async def close(self) -> None:
        await self.pc.close()

    def _on_state(self) -> None:
        if self.pc.connectionState == "connected":
            self.connected.set()
        if self.pc.connectionState in ("closed", "failed"):
            self.closed.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            channels = len(frame.layout.channels)
            mono = frame.to_ndarray().reshape(-1, channels).mean(axis=1)
            if self._listening is None:
                continue
            chunks, needed, future = self._listening
            chunks.append(mono)
            if sum(len(c) for c in chunks) >= needed and not future.done():
                future.set_result(np.concatenate(chunks)[:needed])


def dominant_frequency(samples: np.ndarray, rate: int = RATE) -> float:
    """The strongest frequency in ``samples`` (Hz), to within rate / len(samples)."""
    samples = np.asarray(samples, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    spectrum[0] = 0
    return float(np.argmax(spectrum)) * rate / len(samples)


def steady_frequency(samples: np.ndarray, seconds: float, window_s: float = 0.25, rate: int = RATE) -> float:
    """The tone held over the last ``seconds`` of ``samples``: the median of the
    dominant frequency of each ``window_s`` window.

    A browser's fake microphone under CPU load now and then skips or repeats a
    stretch of its file, which smears one window's spectrum; the median says
    what the party sent, which one glitch does not change.
    """
    size = int(window_s * rate)
    tail = np.asarray(samples, dtype=np.float64)[-int(seconds * rate):]
    peaks = [dominant_frequency(tail[i:i + size], rate) for i in range(0, len(tail) - size + 1, size)]
    assert peaks, "shorter than one window"
    return float(np.median(peaks))


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(samples, dtype=np.float64) ** 2)))


def decode_recording(path: Path) -> np.ndarray:
    """Decode an Ogg Opus file to mono 48 kHz samples."""
    with av.open(str(path)) as container:
        chunks = []
        for frame in container.decode(audio=0):
            data = frame.to_ndarray()
            if data.ndim == 2 and data.shape[0] > 1:  # planar
                data = data.mean(axis=0)
            chunks.append(data.reshape(-1))
        assert container.streams.audio[0].codec_context.name == "opus"
    return np.concatenate(chunks)
