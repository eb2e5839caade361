"""A voicemail end to end: the HTTP API, the ACD and the real in-process media plane.

The demo queue is closed (a schedule with no opening hours) with
``closed_action: voicemail``, so a caller's call goes to voicemail as it is
created: no timer to wait for.  The caller is an aiortc peer playing 440 Hz.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from call_support import CALLER_HZ, login
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from kefu.tenants.demo import load_demo
from media_support import ClientPeer, decode_recording, dominant_frequency, rms


@pytest.fixture
def settings(make_settings) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings("sqlite")


@pytest.fixture
async def caller() -> AsyncIterator[ClientPeer]:
    peer = ClientPeer(CALLER_HZ)
    yield peer
    await peer.close()


async def test_a_caller_reaching_a_closed_queue_leaves_a_voicemail_recorded_as_the_callers_tone(
    client, runtime: Runtime, caller: ClientPeer, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    demo = await load_demo(runtime)
    admin = await login(client, demo, "admin")
    closed = await client.post("/api/v1/schedules", json={"name": "Never open", "weekly": {}}, headers=admin)
    assert closed.status_code == 201, closed.text
    [queue] = (await client.get("/api/v1/queues", headers=admin)).json()
    changed = await client.patch(
        f"/api/v1/queues/{queue['id']}", json={"schedule_id": closed.json()["id"], "closed_action": "voicemail"}, headers=admin
    )
    assert changed.status_code == 200, changed.text

    placed_at = time.monotonic()
    created = await client.post(f"/api/v1/widget/{demo['widget_key']}/calls", json={"caller_name": "Li Lei", "offer_sdp": await caller.offer()})
    assert created.status_code == 201, created.text
    call_id, caller_auth = uuid.UUID(created.json()["call_id"]), {"X-Caller-Token": created.json()["caller_token"]}
    await caller.accept(created.json()["answer_sdp"])
    await asyncio.wait_for(caller.connected.wait(), 15)
    assert (await client.get(f"/api/v1/widget/calls/{call_id}", headers=caller_auth)).json()["status"] == "voicemail"

    greeting = await caller.listen(1.5)  # the caller hears the spoken prompt while it speaks
    assert rms(greeting) > 300
    hung_up = await client.post(f"/api/v1/widget/calls/{call_id}/hangup", headers=caller_auth)
    assert hung_up.status_code == 204, hung_up.text
    wall_ms = (time.monotonic() - placed_at) * 1000

    call = (await client.get(f"/api/v1/calls/{call_id}", headers=admin)).json()
    assert (call["status"], call["end_reason"]) == ("ended", "voicemail")
    [recording] = call["recordings"]
    assert recording["party"] == "caller"
    # From record_party (while the call was created) to the caller's last packet before the hang-up.
    assert 1_300 <= recording["duration_ms"] <= wall_ms + 100
    events = (await client.get(f"/api/v1/calls/{call_id}/events", headers=admin)).json()
    assert [e["type"] for e in events if e["type"] in ("voicemail_started", "ended", "recording_saved")] == [
        "voicemail_started", "ended", "recording_saved"
    ]

    played = await client.get(recording["media_url"], headers=admin)
    assert played.status_code == 200
    saved = tmp_path / "voicemail.ogg"
    saved.write_bytes(played.content)
    samples = decode_recording(saved)
    assert len(samples) / 48 == pytest.approx(recording["duration_ms"], abs=30)
    assert dominant_frequency(samples[-48_000:]) == pytest.approx(CALLER_HZ, abs=2)
