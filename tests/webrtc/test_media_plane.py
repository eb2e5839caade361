"""The media plane with two in-process client peers: a 440 Hz caller and a 1000 Hz agent."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from media_support import ClientPeer, decode_recording, dominant_frequency

from kefu.webrtc.media import MediaPlane, OfferRejected

CALLER_HZ = 440.0
AGENT_HZ = 1000.0


@dataclass
class Call:
    tenant_id: uuid.UUID
    call_id: uuid.UUID
    caller: ClientPeer
    agent: ClientPeer


async def connect(media: MediaPlane, call: Call, party: str, peer: ClientPeer) -> None:
    answer = await media.answer_leg(
        tenant_id=call.tenant_id, call_id=call.call_id, party=party, offer_sdp=await peer.offer()  # type: ignore[arg-type]
    )
    await peer.accept(answer)


@pytest.fixture
async def call(media: MediaPlane) -> AsyncIterator[Call]:
    call = Call(uuid.uuid4(), uuid.uuid4(), ClientPeer(CALLER_HZ), ClientPeer(AGENT_HZ))
    await connect(media, call, "caller", call.caller)
    await connect(media, call, "agent", call.agent)
    yield call
    await call.caller.close()
    await call.agent.close()


async def test_bridged_call_carries_each_partys_tone_both_ways_and_records_each_party(
    media: MediaPlane, call: Call
) -> None:
    bridged_at = time.monotonic()
    await media.bridge(tenant_id=call.tenant_id, call_id=call.call_id)
    await media.bridge(tenant_id=call.tenant_id, call_id=call.call_id)  # idempotent

    heard_by_caller, heard_by_agent = await asyncio.gather(call.caller.listen(1.0), call.agent.listen(1.0))
    assert dominant_frequency(heard_by_caller) == pytest.approx(AGENT_HZ, abs=2)
    assert dominant_frequency(heard_by_agent) == pytest.approx(CALLER_HZ, abs=2)

    files = await media.end_call(tenant_id=call.tenant_id, call_id=call.call_id)
    wall_ms = (time.monotonic() - bridged_at) * 1000

    assert sorted(f.party for f in files) == ["agent", "caller"]
    for recorded in files:
        path = media.settings.recordings_dir / recorded.relative_path
        assert recorded.relative_path == f"{call.tenant_id}/{call.call_id}/{recorded.party}.ogg"
        assert recorded.size_bytes == path.stat().st_size
        assert recorded.started_at < recorded.ended_at
        # The file starts at the bridge and runs until the last packet before
        # end_call; packets may arrive up to a few tens of ms early or late.
        assert wall_ms - 300 <= recorded.duration_ms <= wall_ms + 100
        samples = decode_recording(path)
        assert len(samples) / 48 == pytest.approx(recorded.duration_ms, abs=30)
        expected = CALLER_HZ if recorded.party == "caller" else AGENT_HZ
        assert dominant_frequency(samples[-48_000:]) == pytest.approx(expected, abs=2)

    assert await media.end_call(tenant_id=call.tenant_id, call_id=call.call_id) == []
    await asyncio.wait_for(asyncio.gather(call.caller.closed.wait(), call.agent.closed.wait()), 10)


async def test_reoffer_replaces_the_leg_and_the_recording_continues_in_the_same_file(
    media: MediaPlane, call: Call
) -> None:
    reported: list[tuple[uuid.UUID, uuid.UUID, str]] = []

    async def on_leg_closed(tenant_id: uuid.UUID, call_id: uuid.UUID, party: str) -> None:
        reported.append((tenant_id, call_id, party))

    media.on_leg_closed = on_leg_closed
    await media.bridge(tenant_id=call.tenant_id, call_id=call.call_id)
    assert dominant_frequency(await call.agent.listen(0.5)) == pytest.approx(CALLER_HZ, abs=3)

    reloaded_caller = ClientPeer(600.0)
    try:
        await connect(media, call, "caller", reloaded_caller)
        await asyncio.wait_for(call.caller.closed.wait(), 10)  # the old leg is gone
        assert dominant_frequency(await call.agent.listen(0.5)) == pytest.approx(600.0, abs=3)
        assert dominant_frequency(await reloaded_caller.listen(0.5)) == pytest.approx(AGENT_HZ, abs=3)

        [caller_file] = [
            f for f in await media.end_call(tenant_id=call.tenant_id, call_id=call.call_id) if f.party == "caller"
        ]
    finally:
        await reloaded_caller.close()
    samples = decode_recording(media.settings.recordings_dir / caller_file.relative_path)
    assert dominant_frequency(samples[4_800:28_800]) == pytest.approx(CALLER_HZ, abs=3)
    assert dominant_frequency(samples[-24_000:]) == pytest.approx(600.0, abs=3)
    assert reported == []  # replacing or ending a leg is not a failure


async def test_a_browser_closing_its_connection_reports_the_leg_closed(media: MediaPlane, call: Call) -> None:
    reported: asyncio.Queue[tuple[uuid.UUID, uuid.UUID, str]] = asyncio.Queue()

    async def on_leg_closed(tenant_id: uuid.UUID, call_id: uuid.UUID, party: str) -> None:
        await reported.put((tenant_id, call_id, party))

    media.on_leg_closed = on_leg_closed
    await media.bridge(tenant_id=call.tenant_id, call_id=call.call_id)
    await call.agent.listen(0.2)  # media is flowing

    await call.agent.close()

    assert await asyncio.wait_for(reported.get(), 10) == (call.tenant_id, call.call_id, "agent")
    assert media.leg_state(tenant_id=call.tenant_id, call_id=call.call_id, party="agent") == "closed"
    assert media.leg_state(tenant_id=call.tenant_id, call_id=call.call_id, party="caller") == "connected"
    files = await media.end_call(tenant_id=call.tenant_id, call_id=call.call_id)
    assert sorted(f.party for f in files) == ["agent", "caller"]
    assert reported.empty()


async def test_ending_a_call_that_was_never_bridged_closes_its_legs_and_records_nothing(
    media: MediaPlane, call: Call
) -> None:
    await asyncio.wait_for(asyncio.gather(call.caller.connected.wait(), call.agent.connected.wait()), 10)
    assert await media.end_call(tenant_id=call.tenant_id, call_id=call.call_id) == []
    await asyncio.wait_for(asyncio.gather(call.caller.closed.wait(), call.agent.closed.wait()), 10)
    assert not (media.settings.recordings_dir / str(call.tenant_id)).exists()
    assert await media.end_call(tenant_id=uuid.uuid4(), call_id=uuid.uuid4()) == []


async def test_calls_of_two_tenants_with_the_same_call_id_stay_apart(media: MediaPlane) -> None:
    call_id = uuid.uuid4()
    acme, globex = uuid.uuid4(), uuid.uuid4()
    peers = {acme: ClientPeer(CALLER_HZ), globex: ClientPeer(AGENT_HZ)}
    try:
        for tenant_id, peer in peers.items():
            await connect(media, Call(tenant_id, call_id, peer, peer), "caller", peer)
            await asyncio.wait_for(peer.connected.wait(), 10)
        assert await media.end_call(tenant_id=acme, call_id=call_id) == []
        await asyncio.wait_for(peers[acme].closed.wait(), 10)
        assert media.leg_state(tenant_id=globex, call_id=call_id, party="caller") == "connected"
    finally:
        for peer in peers.values():
            await peer.close()


@pytest.mark.parametrize(
    ("offer", "code"),
    [
        ("not an sdp", "invalid_offer"),
        (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
            "m=audio 9 UDP/TLS/RTP/SAVPF 9\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n"
            "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
            "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\n"
            "a=rtcp-mux\r\na=rtpmap:9 G722/8000\r\n",
            "opus_required",  # neither Opus nor PCMU (the code's name predates PCMU)
        ),
    ],
)
async def test_an_offer_that_cannot_be_answered_is_rejected_with_a_stable_code(
    media: MediaPlane, offer: str, code: str
) -> None:
    with pytest.raises(OfferRejected) as rejected:
        await media.answer_leg(tenant_id=uuid.uuid4(), call_id=uuid.uuid4(), party="caller", offer_sdp=offer)
    assert rejected.value.code == code


async def test_only_caller_and_agent_legs_exist(media: MediaPlane) -> None:
    peer = ClientPeer(CALLER_HZ)
    try:
        with pytest.raises(OfferRejected) as rejected:
            await media.answer_leg(
                tenant_id=uuid.uuid4(), call_id=uuid.uuid4(), party="../x", offer_sdp=await peer.offer()  # type: ignore[arg-type]
            )
        assert rejected.value.code == "invalid_party"
    finally:
        await peer.close()


async def test_an_offer_with_video_is_rejected_as_audio_only(media: MediaPlane) -> None:
    peer = ClientPeer(CALLER_HZ)
    peer.pc.addTransceiver("video")
    try:
        with pytest.raises(OfferRejected) as rejected:
            await media.answer_leg(
                tenant_id=uuid.uuid4(), call_id=uuid.uuid4(), party="caller", offer_sdp=await peer.offer()
            )
        assert rejected.value.code == "audio_only"
    finally:
        await peer.close()


async def test_the_answer_is_opus_only_and_carries_a_loopback_host_candidate(media: MediaPlane) -> None:
    peer = ClientPeer(CALLER_HZ)
    try:
        answer = await media.answer_leg(
            tenant_id=uuid.uuid4(), call_id=uuid.uuid4(), party="caller", offer_sdp=await peer.offer()
        )
    finally:
        await peer.close()
    assert [line for line in answer.splitlines() if line.startswith("a=rtpmap:")] == ["a=rtpmap:96 opus/48000/2"]
    assert any(line.startswith("a=candidate:") and " 127.0.0.1 " in line for line in answer.splitlines())
