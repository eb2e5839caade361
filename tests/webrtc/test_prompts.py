"""Prompts: audio files encoded once into Opus and PCMU payloads, the caches, bad files, music on hold, TTS."""

from __future__ import annotations

import logging
import re
import wave
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from media_support import dominant_frequency, rms

from kefu.platform.settings import Settings, load_settings
from kefu.webrtc.audio import PCMU_FRAME, OpusDecoder, frames_of, mulaw_decode, tone
from kefu.webrtc.dtmf import DtmfDetector
from kefu.webrtc.prompts import (
    EncodedPrompt,
    PromptError,
    PromptMemory,
    clear_memory_cache,
    encode_pcm,
    load_prompt,
    music_on_hold,
    tts_prompt,
)


@pytest.fixture(autouse=True)
def fresh_memory_cache() -> Iterator[None]:
    """The memory cache is process-wide: each test starts (and leaves) it empty."""
    clear_memory_cache()
    yield
    clear_memory_cache()


def write_wav(path: Path, frequency: float, seconds: float, *, rate: int = 48_000, channels: int = 1) -> Path:
    samples = tone(frequency, int(seconds * 1000), 0.25, rate=rate)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.repeat(samples, channels).astype("<i2").tobytes())
    return path


def write_encoded(path: Path, codec: str, frequency: float, seconds: float, *, rate: int) -> Path:
    """A tone encoded with PyAV into ``path``'s container (Ogg Opus, MP3, FLAC...)."""
    samples = tone(frequency, int(seconds * 1000), 0.25, rate=rate)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        size = stream.codec_context.frame_size or 1024
        for start in range(0, len(samples), size):
            frame = av.AudioFrame.from_ndarray(
                samples[start : start + size].reshape(1, -1), format="s16", layout="mono"
            )
            frame.sample_rate = rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def decode_opus(prompt: EncodedPrompt) -> np.ndarray:
    decoder = OpusDecoder()
    return np.concatenate([decoder.decode(payload) for payload in prompt.opus])


def decode_pcmu(prompt: EncodedPrompt) -> np.ndarray:
    return mulaw_decode(b"".join(prompt.pcmu))


def cache_files(cache_dir: Path) -> list[str]:
    return sorted(path.name for path in (cache_dir / "prompts").iterdir())


async def test_a_wav_prompt_is_one_opus_and_one_pcmu_payload_per_20ms_that_decode_to_its_tone(tmp_path: Path) -> None:
    prompt = await load_prompt(write_wav(tmp_path / "menu.wav", 440, 1.0), cache_dir=tmp_path / "cache")

    assert len(prompt.opus) == len(prompt.pcmu) == 50
    assert prompt.duration_ms == 1000
    assert all(len(payload) == PCMU_FRAME for payload in prompt.pcmu)
    opus = decode_opus(prompt)
    assert dominant_frequency(opus[4_800:-4_800]) == pytest.approx(440, abs=3)
    assert rms(opus[4_800:-4_800]) == pytest.approx(rms(tone(440, 1000, 0.25)), rel=0.1)
    pcmu = decode_pcmu(prompt)
    assert dominant_frequency(pcmu[800:-800], rate=8000) == pytest.approx(440, abs=3)
    assert rms(pcmu[800:-800]) == pytest.approx(rms(tone(440, 1000, 0.25)), rel=0.05)


async def test_a_prompt_that_is_not_a_whole_number_of_frames_is_padded_to_the_next_20ms(tmp_path: Path) -> None:
    prompt = await load_prompt(write_wav(tmp_path / "short.wav", 440, 0.99, rate=8000), cache_dir=tmp_path)
    assert prompt.duration_ms == 1000
    assert len(prompt.opus) == len(prompt.pcmu) == 50


@pytest.mark.parametrize(
    ("name", "codec", "rate"),
    [("menu.ogg", "libopus", 48_000), ("menu.mp3", "libmp3lame", 44_100), ("menu.flac", "flac", 16_000)],
)
async def test_ogg_mp3_and_flac_prompts_are_resampled_and_encoded(
    tmp_path: Path, name: str, codec: str, rate: int
) -> None:
    prompt = await load_prompt(write_encoded(tmp_path / name, codec, 660, 2.0, rate=rate), cache_dir=tmp_path)

    assert 2000 <= prompt.duration_ms <= 2100  # MP3 and Ogg Opus add encoder padding
    assert dominant_frequency(decode_opus(prompt)[9_600:-9_600]) == pytest.approx(660, abs=3)
    assert dominant_frequency(decode_pcmu(prompt)[1_600:-1_600], rate=8000) == pytest.approx(660, abs=3)


