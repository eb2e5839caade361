"""IVR media primitives inside a call: prompts (files and text-to-speech) and DTMF from a caller."""

from __future__ import annotations

import asyncio
import time
import uuid
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media_support import RATE, ClientPeer, ToneTrack, dominant_frequency, rms

from kefu.webrtc.audio import tone
from kefu.webrtc.dtmf import dtmf_sequence
from kefu.webrtc.media import MediaPlane, OfferRejected

FRAME = 960


class PcmTrack(ToneTrack):
    """A microphone that plays given samples once, then silence, paced like a device."""

    def __init__(self, samples: np.ndarray) -> None:
        super().__init__(0.0)
        self.samples = samples

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        start = frame.pts
        chunk = self.samples[start:start + FRAME]
        data = np.zeros(FRAME, dtype=np.int16)
        data[: len(chunk)] = chunk
        out = av.AudioFrame.from_ndarray(data.reshape(1, -1), format="s16", layout="mono")
        out.sample_rate, out.pts, out.time_base = RATE, start, Fraction(1, RATE)
        return out


async def connect(media: MediaPlane, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str, peer: ClientPeer) -> None:
    answer = await media.answer_leg(tenant_id=tenant_id, call_id=call_id, party=party, offer_sdp=await peer.offer())
    await peer.accept(answer)
    await asyncio.wait_for(peer.connected.wait(), 10)


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype(np.int16).tobytes())
    return path


async def test_a_prompt_file_plays_to_one_party_and_reports_when_done(media: MediaPlane, tmp_path: Path) -> None:
    done: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    async def on_prompt_done(tenant_id: uuid.UUID, call_id: uuid.UUID, party: str, prompt_id: str) -> None:
        await done.put((party, prompt_id))

    media.on_prompt_done = on_prompt_done
    tenant_id, call_id = uuid.uuid4(), uuid.uuid4()
    caller, agent = ClientPeer(440), ClientPeer(1000)
    await connect(media, tenant_id, call_id, "caller", caller)
    await connect(media, tenant_id, call_id, "agent", agent)
    prompt = write_wav(tmp_path / "welcome.wav", tone(600, 1500, 0.4))

    started = time.monotonic()
    length = await media.play_prompt(tenant_id=tenant_id, call_id=call_id, party="caller", prompt_id="welcome", file=str(prompt))
    assert length == 1500
    heard = await caller.listen(0.8)
    assert dominant_frequency(heard[-24_000:]) == pytest.approx(600, abs=3)
    assert await asyncio.wait_for(done.get(), 5) == ("caller", "welcome")
    assert time.monotonic() - started == pytest.approx(1.5, abs=0.4)
    await caller.close()
    await agent.close()


async def test_prompt_parts_play_one_after_the_other_as_one_prompt(media: MediaPlane, tmp_path: Path) -> None:
    tenant_id, call_id = uuid.uuid4(), uuid.uuid4()
    caller = ClientPeer(440)
    await connect(media, tenant_id, call_id, "caller", caller)
    first = write_wav(tmp_path / "first.wav", tone(600, 1000, 0.4))
    second = write_wav(tmp_path / "second.wav", tone(1300, 1000, 0.4))
    length = await media.play_prompt(tenant_id=tenant_id, call_id=call_id, party="caller", prompt_id="both",
                                     parts=[{"file": str(first)}, {"text": "and", "locale": "en-US"}, {"file": str(second)}])
    spoken = await media.play_prompt(tenant_id=tenant_id, call_id=call_id, party="caller", prompt_id="x", text="and", locale="en-US")
    assert length == 2000 + spoken
    await media.play_prompt(tenant_id=tenant_id, call_id=call_id, party="caller", prompt_id="both", parts=[{"file": str(first)}, {"file": str(second)}])
    heard = await caller.listen(1.7)  # the first file, then the second, in that order
    assert dominant_frequency(heard[int(0.2 * 48_000):int(0.5 * 48_000)]) == pytest.approx(600, abs=5)
    assert dominant_frequency(heard[int(1.3 * 48_000):int(1.6 * 48_000)]) == pytest.approx(1300, abs=5)
    for bad in ([], [{"file": str(first), "text": "x"}], [{"voice": "x"}]):
        with pytest.raises(OfferRejected) as refused:
            await media.play_prompt(tenant_id=tenant_id, call_id=call_id, party="caller", prompt_id="x", parts=bad)
        assert refused.value.code == "invalid_prompt"
    await caller.close()


