"""A PCMU leg and an Opus leg in one call: transcoding happens only between them, both ways."""

from __future__ import annotations

import asyncio
import uuid

import av
import numpy as np
import pytest
from aiortc import RTCRtpSender
from media_support import ClientPeer, dominant_frequency

from kefu.webrtc.media import MediaPlane

CALLER_HZ = 440.0
AGENT_HZ = 1000.0


def pcmu_only(peer: ClientPeer) -> ClientPeer:
    """A gateway-like peer that offers G.711 mu-law and nothing else."""
    pcmu = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == "audio/pcmu"]
    for transceiver in peer.pc.getTransceivers():
        transceiver.setCodecPreferences(pcmu)
    return peer


async def connect(media: MediaPlane, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str, peer: ClientPeer) -> str:
    offer = await peer.offer()
    answer = await media.answer_leg(tenant_id=tenant_id, call_id=call_id, party=party, offer_sdp=offer)
    await peer.accept(answer)
    await asyncio.wait_for(peer.connected.wait(), 10)
    return answer


async def test_a_pcmu_caller_and_an_opus_agent_hear_each_other_and_each_is_recorded_in_its_codec(media: MediaPlane) -> None:
    tenant_id, call_id = uuid.uuid4(), uuid.uuid4()
    caller, agent = pcmu_only(ClientPeer(CALLER_HZ)), ClientPeer(AGENT_HZ)
    caller_answer = await connect(media, tenant_id, call_id, "caller", caller)
    agent_answer = await connect(media, tenant_id, call_id, "agent", agent)
    assert "PCMU/8000" in caller_answer and "opus" not in caller_answer.lower()
    assert "opus/48000" in agent_answer.lower()
    await media.bridge(tenant_id=tenant_id, call_id=call_id)

    heard_by_caller, heard_by_agent = await asyncio.gather(caller.listen(1.0), agent.listen(1.0))
    # aiortc's PCMU decoder hands 8 kHz frames to the listener.
    assert dominant_frequency(heard_by_caller[-4000:], rate=8000) == pytest.approx(AGENT_HZ, abs=5)
    assert dominant_frequency(heard_by_agent[-24000:]) == pytest.approx(CALLER_HZ, abs=3)

    files = {f.party: f for f in await media.end_call(tenant_id=tenant_id, call_id=call_id)}
    assert files["caller"].relative_path.endswith("caller.wav") and files["caller"].media_type == "audio/wav"
    assert files["agent"].relative_path.endswith("agent.ogg")
    with av.open(str(media.settings.recordings_dir / files["caller"].relative_path)) as container:
        assert container.streams.audio[0].codec_context.name == "pcm_mulaw"
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert dominant_frequency(samples[-8000:], rate=8000) == pytest.approx(CALLER_HZ, abs=3)
    await caller.close()
    await agent.close()