async def test_a_stereo_prompt_is_mixed_down_to_mono(tmp_path: Path) -> None:
    prompt = await load_prompt(write_wav(tmp_path / "s.wav", 500, 1.0, rate=44_100, channels=2), cache_dir=tmp_path)
    opus = decode_opus(prompt)[4_800:-4_800]
    assert dominant_frequency(opus) == pytest.approx(500, abs=3)
    assert rms(opus) > 0.5 * rms(tone(500, 1000, 0.25))


async def test_loading_a_prompt_again_reuses_the_memory_then_the_disk_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    source = write_wav(tmp_path / "welcome.wav", 880, 0.5)
    first = await load_prompt(source, cache_dir=cache)
    [cached] = cache_files(cache)
    assert re.fullmatch(r"[0-9a-f]{64}\.prompt", cached)
    before = (cache / "prompts" / cached).stat()

    assert await load_prompt(source, cache_dir=cache) is first
    copy = tmp_path / "welcome-copy.wav"
    copy.write_bytes(source.read_bytes())
    assert await load_prompt(copy, cache_dir=cache) is first  # keyed by content, not by name

    clear_memory_cache()  # as after a restart
    from_disk = await load_prompt(source, cache_dir=cache)
    assert from_disk is not first
    assert (from_disk.opus, from_disk.pcmu) == (first.opus, first.pcmu)
    after = (cache / "prompts" / cached).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # read, not re-encoded
    assert cache_files(cache) == [cached]


async def test_a_changed_file_is_a_new_prompt(tmp_path: Path) -> None:
    source = write_wav(tmp_path / "menu.wav", 440, 0.5)
    first = await load_prompt(source, cache_dir=tmp_path / "cache")
    write_wav(source, 1000, 0.5)

    second = await load_prompt(source, cache_dir=tmp_path / "cache")

    assert dominant_frequency(decode_opus(second)[4_800:]) == pytest.approx(1000, abs=5)
    assert second.opus != first.opus
    assert len(cache_files(tmp_path / "cache")) == 2


async def test_a_damaged_cache_file_is_encoded_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    source = write_wav(tmp_path / "menu.wav", 440, 0.5)
    first = await load_prompt(source, cache_dir=cache)
    [cached] = cache_files(cache)
    damaged = cache / "prompts" / cached
    damaged.write_bytes(damaged.read_bytes()[:-7])
    clear_memory_cache()

    again = await load_prompt(source, cache_dir=cache)

    assert (again.opus, again.pcmu) == (first.opus, first.pcmu)
    assert damaged.stat().st_size == 4 + 2 + 4 + 2 * 25 + sum(map(len, first.opus)) + 25 * PCMU_FRAME


async def test_a_missing_file_is_prompt_not_found(tmp_path: Path) -> None:
    with pytest.raises(PromptError) as raised:
        await load_prompt(tmp_path / "nowhere.wav", cache_dir=tmp_path)
    assert raised.value.code == "prompt_not_found"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"this is a text file, not audio\n" * 10, "prompt_unreadable"),
        (bytes(range(256)) * 16, "prompt_unreadable"),
        (b"", "prompt_empty"),
    ],
    ids=["text", "binary", "zero-bytes"],
)
async def test_a_file_that_is_not_audio_is_refused_with_a_stable_code(
    tmp_path: Path, content: bytes, code: str
) -> None:
    path = tmp_path / "upload.wav"
    path.write_bytes(content)
    with pytest.raises(PromptError) as raised:
        await load_prompt(path, cache_dir=tmp_path / "cache")
    assert raised.value.code == code
    assert not (tmp_path / "cache").exists()


async def test_a_wav_without_samples_is_prompt_empty(tmp_path: Path) -> None:
    with pytest.raises(PromptError) as raised:
        await load_prompt(write_wav(tmp_path / "empty.wav", 440, 0.0), cache_dir=tmp_path)
    assert raised.value.code == "prompt_empty"


