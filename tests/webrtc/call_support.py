"""A real call through the API and the real media plane, with aiortc peers as browsers.

``LiveCall`` signs in the demo agent, places a caller's web call, has the
agent answer it, and keeps one ``ClientPeer`` per party, each playing its own
tone, so a test can ask exactly which tones each party hears.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import httpx
import numpy as np
from media_support import RATE, ClientPeer, rms

from kefu.platform.runtime import Runtime
from kefu.tenants.demo import load_demo

CALLER_HZ = 440.0
AGENT_HZ = 1000.0
SUPERVISOR_HZ = 1700.0
# A second agent ("b"): the target of transfers and consultations.
B_HZ = 1300.0
PARTY_TONES = {"caller": CALLER_HZ, "agent": AGENT_HZ, "supervisor": SUPERVISOR_HZ, "b": B_HZ}
# A tone is "heard" when its level is at least this share of the strongest frequency heard.
PRESENT = 0.1
# Below this RMS (int16 scale) a window is silence.
SILENT_RMS = 80.0


def tone_levels(samples: np.ndarray, frequencies: dict[str, float] = PARTY_TONES) -> dict[str, float]:
    """Each named tone's spectral magnitude (max within +-4 Hz)."""
    samples = np.asarray(samples, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    bin_hz = RATE / len(samples)
    levels = {}
    for name, frequency in frequencies.items():
        centre = int(round(frequency / bin_hz))
        span = max(1, int(4 / bin_hz))
        levels[name] = float(spectrum[max(0, centre - span): centre + span + 1].max())
    return levels


def parties_heard(samples: np.ndarray) -> set[str]:
    """Which parties' tones are in ``samples`` (empty for silence)."""
    if len(samples) == 0 or rms(samples) < SILENT_RMS:
        return set()
    levels = tone_levels(samples)
    spectrum = np.abs(np.fft.rfft(np.asarray(samples, dtype=np.float64) * np.hanning(len(samples))))
    strongest = float(spectrum[1:].max())  # against everything heard: music is no party's tone
    return {name for name, level in levels.items() if level >= PRESENT * strongest and level > 0}


async def window(peer: ClientPeer, seconds: float) -> np.ndarray:
    """Whatever audio ``peer`` receives during the next ``seconds`` of wall time (possibly nothing).

    Used where the expected answer is silence: a leg that is sent nothing
    delivers no frames at all, so waiting for a number of samples would never end.
    """
    future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
    chunks: list[np.ndarray] = []
    peer._listening = (chunks, 1 << 40, future)
    try:
        await asyncio.sleep(seconds)  # an observation window of real-time audio
    finally:
        peer._listening = None
    return np.concatenate(chunks) if chunks else np.zeros(0)


async def hears(peer: ClientPeer, seconds: float = 1.0) -> set[str]:
    """The parties ``peer`` hears over the next ``seconds`` of audio, after a short settling time."""
    await peer.listen(0.3)  # routing changes take effect within a packet or two; skip the transition
    return parties_heard(await peer.listen(seconds))


@dataclass
class LiveCall:
    client: httpx.AsyncClient
    runtime: Runtime
    demo: dict[str, str]
    agent_auth: dict[str, str]
    admin_auth: dict[str, str]
    call_id: uuid.UUID
    caller_token: str
    peers: dict[str, ClientPeer] = field(default_factory=dict)

    async def events(self) -> list[dict[str, object]]:
        response = await self.client.get(f"/api/v1/calls/{self.call_id}/events", headers=self.admin_auth)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def event_types(self) -> list[str]:
        return [str(e["type"]) for e in await self.events()]

    async def join_supervisor(self, mode: str) -> ClientPeer:
        peer = ClientPeer(SUPERVISOR_HZ)
        response = await self.client.post(
            f"/api/v1/supervision/calls/{self.call_id}", json={"mode": mode, "offer_sdp": await peer.offer()}, headers=self.admin_auth
        )
        assert response.status_code == 200, response.text
        await peer.accept(response.json()["answer_sdp"])
        self.peers["supervisor"] = peer
        return peer

    async def close(self) -> None:
        await asyncio.gather(*(peer.close() for peer in self.peers.values()))

    async def second_agent(self, *, queue_name: str | None = None) -> tuple[str, dict[str, str], str | None]:
        """Agent "b", signed in and available (in a new queue when ``queue_name``): (agent id, auth, queue id)."""
        created = await self.client.post(
            "/api/v1/agents", json={"email": "b@demo.kefu", "display_name": "Agent B", "password": "agent-b-password"},
            headers=self.admin_auth,
        )
        assert created.status_code == 201, created.text
        agent_id = created.json()["id"]
        queue_id = None
        if queue_name is not None:
            queue = await self.client.post("/api/v1/queues", json={"name": queue_name}, headers=self.admin_auth)
            assert queue.status_code == 201, queue.text
            queue_id = queue.json()["id"]
            members = await self.client.put(f"/api/v1/queues/{queue_id}/members", json={"agent_ids": [agent_id]}, headers=self.admin_auth)
            assert members.status_code == 200, members.text
        login = await self.client.post(
            "/api/v1/auth/login", json={"tenant": self.demo["tenant"], "email": "b@demo.kefu", "password": "agent-b-password"}
        )
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert (await self.client.post("/api/v1/agent/session", headers=auth)).status_code == 200
        assert (await self.client.put("/api/v1/agent/status", json={"status": "available"}, headers=auth)).status_code == 200
        return agent_id, auth, queue_id

    async def connect_b(self, auth: dict[str, str], path: str) -> ClientPeer:
        """Agent "b" answers (``answer`` for a transferred call, ``consult/answer`` for a consultation)."""
        peer = ClientPeer(B_HZ)
        response = await self.client.post(f"/api/v1/agent/calls/{self.call_id}/{path}", json={"offer_sdp": await peer.offer()}, headers=auth)
        assert response.status_code == 200, response.text
        await peer.accept(response.json()["answer_sdp"])
        self.peers["b"] = peer
        await asyncio.wait_for(peer.connected.wait(), 15)
        return peer


async def login(client: httpx.AsyncClient, demo: dict[str, str], who: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/login", json={"tenant": demo["tenant"], "email": demo[f"{who}_email"], "password": demo[f"{who}_password"]}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def start_call(client: httpx.AsyncClient, runtime: Runtime) -> LiveCall:
    """The demo agent available, a caller's call answered by it, both legs connected."""
    demo = await load_demo(runtime)
    agent_auth = await login(client, demo, "agent")
    admin_auth = await login(client, demo, "admin")
    assert (await client.post("/api/v1/agent/session", headers=agent_auth)).status_code == 200
    ready = await client.put("/api/v1/agent/status", json={"status": "available"}, headers=agent_auth)
    assert ready.status_code == 200, ready.text

    caller = ClientPeer(CALLER_HZ)
    created = await client.post(
        f"/api/v1/widget/{demo['widget_key']}/calls", json={"caller_name": "Li Lei", "offer_sdp": await caller.offer()}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    await caller.accept(body["answer_sdp"])
    call = LiveCall(client, runtime, demo, agent_auth, admin_auth, uuid.UUID(body["call_id"]), body["caller_token"], {"caller": caller})

    state = (await client.get("/api/v1/agent/state", headers=agent_auth)).json()
    assert state["current_call_id"] == str(call.call_id), state
    agent = ClientPeer(AGENT_HZ)
    answered = await client.post(
        f"/api/v1/agent/calls/{call.call_id}/answer", json={"offer_sdp": await agent.offer()}, headers=agent_auth
    )
    assert answered.status_code == 200, answered.text
    await agent.accept(answered.json()["answer_sdp"])
    call.peers["agent"] = agent
    await asyncio.wait_for(asyncio.gather(caller.connected.wait(), agent.connected.wait()), 15)
    return call
