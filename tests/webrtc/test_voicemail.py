"""Voicemail recording: ``record_party`` records a caller nobody hears.

A caller alone in a call (queued, or leaving a message) is heard by no one,
so the recording rule ("recorded while someone can hear it") records nothing;
``record_party`` records it anyway.  The caller is an in-process aiortc peer
playing 440 Hz; prompts played to it are 1000 Hz, so a recording holding a
prompt would show it.  The last test drives the same command on a media node
through Redis.  A whole voicemail through the HTTP API: test_voicemail_flow.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from call_support import tone_levels
from kefu.platform.settings import Settings, load_settings
from kefu.webrtc.audio import tone
from kefu.webrtc.media import MediaPlane, OfferRejected
from kefu.webrtc.node import MediaNode
from kefu.webrtc.remote import RemoteMediaPlane
from media_support import RATE, ClientPeer, decode_recording, dominant_frequency

CALLER_HZ = 440.0
PROMPT_HZ = 1000.0
TONES = {"caller": CALLER_HZ, "prompt": PROMPT_HZ}


async def connect_caller(media: Any, tenant_id: uuid.UUID, call_id: uuid.UUID, caller: ClientPeer) -> None:
    answer = await media.answer_leg(tenant_id=tenant_id, call_id=call_id, party="caller", offer_sdp=await caller.offer())
    await caller.accept(answer)
    await asyncio.wait_for(caller.connected.wait(), 10)


def prompt_file(tmp_path: Path) -> str:
    """Three seconds of the prompt's tone, as a WAV file."""
    path = tmp_path / "leave-a-message.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(tone(PROMPT_HZ, 3000, 0.4).tobytes())
    return str(path)


@pytest.fixture
async def caller() -> AsyncIterator[ClientPeer]:
    peer = ClientPeer(CALLER_HZ)
    yield peer
    await peer.close()


async def test_a_caller_alone_in_a_call_is_not_recorded_by_default(media: MediaPlane, caller: ClientPeer, tmp_path: Path) -> None:
    tenant_id, call_id = uuid.uuid4(), uuid.uuid4()
    await connect_caller(media, tenant_id, call_id, caller)
    await media.play_prompt(tenant_id=tenant_id, call_id=call_id, party="caller", prompt_id="welcome", file=prompt_file(tmp_path))
    assert dominant_frequency(await caller.listen(0.5)) == pytest.approx(PROMPT_HZ, abs=3)  # the caller's audio flows meanwhile

    assert await media.end_call(tenant_id=tenant_id, call_id=call_id) == []
    assert not (media.settings.recordings_dir / str(tenant_id)).exists()


async def test_record_party_records_the_callers_tone_from_that_moment_and_never_the_prompt_it_hears(
    media: MediaPlane, caller: ClientPeer, tmp_path: Path
) -> None:
    tenant_id, call_id = uuid.uuid4(), uuid.uuid4()
    await connect_caller(media, tenant_id, call_id, caller)

    recording_from = time.monotonic()
    await media.record_party(tenant_id=tenant_id, call_id=call_id, party="caller", enabled=True)
    await media.play_prompt(tenant_id=tenant_id, call_id=call_id, party="caller", prompt_id="voicemail", file=prompt_file(tmp_path))
    assert dominant_frequency(await caller.listen(1.5)) == pytest.approx(PROMPT_HZ, abs=3)  # it hears the prompt meanwhile

    [recorded] = await media.end_call(tenant_id=tenant_id, call_id=call_id)
    wall_ms = (time.monotonic() - recording_from) * 1000

    assert (recorded.party, recorded.relative_path, recorded.media_type) == ("caller", f"{tenant_id}/{call_id}/caller.ogg", "audio/ogg")
    # From record_party to the last packet before end_call (packets arrive a few tens of ms either way).
    assert wall_ms - 300 <= recorded.duration_ms <= wall_ms + 100
    samples = decode_recording(media.settings.recordings_dir / recorded.relative_path)
    assert len(samples) / 48 == pytest.approx(recorded.duration_ms, abs=30)
    assert dominant_frequency(samples[-48_000:]) == pytest.approx(CALLER_HZ, abs=2)
    levels = tone_levels(samples[-48_000:], TONES)
    assert levels["prompt"] < 0.01 * levels["caller"]
    assert await media.end_call(tenant_id=tenant_id, call_id=call_id) == []


