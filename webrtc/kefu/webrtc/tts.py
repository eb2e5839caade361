"""Text to speech through espeak-ng, cached on disk: IVR and announcement prompts from text.

``synthesize`` turns a text into a WAV file (espeak-ng's own: 22.05 kHz mono,
16-bit) under ``<cache_dir>/tts/<key>.wav``, where the key is a SHA-256 of the
engine's version, the text, the voice, the locale and the speaking rate.  The
same request answers from the cache without running espeak-ng.  A file is
written under a temporary name and renamed into place, so concurrent requests
for the same text (in one process or several) each get a complete file.

espeak-ng runs as a child process with an argument list (never a shell) and
reads the text from stdin, so no text can become an option or a file name.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
import unicodedata
from pathlib import Path
from typing import Final

ESPEAK_NG: Final = "espeak-ng"
VOICES: Final = frozenset({"cmn", "yue", "en-us", "en-gb"})
LOCALE_VOICES: Final = {
    "zh-cn": "cmn",
    "zh": "cmn",
    "zh-hk": "yue",
    "yue": "yue",
    "en": "en-us",
    "en-us": "en-us",
    "en-gb": "en-gb",
}
MAX_TEXT_CHARS: Final = 2000
DEFAULT_RATE: Final = 160  # words per minute (espeak-ng's default is 175; a little slower is clearer on a phone)
MIN_RATE, MAX_RATE = 80, 450
DEFAULT_TIMEOUT: Final = 30.0  # seconds; 2000 characters take about 2 s
_WAV_HEADER_BYTES: Final = 44


class TtsError(Exception):
    """Speech could not be made; ``code`` is stable (``tts_unknown_voice``, ``tts_invalid_text``, ...)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def resolve_voice(locale: str, voice: str | None = None) -> str:
    """The espeak-ng voice for ``locale`` (``zh-CN``, ``en_GB``, ...), or ``voice`` when it is given and known."""
    normalized = locale.strip().lower().replace("_", "-")
    if normalized not in LOCALE_VOICES:
        raise TtsError(
            "tts_unknown_voice", f"no voice for locale {locale!r}; known: {', '.join(sorted(LOCALE_VOICES))}"
        )
    if voice is None:
        return LOCALE_VOICES[normalized]
    if voice not in VOICES:
        raise TtsError("tts_unknown_voice", f"unknown voice {voice!r}; known: {', '.join(sorted(VOICES))}")
    return voice


def _clean_text(text: str) -> str:
    """``text`` with control characters as spaces and the ends trimmed; refused when empty or too long."""
    cleaned = "".join(" " if unicodedata.category(char) == "Cc" else char for char in text).strip()
    if not cleaned:
        raise TtsError("tts_invalid_text", "the text to speak is empty")
    if len(cleaned) > MAX_TEXT_CHARS:
        raise TtsError("tts_invalid_text", f"the text to speak is {len(cleaned)} characters; at most {MAX_TEXT_CHARS}")
    return cleaned


async def synthesize(
    text: str,
    *,
    locale: str,
    voice: str | None = None,
    cache_dir: Path,
    rate: int = DEFAULT_RATE,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """A WAV file of ``text`` spoken in ``locale`` (or ``voice``), from the cache when it was made before."""
    chosen = resolve_voice(locale, voice)
    spoken = _clean_text(text)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise TtsError("tts_invalid_rate", f"speaking rate is {MIN_RATE}-{MAX_RATE} words per minute, got {rate}")
    version = await engine_version(timeout=timeout)
    key_fields = [version, spoken, chosen, locale.strip().lower().replace("_", "-"), rate]
    key = hashlib.sha256(json.dumps(key_fields, ensure_ascii=False).encode()).hexdigest()
    folder = cache_dir / "tts"
    path = folder / f"{key}.wav"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{key[:16]}.", suffix=".tmp")
    os.close(descriptor)
    try:
        await _run(["-v", chosen, "-s", str(rate), "-b", "1", "-w", temporary, "--stdin"], spoken, timeout)
        if os.path.getsize(temporary) <= _WAV_HEADER_BYTES:
            raise TtsError("tts_failed", "espeak-ng produced no audio")
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return path


_engine_version: str | None = None


async def engine_version(*, timeout: float = DEFAULT_TIMEOUT) -> str:
    """espeak-ng's version line (part of every cache key, so an upgrade re-speaks), asked once per process."""
    global _engine_version
    if _engine_version is None:
        _engine_version = (await _run(["--version"], "", timeout)).strip()
    return _engine_version


async def _run(arguments: list[str], stdin: str, timeout: float) -> str:
    try:
        process = await asyncio.create_subprocess_exec(
            ESPEAK_NG,
            *arguments,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as error:
        raise TtsError("tts_failed", f"cannot run {ESPEAK_NG}: {error.strerror}") from error
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(stdin.encode()), timeout)
    except BaseException as error:  # a timeout, or the caller cancelled: never leave the child running
        if process.returncode is None:
            process.kill()
            await process.wait()
        if isinstance(error, TimeoutError):
            raise TtsError("tts_failed", f"{ESPEAK_NG} took longer than {timeout:g} s") from None
        raise
    if process.returncode != 0:
        reason = stderr.decode(errors="replace").strip()[:200]
        raise TtsError("tts_failed", f"{ESPEAK_NG} exited with {process.returncode}: {reason}")
    return stdout.decode(errors="replace")
