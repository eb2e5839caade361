"""Prompts: audio a call plays to a party (IVR menus, announcements, music on hold), encoded once.

A prompt is decoded from any audio file PyAV reads (WAV, Ogg, MP3, FLAC...),
mixed down to mono, resampled to 48 kHz and encoded a single time into 20 ms
Opus packet payloads and 20 ms PCMU payloads.  Playing it to a call is then
sending the next payload every 20 ms: no encoding per call, however many calls
hear it.

Encoded prompts are cached twice, both keyed by a SHA-256 of the source
file's bytes (and of this module's encoding format):

- on disk, ``<cache_dir>/prompts/<key>.prompt`` (layout in ``_PromptFile``),
  written under a temporary name and renamed into place;
- in memory, a process-wide LRU bounded to ``MEMORY_LIMIT_BYTES``.

Decoding, encoding and file I/O run in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import struct
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import av
import numpy as np

from kefu.platform.settings import Settings
from kefu.webrtc.audio import (
    PCMU_FRAME,
    RATE,
    OpusEncoder,
    Pcm,
    Resampler48kTo8k,
    frames_of,
    mulaw_encode,
)
from kefu.webrtc.tts import DEFAULT_RATE, synthesize

MAX_PROMPT_MS: Final = 10 * 60 * 1000
MEMORY_LIMIT_BYTES: Final = 64 * 1024 * 1024
# Everything that shapes the encoded payloads; a change here must change the key.
_ENCODING: Final = b"kefu-prompt/1 opus 48k mono 32kb/s audio 20ms; pcmu 8k 20ms\0"
_OPUS_BITRATE: Final = 32_000
_BUILTIN_MOH_KEY: Final = "builtin-moh-1"

log = logging.getLogger(__name__)


class PromptError(Exception):
    """A prompt that cannot be played; ``code`` is stable.

    ``prompt_not_found``, ``prompt_unreadable`` (not audio, or unreadable),
    ``prompt_empty`` (no sound at all), ``prompt_too_long`` (over 10 minutes).
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True, eq=False)
class EncodedPrompt:
    """One prompt, ready to send: payload ``i`` of either list plays from ``20 * i`` ms.

    Shared by every call that plays it: treat the lists as read-only.
    """

    opus: list[bytes]
    pcmu: list[bytes]

    @property
    def duration_ms(self) -> int:
        """How long the prompt plays: 20 ms per packet (the source, rounded up to 20 ms)."""
        return len(self.opus) * 20

    @property
    def nbytes(self) -> int:
        return sum(map(len, self.opus)) + sum(map(len, self.pcmu))


# --------------------------------------------------------------------------- public API


async def load_prompt(path: Path, *, cache_dir: Path) -> EncodedPrompt:
    """The audio file at ``path``, encoded for playing (from the caches when it was loaded before)."""
    return await asyncio.to_thread(_load_prompt, Path(path), cache_dir)


async def tts_prompt(
    text: str, *, locale: str, voice: str | None = None, cache_dir: Path, rate: int = DEFAULT_RATE
) -> EncodedPrompt:
    """``text`` spoken by ``kefu.webrtc.tts.synthesize`` and encoded (both steps cached)."""
    path = await synthesize(text, locale=locale, voice=voice, cache_dir=cache_dir, rate=rate)
    return await load_prompt(path, cache_dir=cache_dir)


async def music_on_hold(settings: Settings) -> EncodedPrompt:
    """``settings.moh_file`` when set, else the built-in chime loop; the caller plays it in a loop.

    A configured file that cannot be played is logged as an error and the
    built-in loop plays instead: a bad setting must not leave a held caller
    in silence (or fail the hold).
    """
    if settings.moh_file is not None:
        try:
            return await load_prompt(settings.moh_file, cache_dir=settings.media_cache_dir)
        except PromptError as error:
            log.error(
                "music on hold %s cannot be played (%s: %s); playing the built-in loop",
                settings.moh_file,
                error.code,
                error.detail,
            )
    return await asyncio.to_thread(_cached, _BUILTIN_MOH_KEY, settings.media_cache_dir, chime_loop)


