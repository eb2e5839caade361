"""Text to speech with the real espeak-ng: voices per locale, the cache, safe arguments, stable error codes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import numpy as np
import pytest
from media_support import rms

from kefu.webrtc import tts
from kefu.webrtc.tts import TtsError, resolve_voice, synthesize


def decode_wav(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].codec_context.sample_rate
        samples = np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)])
    return samples, rate


def leftovers(cache_dir: Path) -> list[str]:
    return sorted(path.name for path in (cache_dir / "tts").iterdir() if not path.name.endswith(".wav"))


@pytest.mark.parametrize(
    ("locale", "text", "seconds"),
    [
        ("en-US", "Thank you for calling. Please hold while we connect you to an agent.", (2.5, 7)),
        ("en-GB", "Your call is important to us.", (1, 4)),
        ("zh-CN", "您好，欢迎致电客服中心，请稍候。", (1.5, 7)),
        ("zh-HK", "你好，歡迎致電客服中心。", (1, 6)),
    ],
)
async def test_speech_for_a_locale_is_a_wav_of_plausible_length(
    tmp_path: Path, locale: str, text: str, seconds: tuple[float, float]
) -> None:
    path = await synthesize(text, locale=locale, cache_dir=tmp_path)

    assert path.parent == tmp_path / "tts"
    assert path.suffix == ".wav"
    samples, rate = decode_wav(path)
    assert seconds[0] < len(samples) / rate < seconds[1]
    assert rms(samples) > 300  # speech, not silence
    assert leftovers(tmp_path) == []


async def test_the_same_request_again_is_answered_from_the_cache_without_running_espeak(tmp_path: Path) -> None:
    first = await synthesize("Press one for sales.", locale="en", cache_dir=tmp_path)
    before = first.stat()

    again = await synthesize("Press one for sales.", locale="en-US", voice="en-us", cache_dir=tmp_path)

    # espeak-ng writes a new file that replaces the old one: a second run would change the inode and mtime.
    assert again != first  # the locale is part of the key ...
    again = await synthesize("Press one for sales.", locale="en", cache_dir=tmp_path)
    assert again == first  # ... and the same request finds its file
    after = again.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)


async def test_the_cache_answers_even_when_espeak_is_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = await synthesize("Goodbye.", locale="en-GB", cache_dir=tmp_path)
    monkeypatch.setattr(tts, "ESPEAK_NG", str(tmp_path / "no-such-espeak"))

    assert await synthesize("Goodbye.", locale="en-GB", cache_dir=tmp_path) == first
    with pytest.raises(TtsError) as raised:
        await synthesize("Goodbye again.", locale="en-GB", cache_dir=tmp_path)
    assert raised.value.code == "tts_failed"


async def test_text_voice_and_rate_each_make_their_own_file(tmp_path: Path) -> None:
    base = await synthesize("One moment please.", locale="en", cache_dir=tmp_path)
    paths = {
        base,
        await synthesize("One moment, please.", locale="en", cache_dir=tmp_path),
        await synthesize("One moment please.", locale="en", voice="en-gb", cache_dir=tmp_path),
        await synthesize("One moment please.", locale="en", rate=120, cache_dir=tmp_path),
    }
    assert len(paths) == 4
    slow, _ = decode_wav(await synthesize("One moment please.", locale="en", rate=120, cache_dir=tmp_path))
    normal, _ = decode_wav(base)
    assert len(slow) > 1.15 * len(normal)


async def test_concurrent_requests_for_the_same_text_share_one_complete_file(tmp_path: Path) -> None:
    paths = await asyncio.gather(*(synthesize("Please hold.", locale="zh", cache_dir=tmp_path) for _ in range(4)))

    assert len(set(paths)) == 1
    samples, rate = decode_wav(paths[0])
    assert len(samples) > 0.3 * rate
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("text", ["--version", "-w {folder}/owned.wav hello", "-- -v yue"])
async def test_text_that_looks_like_an_option_is_spoken_not_obeyed(tmp_path: Path, text: str) -> None:
    path = await synthesize(text.format(folder=tmp_path), locale="en", cache_dir=tmp_path)

    samples, rate = decode_wav(path)
    assert len(samples) > 0.5 * rate
    assert rms(samples) > 300
    assert not (tmp_path / "owned.wav").exists()


@pytest.mark.parametrize("text", ["", "   \n\t", "\x00\x07", "x" * 2001])
async def test_empty_or_too_long_text_is_tts_invalid_text(tmp_path: Path, text: str) -> None:
    with pytest.raises(TtsError) as raised:
        await synthesize(text, locale="en", cache_dir=tmp_path)
    assert raised.value.code == "tts_invalid_text"
    assert not (tmp_path / "tts").exists()


@pytest.mark.parametrize(("locale", "voice"), [("fr-FR", None), ("", None), ("en", "klingon"), ("en", "en-US")])
async def test_an_unknown_locale_or_voice_is_tts_unknown_voice(tmp_path: Path, locale: str, voice: str | None) -> None:
    with pytest.raises(TtsError) as raised:
        await synthesize("Hello.", locale=locale, voice=voice, cache_dir=tmp_path)
    assert raised.value.code == "tts_unknown_voice"


def test_locales_map_to_espeak_voices() -> None:
    assert [resolve_voice(locale) for locale in ("zh-CN", "zh", "zh_hk", "yue", "en", "en-US", "EN-gb")] == [
        "cmn",
        "cmn",
        "yue",
        "yue",
        "en-us",
        "en-us",
        "en-gb",
    ]
    assert resolve_voice("en", "yue") == "yue"


async def test_espeak_running_past_its_timeout_is_tts_failed_and_leaves_no_file(tmp_path: Path) -> None:
    await tts.engine_version()  # asked once per process; the timeout below is for the synthesis
    with pytest.raises(TtsError) as raised:
        await synthesize(
            "A long sentence that cannot be spoken in a millisecond. " * 20,
            locale="en",
            cache_dir=tmp_path,
            timeout=0.001,
        )
    assert raised.value.code == "tts_failed"
    assert list((tmp_path / "tts").iterdir()) == []


async def test_a_speaking_rate_out_of_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TtsError) as raised:
        await synthesize("Hello.", locale="en", rate=1000, cache_dir=tmp_path)
    assert raised.value.code == "tts_invalid_rate"
