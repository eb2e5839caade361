"""In-call controls and supervisor audio with real media: who hears whom, by distinct tones.

The caller plays 440 Hz, the agent 1000 Hz, the supervisor 1700 Hz; each
check listens at every party's peer and names the tones it hears.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from call_support import LiveCall, hears, parties_heard, start_call, tone_levels, window
from media_support import decode_recording, dominant_frequency

from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings


@pytest.fixture
def settings(make_settings) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings("sqlite")


@pytest.fixture
async def call(client, runtime: Runtime) -> AsyncIterator[LiveCall]:  # type: ignore[no-untyped-def]
    live = await start_call(client, runtime)
    yield live
    await live.close()


async def everyone_hears(call: LiveCall) -> dict[str, set[str]]:
    parties = list(call.peers)
    heard = await asyncio.gather(*(hears(call.peers[p]) for p in parties))
    return dict(zip(parties, heard, strict=True))


async def test_a_connected_call_is_caller_and_agent_only(call: LiveCall) -> None:
    assert await everyone_hears(call) == {"caller": {"agent"}, "agent": {"caller"}}


async def test_hold_plays_music_to_the_caller_and_silences_the_caller_for_the_agent(call: LiveCall) -> None:
    held = await call.client.put(f"/api/v1/agent/calls/{call.call_id}/hold", json={"on_hold": True}, headers=call.agent_auth)
    assert held.status_code == 200, held.text
    assert held.json()["on_hold"] is True
    await call.peers["caller"].listen(0.3)
    music = await call.peers["caller"].listen(1.5)
    assert float(abs(music).mean()) > 50  # music, not silence
    # Not the agent: its 1000 Hz tone is at most a trace against the music's strongest note.
    spectrum_peak = max(tone_levels(music, {"peak": dominant_frequency(music)}).values())
    assert tone_levels(music)["agent"] < 0.1 * spectrum_peak
    assert parties_heard(await window(call.peers["agent"], 1.0)) == set()

    resumed = await call.client.put(f"/api/v1/agent/calls/{call.call_id}/hold", json={"on_hold": False}, headers=call.agent_auth)
    assert resumed.status_code == 200
    assert await everyone_hears(call) == {"caller": {"agent"}, "agent": {"caller"}}
    assert [t for t in await call.event_types() if t in ("held", "resumed")] == ["held", "resumed"]


async def test_a_muted_agent_still_hears_the_caller(call: LiveCall) -> None:
    muted = await call.client.put(f"/api/v1/agent/calls/{call.call_id}/mute", json={"muted": True}, headers=call.agent_auth)
    assert muted.status_code == 200 and muted.json()["muted"] is True
    assert parties_heard(await window(call.peers["caller"], 1.0)) == set()
    assert await hears(call.peers["agent"]) == {"caller"}
    await call.client.put(f"/api/v1/agent/calls/{call.call_id}/mute", json={"muted": False}, headers=call.agent_auth)
    assert await hears(call.peers["caller"]) == {"agent"}


async def test_monitor_whisper_barge_each_route_exactly_as_specified(call: LiveCall) -> None:
    await call.join_supervisor("monitor")
    await asyncio.wait_for(call.peers["supervisor"].connected.wait(), 15)
    assert await everyone_hears(call) == {"caller": {"agent"}, "agent": {"caller"}, "supervisor": {"caller", "agent"}}

    whisper = await call.client.put(f"/api/v1/supervision/calls/{call.call_id}/mode", json={"mode": "whisper"}, headers=call.admin_auth)
    assert whisper.status_code == 200, whisper.text
    assert await everyone_hears(call) == {"caller": {"agent"}, "agent": {"caller", "supervisor"}, "supervisor": {"caller", "agent"}}

    barge = await call.client.put(f"/api/v1/supervision/calls/{call.call_id}/mode", json={"mode": "barge"}, headers=call.admin_auth)
    assert barge.status_code == 200, barge.text
    assert await everyone_hears(call) == {
        "caller": {"agent", "supervisor"}, "agent": {"caller", "supervisor"}, "supervisor": {"caller", "agent"}
    }
    types = await call.event_types()
    assert [t for t in types if t.startswith("supervisor")] == ["supervisor_joined", "supervisor_mode_changed", "supervisor_mode_changed"]


async def test_take_over_drops_the_agent_and_frees_it(call: LiveCall) -> None:
    await call.join_supervisor("monitor")
    await asyncio.wait_for(call.peers["supervisor"].connected.wait(), 15)
    taken = await call.client.post(f"/api/v1/supervision/calls/{call.call_id}/takeover", headers=call.admin_auth)
    assert taken.status_code == 200, taken.text
    assert taken.json()["taken_over"] is True
    await asyncio.wait_for(call.peers["agent"].closed.wait(), 10)
    assert await hears(call.peers["caller"]) == {"supervisor"}
    assert await hears(call.peers["supervisor"]) == {"caller"}
    state = (await call.client.get("/api/v1/agent/state", headers=call.agent_auth)).json()
    assert state["current_call_id"] is None and state["system_state"] == "idle"

    left = await call.client.delete(f"/api/v1/supervision/calls/{call.call_id}", headers=call.admin_auth)
    assert left.status_code == 204
    cdr = (await call.client.get(f"/api/v1/calls/{call.call_id}", headers=call.admin_auth)).json()
    assert cdr["status"] == "ended" and cdr["end_reason"] == "supervisor_hangup"


async def test_only_a_supervisor_of_the_tenant_may_listen_in(call: LiveCall) -> None:
    refused = await call.client.post(
        f"/api/v1/supervision/calls/{call.call_id}", json={"mode": "monitor", "offer_sdp": "v=0\r\n"}, headers=call.agent_auth
    )
    assert refused.status_code == 403
    bad_mode = await call.client.post(
        f"/api/v1/supervision/calls/{call.call_id}", json={"mode": "spy", "offer_sdp": "v=0\r\n"}, headers=call.admin_auth
    )
    assert bad_mode.status_code == 400
    not_joined = await call.client.post(f"/api/v1/supervision/calls/{call.call_id}/takeover", headers=call.admin_auth)
    assert not_joined.status_code == 409 and not_joined.json()["code"] == "not_supervising"


async def test_recording_pause_is_logged_and_leaves_silence_in_every_channel(call: LiveCall) -> None:
    await call.peers["caller"].listen(0.5)
    paused = await call.client.put(f"/api/v1/agent/calls/{call.call_id}/recording", json={"paused": True}, headers=call.agent_auth)
    assert paused.status_code == 200 and paused.json()["recording_paused"] is True
    await call.peers["caller"].listen(1.0)
    resumed = await call.client.put(f"/api/v1/agent/calls/{call.call_id}/recording", json={"paused": False}, headers=call.agent_auth)
    assert resumed.status_code == 200 and resumed.json()["recording_paused"] is False
    await call.peers["caller"].listen(0.5)
    hangup = await call.client.post(f"/api/v1/agent/calls/{call.call_id}/hangup", headers=call.agent_auth)
    assert hangup.status_code == 204

    events = await call.events()
    types = [e["type"] for e in events]
    assert types.index("recording_paused") < types.index("recording_resumed") < types.index("ended")
    recordings = (await call.client.get(f"/api/v1/calls/{call.call_id}/recordings", headers=call.admin_auth)).json()
    assert sorted(r["party"] for r in recordings) == ["agent", "caller"]
    for recording in recordings:
        [path] = call.runtime.settings.recordings_dir.glob(f"*/{call.call_id}/{recording['party']}.ogg")
        samples = decode_recording(path)
        # About a second of the middle is silence (the pause), the rest the party's tone.
        quiet = [abs(samples[i:i + 4800]).mean() < 30 for i in range(0, len(samples) - 4800, 4800)]
        assert sum(quiet) >= 7


async def test_a_supervisor_whose_connection_drops_leaves_and_the_call_goes_on(call: LiveCall) -> None:
    supervisor = await call.join_supervisor("barge")
    await asyncio.wait_for(supervisor.connected.wait(), 15)
    await supervisor.close()
    del call.peers["supervisor"]
    # The media plane reports the closed leg; the call loses its supervisor and carries on.
    for _ in range(100):
        if "supervisor_left" in await call.event_types():
            break
        await call.peers["caller"].listen(0.1)
    assert "supervisor_left" in await call.event_types()
    assert await everyone_hears(call) == {"caller": {"agent"}, "agent": {"caller"}}
    cdr = (await call.client.get(f"/api/v1/calls/{call.call_id}", headers=call.admin_auth)).json()
    assert cdr["status"] == "connected"