async def test_text_to_speech_prompts_in_english_and_chinese_are_heard(media: MediaPlane) -> None:
    tenant_id, call_id = uuid.uuid4(), uuid.uuid4()
    caller = ClientPeer(440)
    await connect(media, tenant_id, call_id, "caller", caller)
    for text, locale in (("Welcome to Kefu. Please hold.", "en-US"), ("您好，欢迎致电客服中心", "zh-CN")):
        length = await media.play_prompt(tenant_id=tenant_id, call_id=call_id, party="caller", prompt_id=locale, text=text, locale=locale)
        assert length > 800
        speech = await caller.listen(0.8)
        assert rms(speech) > 300  # speech, not silence
    with pytest.raises(OfferRejected) as unknown:
        await media.play_prompt(tenant_id=tenant_id, call_id=call_id, party="caller", prompt_id="x", text="hi", locale="tlh")
    assert unknown.value.code == "tts_unknown_voice"
    with pytest.raises(OfferRejected) as missing:
        await media.play_prompt(tenant_id=tenant_id, call_id=call_id, party="caller", prompt_id="x", file="/nonexistent.wav")
    assert missing.value.code.startswith("prompt_")
    await caller.close()


async def test_in_band_dtmf_from_the_caller_is_detected_once_per_key(media: MediaPlane) -> None:
    digits: asyncio.Queue[str] = asyncio.Queue()

    async def on_dtmf(tenant_id: uuid.UUID, call_id: uuid.UUID, party: str, digit: str) -> None:
        assert party == "caller"
        await digits.put(digit)

    media.on_dtmf = on_dtmf
    tenant_id, call_id = uuid.uuid4(), uuid.uuid4()
    caller = ClientPeer(440)
    # A second of silence first: the keys start well after detection is switched on.
    lead_in = np.zeros(RATE, dtype=np.int16)
    caller.pc.getSenders()[0].replaceTrack(PcmTrack(np.concatenate([lead_in, dtmf_sequence("12#9", tone_ms=120, gap_ms=120)])))
    await connect(media, tenant_id, call_id, "caller", caller)
    await media.listen_dtmf(tenant_id=tenant_id, call_id=call_id, party="caller")
    got = [await asyncio.wait_for(digits.get(), 10) for _ in range(4)]
    assert got == ["1", "2", "#", "9"]
    await caller.close()


async def test_rfc4733_key_presses_from_the_caller_are_reported_once_each(media: MediaPlane) -> None:
    from rtp_support import RawPeer, opus_packets

    from kefu.webrtc.dtmf import build_telephone_event

    digits: asyncio.Queue[str] = asyncio.Queue()

    async def on_dtmf(tenant_id: uuid.UUID, call_id: uuid.UUID, party: str, digit: str) -> None:
        await digits.put(digit)

    media.on_dtmf = on_dtmf
    tenant_id, call_id = uuid.uuid4(), uuid.uuid4()
    event_pt = 101
    caller = RawPeer()
    answer = await media.answer_leg(tenant_id=tenant_id, call_id=call_id, party="caller", offer_sdp=await caller.offer(telephone_event=event_pt))
    assert "telephone-event/8000" in answer
    await caller.accept(answer)
    await asyncio.wait_for(caller.started.wait(), 10)
    audio = opus_packets(1)[0]
    for key in "7#":
        caller.send(audio)
        at = caller.timestamp
        # Start, two updates, and the end packet sent three times (RFC 4733 section 2.5.1.4).
        for duration, end in ((160, False), (320, False), (480, False), (640, True), (640, True), (640, True)):
            payload = build_telephone_event(key, duration=duration, end=end)
            assert caller.session.send_rtp(payload, sequence=caller.sequence, timestamp=at, marker=duration == 160, payload_type=event_pt)
            caller.sequence = (caller.sequence + 1) & 0xFFFF
        caller.timestamp += 960
    assert [await asyncio.wait_for(digits.get(), 5) for _ in range(2)] == ["7", "#"]
    caller.send(audio)
    await media.end_call(tenant_id=tenant_id, call_id=call_id)
    assert digits.empty()  # each key once, retransmitted end packets included
    await caller.close()