def joined(parts: list[EncodedPrompt]) -> EncodedPrompt:
    """Prompts played one after the other, as one (every payload is a whole 20 ms frame)."""
    return EncodedPrompt(
        opus=[payload for part in parts for payload in part.opus], pcmu=[payload for part in parts for payload in part.pcmu]
    )


def encode_pcm(pcm48k: Pcm) -> EncodedPrompt:
    """Encode 48 kHz mono PCM into 20 ms Opus and PCMU payloads (the last frame padded with silence).

    libopus's 6.5 ms lookahead is not flushed: the last 6.5 ms of the source
    are not in the Opus payloads, which is below what a listener notices.
    """
    encoder = OpusEncoder(bitrate=_OPUS_BITRATE, application="audio")
    downsample = Resampler48kTo8k()
    opus: list[bytes] = []
    pcmu: list[bytes] = []
    for frame in frames_of(pcm48k):
        opus.append(encoder.encode(frame))
        pcmu.append(mulaw_encode(downsample(frame)))
    return EncodedPrompt(opus=opus, pcmu=pcmu)


def chime_loop() -> Pcm:
    """The built-in music on hold: a soft bell-like arpeggio, 8 s, that loops seamlessly.

    Sine notes (fundamental, a quiet octave and twelfth) with a 15 ms attack
    and a 0.45 s exponential decay, at most -14 dBFS: gentle, and in the
    telephone band, so it survives PCMU.
    """
    seconds, tail = 8, 3
    notes = [  # (start in seconds, frequency in Hz): D5 B4, C5 A4, B4 G4, A4 D4
        (0.0, 587.33), (0.5, 493.88), (2.0, 523.25), (2.5, 440.00),
        (4.0, 493.88), (4.5, 392.00), (6.0, 440.00), (6.5, 293.66),
    ]  # fmt: skip
    signal = np.zeros((seconds + tail) * RATE)
    t = np.arange(tail * RATE) / RATE
    envelope = np.minimum(t / 0.015, 1.0) * np.exp(-t / 0.45)
    for start, frequency in notes:
        voice = sum(
            weight * np.sin(2 * np.pi * frequency * multiple * t)
            for multiple, weight in ((1, 1.0), (2, 0.25), (3, 0.08))
        )
        begin = int(start * RATE)
        signal[begin : begin + len(t)] += envelope * voice
    looped = signal[: seconds * RATE]
    looped[: tail * RATE] += signal[seconds * RATE :]  # the last notes ring on into the loop's start
    looped *= 0.2 * 32767 / np.abs(looped).max()
    return np.rint(looped).astype(np.int16)


# --------------------------------------------------------------------------- loading and caching


def _load_prompt(path: Path, cache_dir: Path) -> EncodedPrompt:
    return _cached(_content_key(path), cache_dir, lambda: _decode(path))


def _content_key(path: Path) -> str:
    digest = hashlib.sha256(_ENCODING)
    size = 0
    try:
        with path.open("rb") as source:
            while chunk := source.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        raise PromptError("prompt_not_found", f"no prompt file {path.name!r}") from None
    except OSError as error:
        raise PromptError("prompt_unreadable", f"cannot read prompt file {path.name!r}: {error.strerror}") from None
    if size == 0:
        raise PromptError("prompt_empty", f"prompt file {path.name!r} is empty")
    return digest.hexdigest()


def _cached(key: str, cache_dir: Path, make_pcm: Callable[[], Pcm]) -> EncodedPrompt:
    prompt = _memory.get(key)
    if prompt is not None:
        return prompt
    path = cache_dir / "prompts" / f"{key}.prompt"
    prompt = _PromptFile.read(path)
    if prompt is None:
        prompt = encode_pcm(make_pcm())
        _PromptFile.write(path, prompt)
    _memory.put(key, prompt)
    return prompt