async def test_a_folder_is_prompt_unreadable(tmp_path: Path) -> None:
    with pytest.raises(PromptError) as raised:
        await load_prompt(tmp_path, cache_dir=tmp_path / "cache")
    assert raised.value.code == "prompt_unreadable"


async def test_a_prompt_over_ten_minutes_is_prompt_too_long(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(2 * 8000 * (10 * 60 + 1)))  # ten minutes and a second of silence
    with pytest.raises(PromptError) as raised:
        await load_prompt(path, cache_dir=tmp_path / "cache")
    assert raised.value.code == "prompt_too_long"


def test_the_memory_cache_evicts_the_least_recently_used_prompt_beyond_its_byte_limit() -> None:
    prompts = {name: encode_pcm(tone(440, 200, 0.25)) for name in "abc"}
    size = prompts["a"].nbytes
    memory = PromptMemory(limit_bytes=2 * size)
    memory.put("a", prompts["a"])
    memory.put("b", prompts["b"])
    assert memory.get("a") is prompts["a"]  # now "b" is the least recently used

    memory.put("c", prompts["c"])

    assert ("a" in memory, "b" in memory, "c" in memory) == (True, False, True)
    assert len(memory) == 2


def settings_with(tmp_path: Path, **env: str) -> Settings:
    return load_settings({"KEFU_DATA_DIR": str(tmp_path / "data"), **env})


async def test_built_in_music_on_hold_is_a_gentle_audible_8_second_loop(tmp_path: Path) -> None:
    settings = settings_with(tmp_path)
    music = await music_on_hold(settings)

    assert music.duration_ms == 8000
    audio = decode_opus(music)
    assert rms(audio) > 0.02 * 32767  # audible ...
    assert np.abs(audio).max() < 0.3 * 32767  # ... and soft
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    frequencies = np.fft.rfftfreq(len(audio), 1 / 48_000)
    assert spectrum[(frequencies > 250) & (frequencies < 2_000)].sum() > 0.95 * spectrum.sum()  # no harsh highs
    assert rms(decode_pcmu(music)) > 0.02 * 32767
    assert len(cache_files(settings.media_cache_dir)) == 1
    assert await music_on_hold(settings) is music


async def test_music_on_hold_never_looks_like_a_key_press(tmp_path: Path) -> None:
    music = await music_on_hold(settings_with(tmp_path))
    audio = decode_opus(music)
    detector = DtmfDetector(48_000)
    assert [digit for frame in frames_of(np.concatenate((audio, audio))) for digit in detector.feed(frame)] == []


async def test_music_on_hold_plays_the_configured_file(tmp_path: Path) -> None:
    moh = write_wav(tmp_path / "moh.wav", 523, 3.0)
    music = await music_on_hold(settings_with(tmp_path, KEFU_MOH_FILE=str(moh)))

    assert music.duration_ms == 3000
    assert dominant_frequency(decode_opus(music)[4_800:]) == pytest.approx(523, abs=3)


async def test_music_on_hold_falls_back_to_the_built_in_loop_when_the_file_cannot_be_played(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "moh.wav"
    broken.write_text("not audio")
    with caplog.at_level(logging.ERROR, logger="kefu.webrtc.prompts"):
        music = await music_on_hold(settings_with(tmp_path, KEFU_MOH_FILE=str(broken)))

    assert music.duration_ms == 8000
    assert [record.getMessage() for record in caplog.records] == [
        f"music on hold {broken} cannot be played (prompt_unreadable: 'moh.wav' is not audio PyAV can decode); "
        "playing the built-in loop"
    ]


async def test_a_tts_prompt_is_speech_encoded_once(tmp_path: Path) -> None:
    prompt = await tts_prompt("Welcome to Kefu. Please hold.", locale="en-US", cache_dir=tmp_path)

    assert 1_000 < prompt.duration_ms < 5_000
    assert len(prompt.opus) == len(prompt.pcmu) == prompt.duration_ms // 20
    assert rms(decode_opus(prompt)) > 300
    assert await tts_prompt("Welcome to Kefu. Please hold.", locale="en-US", cache_dir=tmp_path) is prompt
    assert len(cache_files(tmp_path)) == 1
    assert len(list((tmp_path / "tts").glob("*.wav"))) == 1
