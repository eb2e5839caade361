"""Signalling over the agent and caller sockets with the real media plane: offers
answered on the socket, candidates trickled one message at a time, bad offers,
another tenant's call, and a flooding socket next to a live call.

Caller 440 Hz, agent 1000 Hz, consulted agent ("b") 1300 Hz; the checks name
the tones each party hears.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator

import pytest
from call_support import AGENT_HZ, B_HZ, CALLER_HZ, LiveCall, hears, login, start_call
from litestar import Litestar
from media_support import ClientPeer
from signalling_support import AppSocket, trickle, trickle_offer, without_candidates

from kefu.billing.services import open_account
from kefu.platform.identity.principal import Principal
from kefu.platform.models import Tenant
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from kefu.tenants import agents as agents_service
from kefu.tenants.demo import load_demo

CONNECT_TIMEOUT_S = 15


@pytest.fixture
def settings(make_settings) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings("sqlite")


@pytest.fixture
async def call(client, runtime: Runtime) -> AsyncIterator[LiveCall]:  # type: ignore[no-untyped-def]
    live = await start_call(client, runtime)
    yield live
    await live.close()


class FrozenMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_caller_and_agent_connect_with_every_candidate_trickled_on_their_sockets(client, app: Litestar, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    demo = await load_demo(runtime)
    agent_auth = await login(client, demo, "agent")
    await client.post("/api/v1/agent/session", headers=agent_auth)
    await client.put("/api/v1/agent/status", json={"status": "available"}, headers=agent_auth)
    agent_socket = AppSocket.agent(app, agent_auth)
    await agent_socket.push("agent.state")
    caller, agent = ClientPeer(CALLER_HZ), ClientPeer(AGENT_HZ)
    caller_socket = None
    try:
        # The caller offers without candidates: the call exists once the answer is back.
        offer, caller_candidates = await trickle_offer(caller)
        assert "a=candidate:" not in offer and caller_candidates
        created = await client.post(f"/api/v1/widget/{demo['widget_key']}/calls", json={"caller_name": "Li Lei", "offer_sdp": offer})
        assert created.status_code == 201, created.text
        body = created.json()
        call_id = uuid.UUID(body["call_id"])
        # The peer is not told our candidates either: only our checks, sent to the
        # candidates it trickles, can find it.
        await caller.accept(without_candidates(body["answer_sdp"]))
        caller_socket = AppSocket.caller(app, call_id, body["caller_token"])
        assert (await caller_socket.push("call.state"))["call_id"] == str(call_id)
        assert not caller.connected.is_set()
        await trickle(caller_socket, call_id, caller_candidates)
        await asyncio.wait_for(caller.connected.wait(), CONNECT_TIMEOUT_S)

        # The agent answers on its socket, and trickles too.
        assert (await agent_socket.push("call.offered"))["call_id"] == str(call_id)
        agent_offer, agent_candidates = await trickle_offer(agent)
        answer = await agent_socket.request({"type": "offer", "call_id": str(call_id), "sdp": agent_offer, "request_id": "answer"})
        assert (answer["type"], answer["call_id"], answer["request_id"]) == ("answer", str(call_id), "answer")
        assert "a=rtpmap:" in answer["sdp"] and "opus/48000" in answer["sdp"]
        await agent.accept(without_candidates(answer["sdp"]))
        await trickle(agent_socket, call_id, agent_candidates)
        await asyncio.wait_for(agent.connected.wait(), CONNECT_TIMEOUT_S)

        assert await asyncio.gather(hears(caller), hears(agent)) == [{"agent"}, {"caller"}]
        states = [(await agent_socket.push("agent.state"))["state"] for _ in range(2)]
        assert states == ["ringing", "on_call"]
    finally:
        await agent_socket.close()
        if caller_socket is not None:
            await caller_socket.close()
        await asyncio.gather(caller.close(), agent.close())


async def test_the_agent_re_attaches_its_leg_with_an_offer_on_its_socket(call: LiveCall, app: Litestar) -> None:
    socket = AppSocket.agent(app, call.agent_auth)
    reloaded = ClientPeer(AGENT_HZ)
    try:
        await socket.push("agent.state")
        await call.peers["agent"].close()  # the page reloads: its old connection is gone
        answer = await socket.request({"type": "offer", "call_id": str(call.call_id), "sdp": await reloaded.offer(), "request_id": "again"})
        assert (answer["type"], answer["request_id"]) == ("answer", "again")
        audio = await socket.push("call.audio")
        assert (audio["call_id"], audio["on_hold"], audio["muted"]) == (str(call.call_id), False, False)
        await reloaded.accept(answer["sdp"])
        await asyncio.wait_for(reloaded.connected.wait(), CONNECT_TIMEOUT_S)
        call.peers["agent"] = reloaded
        assert await asyncio.gather(hears(call.peers["caller"]), hears(reloaded)) == [{"agent"}, {"caller"}]
        assert "reconnected" in await call.event_types()
    finally:
        await socket.close()


async def test_a_consulted_agent_answers_and_trickles_its_consult_leg_on_its_socket(call: LiveCall, app: Litestar) -> None:
    b_id, b_auth, _ = await call.second_agent()
    socket = AppSocket.agent(app, b_auth)
    b = ClientPeer(B_HZ)
    call.peers["b"] = b
    try:
        await socket.push("agent.state")
        consult = await call.client.post(f"/api/v1/agent/calls/{call.call_id}/consult", json={"agent_id": b_id}, headers=call.agent_auth)
        assert consult.status_code == 200, consult.text
        assert (await socket.push("consult.offered"))["call_id"] == str(call.call_id)
        offer, candidates = await trickle_offer(b)
        answer = await socket.request({"type": "offer", "call_id": str(call.call_id), "sdp": offer})
        assert answer["type"] == "answer", answer
        await b.accept(without_candidates(answer["sdp"]))
        await trickle(socket, call.call_id, candidates)  # no party named: the socket's own leg on this call, "consult"
        await asyncio.wait_for(b.connected.wait(), CONNECT_TIMEOUT_S)
        assert await asyncio.gather(hears(b), hears(call.peers["agent"])) == [{"agent"}, {"b"}]
    finally:
        await socket.close()


def only_codecs(sdp: str, keep: dict[str, str]) -> str:
    """The offer with only the rtpmap names in ``keep`` (renamed to its value, e.g. a clock rate changed)."""
    kept_types: list[str] = []
    lines = []
    for line in sdp.splitlines():
        match = re.match(r"a=(rtpmap|fmtp|rtcp-fb):(\d+)\s?(.*)", line)
        if match is None:
            lines.append(line)
            continue
        kind, payload_type, rest = match.groups()
        if kind == "rtpmap":
            name = rest.split("/")[0]
            if name not in keep:
                continue
            kept_types.append(payload_type)
            line = f"a=rtpmap:{payload_type} {keep[name]}"
        elif payload_type not in kept_types:
            continue
        lines.append(line)
    out = "\r\n".join(lines) + "\r\n"
    return re.sub(r"^(m=audio \d+ \S+) [\d ]+$", lambda m: f"{m.group(1)} {' '.join(kept_types)}", out, flags=re.M)


async def test_offers_the_media_plane_cannot_take_are_errors_and_the_call_can_still_be_answered(client, app: Litestar, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    demo = await load_demo(runtime)
    agent_auth = await login(client, demo, "agent")
    await client.post("/api/v1/agent/session", headers=agent_auth)
    await client.put("/api/v1/agent/status", json={"status": "available"}, headers=agent_auth)
    caller, agent = ClientPeer(CALLER_HZ), ClientPeer(AGENT_HZ)
    socket = AppSocket.agent(app, agent_auth)
    try:
        created = (await client.post(
            f"/api/v1/widget/{demo['widget_key']}/calls", json={"caller_name": "Li Lei", "offer_sdp": await caller.offer()}
        )).json()
        await caller.accept(created["answer_sdp"])
        await socket.push("call.offered")
        real = await agent.offer()
        cases = {
            "broken": ("v=0\r\nthis is not a session description\r\n", "invalid_offer"),
            "pcma-only": (only_codecs(real, {"PCMA": "PCMA/8000"}), "opus_required"),
            "opus-at-16k": (only_codecs(real, {"opus": "opus/16000/2"}), "unsupported_codec"),
        }
        for name, (sdp, code) in cases.items():
            error = await socket.request({"type": "offer", "call_id": created["call_id"], "sdp": sdp, "request_id": name})
            assert (error["type"], error["code"], error["request_id"]) == ("error", code, name), error
        answer = await socket.request({"type": "offer", "call_id": created["call_id"], "sdp": real})
        assert answer["type"] == "answer", answer
        await agent.accept(answer["sdp"])
        await asyncio.wait_for(agent.connected.wait(), CONNECT_TIMEOUT_S)
        assert await hears(caller) == {"agent"}
    finally:
        await socket.close()
        await asyncio.gather(caller.close(), agent.close())


async def other_tenants_agent(runtime: Runtime) -> dict[str, str]:
    """An agent of a second tenant, signed in, as its bearer header."""
    async with runtime.db.platform_session(reason="test: a second tenant") as session:
        tenant = Tenant(slug="globex", name="Globex")
        session.add(tenant)
        await session.flush()
        tenant_id = tenant.id
        await open_account(session, tenant_id=tenant_id, seats=10, actor="test")
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        seat, _ = await agents_service.create_agent(
            session, tenant_id=tenant_id, email="gus@globex.test", display_name="Gus", actor="system", password="correct horse battery"
        )
    token = runtime.tokens.issue(Principal.user(user_id=seat.user_id, tenant_id=tenant_id, roles=frozenset({"agent"})))
    return {"Authorization": f"Bearer {token}"}


async def test_another_tenants_agent_gets_call_not_found_and_the_call_goes_on(call: LiveCall, app: Litestar) -> None:
    gus = await other_tenants_agent(call.runtime)
    intruder = ClientPeer(AGENT_HZ)
    socket = AppSocket.agent(app, gus)
    try:
        await socket.push("agent.state")
        offer, candidates = await trickle_offer(intruder)
        for message in (
            {"type": "offer", "call_id": str(call.call_id), "sdp": offer},
            {"type": "ice_candidate", "call_id": str(call.call_id), "candidate": candidates[0], "sdpMid": "0", "sdpMLineIndex": 0},
            {"type": "ice_candidate", "call_id": str(call.call_id), "candidate": None, "party": "caller"},
            {"type": "offer", "call_id": str(uuid.uuid4()), "sdp": offer},
        ):
            assert await socket.request(message) == {"type": "error", "code": "call_not_found", "detail": "no such call"}
        assert await asyncio.gather(hears(call.peers["caller"]), hears(call.peers["agent"])) == [{"agent"}, {"caller"}]
    finally:
        await socket.close()
        await intruder.close()


async def test_a_flooding_socket_is_closed_while_a_live_call_on_the_same_node_carries_on(call: LiveCall, app: Litestar) -> None:
    call.runtime.components["signalling.clock"] = FrozenMonotonic()  # exact counts: no token comes back
    waiting = ClientPeer(CALLER_HZ)
    created = (await call.client.post(
        f"/api/v1/widget/{call.demo['widget_key']}/calls", json={"caller_name": "Mallory", "offer_sdp": await waiting.offer()}
    )).json()
    await waiting.accept(created["answer_sdp"])
    flood = AppSocket.caller(app, created["call_id"], created["caller_token"])
    agent_socket = AppSocket.agent(app, call.agent_auth)
    try:
        assert (await flood.push("call.state"))["status"] == "queued"
        await agent_socket.push("agent.state")

        async def abuse() -> tuple[list[dict[str, object]], int]:
            await flood.send_raw({"text": "not json"})
            await flood.send_raw({"bytes": b"\x00" * 100_000})
            await flood.send_raw({"text": '{"type": "offer", "sdp": "' + "a" * 100_000 + '"}'})
            await flood.send({"type": "hangup", "call_id": created["call_id"]})
            for _ in range(500):
                await flood.send({"type": "ping"})
            return await flood.until_closed()

        (sent, code), caller_hears, agent_hears = await asyncio.gather(abuse(), hears(call.peers["caller"]), hears(call.peers["agent"]))
        assert code == 1008
        codes = [m.get("code", m["type"]) for m in sent]
        assert codes == ["invalid_message", "message_too_large", "message_too_large", "unknown_message_type"] + ["pong"] * 36 + ["rate_limited"] * 100
        assert (caller_hears, agent_hears) == ({"agent"}, {"caller"})
        assert await agent_socket.request({"type": "ping"}) == {"type": "pong", "lease": True}
        assert await asyncio.gather(hears(call.peers["caller"]), hears(call.peers["agent"])) == [{"agent"}, {"caller"}]
        state = await call.client.get(f"/api/v1/widget/calls/{created['call_id']}", headers={"X-Caller-Token": created["caller_token"]})
        assert state.json()["status"] == "queued"  # the flooder's own call is untouched too
    finally:
        await agent_socket.close()
        await waiting.close()