def _decode(path: Path) -> Pcm:
    """``path`` decoded to 48 kHz mono int16, refused when it is not audio, silent-empty or too long."""
    limit = RATE * MAX_PROMPT_MS // 1000
    chunks: list[Pcm] = []
    total = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise PromptError("prompt_unreadable", f"{path.name!r} has no audio")
            if container.duration is not None and container.duration > MAX_PROMPT_MS * 1000:  # microseconds
                raise PromptError("prompt_too_long", f"{path.name!r} is longer than {MAX_PROMPT_MS // 60_000} minutes")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            for frame in itertools.chain(container.decode(container.streams.audio[0]), [None]):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    total += len(chunk)
                if total > limit:
                    raise PromptError(
                        "prompt_too_long", f"{path.name!r} is longer than {MAX_PROMPT_MS // 60_000} minutes"
                    )
    except av.error.FFmpegError as error:
        raise PromptError("prompt_unreadable", f"{path.name!r} is not audio PyAV can decode") from error
    if total == 0:
        raise PromptError("prompt_empty", f"{path.name!r} holds no audio")
    return np.concatenate(chunks)


class _PromptFile:
    """The on-disk form of an ``EncodedPrompt`` (little-endian).

    ``b"KPRM"``, format version (u16), packet count n (u32), n Opus payload
    lengths (u16 each), the Opus payloads back to back, then n PCMU payloads
    of 160 bytes.  Anything that does not parse exactly is treated as absent
    (and rewritten).
    """

    MAGIC = b"KPRM"
    VERSION = 1
    HEADER = struct.Struct("<4sHI")

    @classmethod
    def read(cls, path: Path) -> EncodedPrompt | None:
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if len(data) < cls.HEADER.size:
            return None
        magic, version, count = cls.HEADER.unpack_from(data)
        lengths_end = cls.HEADER.size + 2 * count
        if magic != cls.MAGIC or version != cls.VERSION or len(data) < lengths_end:
            return None
        lengths = np.frombuffer(data, dtype="<u2", count=count, offset=cls.HEADER.size).tolist()
        offsets = list(itertools.accumulate(lengths, initial=lengths_end))
        opus_end = offsets[-1]
        if len(data) != opus_end + count * PCMU_FRAME:
            return None
        opus = [data[offsets[i] : offsets[i + 1]] for i in range(count)]
        pcmu = [data[opus_end + i * PCMU_FRAME : opus_end + (i + 1) * PCMU_FRAME] for i in range(count)]
        return EncodedPrompt(opus=opus, pcmu=pcmu)

    @classmethod
    def write(cls, path: Path, prompt: EncodedPrompt) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        lengths = np.array([len(payload) for payload in prompt.opus], dtype="<u2")
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem[:16]}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as out:
                out.write(cls.HEADER.pack(cls.MAGIC, cls.VERSION, len(prompt.opus)))
                out.write(lengths.tobytes())
                out.writelines(prompt.opus)
                out.writelines(prompt.pcmu)
            os.replace(temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)


class PromptMemory:
    """A thread-safe LRU of encoded prompts bounded by their total payload bytes."""

    def __init__(self, limit_bytes: int) -> None:
        self._limit = limit_bytes
        self._entries: OrderedDict[str, EncodedPrompt] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> EncodedPrompt | None:
        with self._lock:
            prompt = self._entries.get(key)
            if prompt is not None:
                self._entries.move_to_end(key)
            return prompt

    def put(self, key: str, prompt: EncodedPrompt) -> None:
        size = prompt.nbytes
        with self._lock:
            if key in self._entries or size > self._limit:
                return
            self._entries[key] = prompt
            self._bytes += size
            while self._bytes > self._limit:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


_memory = PromptMemory(MEMORY_LIMIT_BYTES)


def clear_memory_cache() -> None:
    """Forget the prompts held in memory (the disk cache stays): for tests, and after editing cache files."""
    _memory.clear()