async def test_record_party_disabled_stops_recording_a_party_nobody_hears(
    media: MediaPlane, caller: ClientPeer, tmp_path: Path
) -> None:
    tenant_id, call_id = uuid.uuid4(), uuid.uuid4()
    await connect_caller(media, tenant_id, call_id, caller)
    # The prompt the caller hears is the test's clock: audio flows both ways meanwhile.
    await media.play_prompt(tenant_id=tenant_id, call_id=call_id, party="caller", prompt_id="voicemail", file=prompt_file(tmp_path))

    await media.record_party(tenant_id=tenant_id, call_id=call_id, party="caller")
    await caller.listen(0.6)
    await media.record_party(tenant_id=tenant_id, call_id=call_id, party="caller", enabled=False)
    await caller.listen(1.0)

    [recorded] = await media.end_call(tenant_id=tenant_id, call_id=call_id)
    assert 400 <= recorded.duration_ms <= 900  # the first span only
    samples = decode_recording(media.settings.recordings_dir / recorded.relative_path)
    assert dominant_frequency(samples[-9_600:]) == pytest.approx(CALLER_HZ, abs=10)


async def test_record_party_on_an_unknown_call_or_party_is_rejected_with_a_stable_code(media: MediaPlane, caller: ClientPeer) -> None:
    tenant_id, call_id = uuid.uuid4(), uuid.uuid4()
    with pytest.raises(OfferRejected) as unknown:
        await media.record_party(tenant_id=tenant_id, call_id=call_id, party="caller")
    assert unknown.value.code == "no_call"

    await connect_caller(media, tenant_id, call_id, caller)
    with pytest.raises(OfferRejected) as invalid:
        await media.record_party(tenant_id=tenant_id, call_id=call_id, party="../caller")
    assert invalid.value.code == "invalid_party"
    with pytest.raises(OfferRejected) as other_tenant:
        await media.record_party(tenant_id=uuid.uuid4(), call_id=call_id, party="caller")
    assert other_tenant.value.code == "no_call"
    assert await media.end_call(tenant_id=tenant_id, call_id=call_id) == []


# --- on a media node, commanded through Redis -----------------------------------------------


@pytest.fixture
def node_settings(tmp_path: Path, redis_server: Any) -> Settings:
    url = redis_server.url.rsplit("/", 1)[0] + "/6"  # a database of its own: other tests flush /0, test_nodes /5
    sync_redis.Redis.from_url(url).flushdb()
    return load_settings({
        "KEFU_DATA_DIR": str(tmp_path / "data"), "KEFU_REDIS_URL": url, "KEFU_MEDIA_ALLOW_LOOPBACK": "1",
        "KEFU_MEDIA_HEARTBEAT_MS": "100", "KEFU_MEDIA_NODE_TIMEOUT_MS": "600", "KEFU_NODE_ID": "api-1",
    })


@pytest.fixture
async def remote_and_node(node_settings: Settings) -> AsyncIterator[tuple[RemoteMediaPlane, MediaNode]]:
    node = MediaNode(dataclasses.replace(node_settings, node_id="node-a"))
    await node.start()
    remote = RemoteMediaPlane(node_settings)
    await remote.start()
    try:
        await remote.wait_for_nodes(lambda nodes: [n.node for n in nodes] == [node.node], timeout=5)
        yield remote, node
    finally:
        await remote.stop()
        await node.stop()


@pytest.mark.redis
async def test_record_party_runs_on_the_calls_media_node_and_keeps_its_error_codes(
    remote_and_node: tuple[RemoteMediaPlane, MediaNode], caller: ClientPeer, tmp_path: Path
) -> None:
    remote, node = remote_and_node
    tenant_id, call_id = uuid.uuid4(), uuid.uuid4()
    assert await remote.place_call(tenant_id=tenant_id, call_id=call_id) == node.node
    with pytest.raises(OfferRejected) as no_call:  # placed, but the node has no media for it yet
        await remote.record_party(tenant_id=tenant_id, call_id=call_id, party="caller")
    assert no_call.value.code == "no_call"

    await connect_caller(remote, tenant_id, call_id, caller)
    await remote.record_party(tenant_id=tenant_id, call_id=call_id, party="caller", enabled=True)
    await remote.play_prompt(tenant_id=tenant_id, call_id=call_id, party="caller", prompt_id="voicemail", file=prompt_file(tmp_path))
    await caller.listen(1.0)

    [recorded] = await remote.end_call(tenant_id=tenant_id, call_id=call_id)
    assert (recorded.party, recorded.relative_path) == ("caller", f"{tenant_id}/{call_id}/caller.ogg")
    samples = decode_recording(node.media.settings.recordings_dir / recorded.relative_path)
    assert dominant_frequency(samples[-24_000:]) == pytest.approx(CALLER_HZ, abs=4)
