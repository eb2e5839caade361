"""Signalling without a network: ICE servers and TURN credentials over HTTP, and the
agent and caller sockets' messages (offers, trickled candidates, errors, limits)
against the in-process media stand-in, on both databases.

The real media plane, trickle ICE that really connects and coturn are in
tests/webrtc/test_signalling.py and tests/webrtc/test_turn.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from httpx import AsyncClient
from litestar import Litestar
from sqlalchemy import update
from tenants_support import START, Admin, AgentSeat, InProcessMedia, MakeAgent, bearer, create_user
from test_acd import events_of, go_ready, make_queue, place_call
from test_sockets import Socket

from kefu.platform.models import Tenant
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from kefu.tenants.clock import ManualClock
from kefu.webrtc.media import OfferRejected

SECRET = "coturn-static-auth-secret"
TURN_ENV = {
    "KEFU_ICE_SERVERS": "stun:stun.example.test:3478,turn:legacy.example.test:3478",
    "KEFU_TURN_URLS": "turn:turn.example.test:3478?transport=udp,turns:turn.example.test:5349?transport=tcp",
    "KEFU_TURN_SECRET": SECRET,
    "KEFU_TURN_TTL": "600",
}
EXPIRES_AT = int(START.timestamp()) + 600
OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CANDIDATE = "candidate:1 1 udp 2130706431 192.0.2.10 50000 typ host"


@pytest.fixture
def turn(request: pytest.FixtureRequest) -> dict[str, str]:
    return getattr(request, "param", TURN_ENV)


@pytest.fixture
def settings(make_settings, backend: str, turn: dict[str, str]) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings(backend, **turn)


@dataclass
class TricklingMedia(InProcessMedia):
    """The media stand-in, with trickled candidates and the media plane's offer codes."""

    candidates: list[tuple[uuid.UUID, uuid.UUID, str, str | None, str | None, int | None]] = field(default_factory=list)

    async def answer_leg(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str, offer_sdp: str) -> str:
        if "m=video" in offer_sdp:
            raise OfferRejected("audio_only", "the offer must hold exactly one audio stream and nothing else")
        if "PCMA" in offer_sdp:
            raise OfferRejected("opus_required", "the offer must include Opus or PCMU audio")
        return await super().answer_leg(tenant_id=tenant_id, call_id=call_id, party=party, offer_sdp=offer_sdp)

    async def add_ice_candidate(
        self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str, candidate: str | None,
        sdp_mid: str | None = None, sdp_mline_index: int | None = None,
    ) -> None:
        if (call_id, party) not in self.legs or self.tenant_of.get(call_id) != tenant_id:
            raise OfferRejected("no_leg", "this party has no media leg to add candidates to")
        self.candidates.append((tenant_id, call_id, party, candidate, sdp_mid, sdp_mline_index))

    async def set_routes(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, hears: dict[str, list[str]]) -> None:
        self.routes = hears  # call controls (hold) recompute who hears whom

    async def set_recording_paused(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, paused: bool) -> None:
        self.recording_paused = paused


@pytest.fixture
def media(runtime: Runtime, clock: ManualClock) -> TricklingMedia:
    return TricklingMedia(runtime.settings.recordings_dir, clock)


class FrozenMonotonic:
    """The sockets' rate-limit clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks(runtime: Runtime) -> FrozenMonotonic:
    frozen = FrozenMonotonic()
    runtime.components["signalling.clock"] = frozen
    return frozen


def expected_credential(username: str) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()).decode()


def agent_socket(app: Litestar, seat: AgentSeat) -> Socket:
    return Socket(app, "/ws/agent", f"access_token={seat.headers['Authorization'].split()[1]}")


async def opened(socket: Socket) -> Socket:
    """The socket once its first push (agent state or call state) arrived."""
    assert (await socket.receive_json())["type"] in ("agent.state", "call.state")
    return socket


async def exchange(socket: Socket, message: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Send ``message``; the next message that is not a push (an answer, pong or error), and the pushes before it."""
    await socket.send_json(message)
    pushes = []
    while True:
        received = await socket.receive_json()
        if received["type"] in ("answer", "pong", "error"):
            return received, pushes
        pushes.append(received)


async def reply_to(socket: Socket, message: dict[str, Any]) -> dict[str, Any]:
    return (await exchange(socket, message))[0]


async def settled(socket: Socket) -> None:
    """Every message sent before this one has been handled (messages are handled in order)."""
    assert (await reply_to(socket, {"type": "ping"}))["type"] == "pong"


async def ringing_call(client: AsyncClient, admin: Admin, seat: AgentSeat) -> dict[str, Any]:
    _queue, widget = await make_queue(client, admin, [seat])
    await go_ready(client, seat)
    return await place_call(client, widget, "Li Lei")


# --- ICE servers ----------------------------------------------------------------------------


async def test_an_agent_gets_the_stun_urls_and_a_turn_credential_of_its_own(client: AsyncClient, acme: Admin, make_agent: MakeAgent) -> None:
    ann = await make_agent(acme, "Ann")
    response = await client.get("/api/v1/media/ice-servers", headers=ann.headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    opaque = hmac.new(SECRET.encode(), f"user:{acme.tenant_id}:{ann.user_id}".encode(), hashlib.sha256).hexdigest()[:16]
    username = f"{EXPIRES_AT}:{acme.tenant_id.hex}.u{opaque}"
    assert body == {
        "ice_servers": [
            {"urls": ["stun:stun.example.test:3478"]},  # a TURN URL without a credential is never handed out
            {
                "urls": ["turn:turn.example.test:3478?transport=udp", "turns:turn.example.test:5349?transport=tcp"],
                "username": username,
                "credential": expected_credential(username),
            },
        ],
        "ttl_s": 600,
    }
    again = await client.get("/api/v1/media/ice-servers", headers=ann.headers)
    assert again.json() == body  # stable per user until the clock moves


async def test_a_supervisor_gets_ice_servers_and_users_who_take_no_calls_do_not(
    runtime: Runtime, client: AsyncClient, acme: Admin
) -> None:
    supervisor_id = await create_user(runtime, acme.tenant_id, "sue@acme.test")
    supervisor = bearer(runtime, tenant_id=acme.tenant_id, user_id=supervisor_id, roles={"supervisor"})
    viewer_id = await create_user(runtime, acme.tenant_id, "rita@acme.test")
    viewer = bearer(runtime, tenant_id=acme.tenant_id, user_id=viewer_id, roles={"report_viewer"})

    answered = await client.get("/api/v1/media/ice-servers", headers=supervisor)
    assert answered.status_code == 200
    assert answered.json()["ice_servers"][1]["username"].startswith(f"{EXPIRES_AT}:{acme.tenant_id.hex}.u")
    refused = await client.get("/api/v1/media/ice-servers", headers=viewer)
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    anonymous = await client.get("/api/v1/media/ice-servers")
    assert anonymous.status_code == 401


async def test_a_caller_gets_a_fresh_credential_scoped_to_the_widgets_tenant(client: AsyncClient, acme: Admin, make_agent: MakeAgent) -> None:
    ann = await make_agent(acme, "Ann")
    _queue, widget = await make_queue(client, acme, [ann])
    first = (await client.get(f"/api/v1/widget/{widget}/ice-servers")).json()
    second = (await client.get(f"/api/v1/widget/{widget}/ice-servers")).json()
    stun, turn = first["ice_servers"]
    assert stun == {"urls": ["stun:stun.example.test:3478"]}
    expiry, opaque = turn["username"].split(":")
    assert (int(expiry), opaque[:34], len(opaque)) == (EXPIRES_AT, f"{acme.tenant_id.hex}.c", 34 + 16)
    assert turn["credential"] == expected_credential(turn["username"])
    assert second["ice_servers"][1]["username"] != turn["username"]  # a caller is nobody: a new id each time
    assert first["ttl_s"] == 600


@pytest.mark.parametrize("turn", [{}, {"KEFU_ICE_SERVERS": "stun:stun.example.test:3478", "KEFU_TURN_URLS": "turn:turn.example.test:3478"}], indirect=True, ids=["nothing", "no-secret"])
async def test_without_a_turn_secret_and_urls_there_is_no_turn_entry(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, turn: dict[str, str]
) -> None:
    ann = await make_agent(acme, "Ann")
    _queue, widget = await make_queue(client, acme, [ann])
    expected = [{"urls": ["stun:stun.example.test:3478"]}] if turn else []
    for response in (await client.get("/api/v1/media/ice-servers", headers=ann.headers), await client.get(f"/api/v1/widget/{widget}/ice-servers")):
        assert response.json() == {"ice_servers": expected, "ttl_s": 3600}


async def test_the_public_route_is_limited_per_client_ip(
    app: Litestar, client: AsyncClient, acme: Admin, make_agent: MakeAgent, clock: ManualClock
) -> None:
    ann = await make_agent(acme, "Ann")
    _queue, widget = await make_queue(client, acme, [ann])
    statuses = [(await client.get(f"/api/v1/widget/{widget}/ice-servers")).status_code for _ in range(60)]
    assert statuses == [200] * 60
    limited = await client.get(f"/api/v1/widget/{widget}/ice-servers")
    assert (limited.status_code, limited.json()["code"], limited.headers["retry-after"]) == (429, "ice_servers_rate_limited", "60")
    unknown = await client.get("/api/v1/widget/no-such-key/ice-servers")
    assert unknown.status_code == 429  # counted before the key is looked up: no free key guessing

    elsewhere = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("198.51.100.9", 40000)), base_url="http://testserver.local")
    async with elsewhere:
        assert (await elsewhere.get(f"/api/v1/widget/{widget}/ice-servers")).status_code == 200
        assert (await elsewhere.get("/api/v1/widget/no-such-key/ice-servers")).status_code == 404
    clock.now += timedelta(seconds=60)
    assert (await client.get(f"/api/v1/widget/{widget}/ice-servers")).status_code == 200


async def test_a_suspended_tenant_gets_no_ice_servers(runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent) -> None:
    ann = await make_agent(acme, "Ann")
    _queue, widget = await make_queue(client, acme, [ann])
    await suspend(runtime, acme.tenant_id)
    for response in (await client.get("/api/v1/media/ice-servers", headers=ann.headers), await client.get(f"/api/v1/widget/{widget}/ice-servers")):
        assert (response.status_code, response.json()["code"]) == (403, "tenant_suspended")


async def suspend(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    async with runtime.db.platform_session(reason="test: suspend") as session:
        await session.execute(update(Tenant).where(Tenant.id == tenant_id).values(status="suspended"))


# --- offers over the sockets ------------------------------------------------------------------


async def test_an_agent_answers_its_ringing_call_with_an_offer_on_its_socket(
    app: Litestar, client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: TricklingMedia
) -> None:
    ann = await make_agent(acme, "Ann")
    call = await ringing_call(client, acme, ann)
    socket = agent_socket(app, ann)
    try:
        assert (await socket.receive_json())["state"] == "ringing"
        assert (await socket.receive_json())["type"] == "call.offered"
        answer, pushes = await exchange(socket, {"type": "offer", "call_id": call["call_id"], "sdp": OFFER, "request_id": "answer-1"})
        assert answer == {"type": "answer", "call_id": call["call_id"], "sdp": "v=0\r\ns=answer-agent\r\n", "request_id": "answer-1"}
        # The seat's push races the answer (pushes and replies are sent side by side).
        state = pushes[0] if pushes else await socket.receive_json()
        assert (state["type"], state["state"]) == ("agent.state", "on_call")
    finally:
        await socket.close()
    assert media.legs_of(uuid.UUID(call["call_id"])) == ["agent", "caller"]
    assert [e["type"] for e in await events_of(client, acme, call["call_id"])][-2:] == ["answered", "recording_started"]


async def test_an_agent_re_attaches_to_its_connected_call_on_its_socket_and_learns_the_audio_state(
    app: Litestar, client: AsyncClient, acme: Admin, make_agent: MakeAgent
) -> None:
    ann = await make_agent(acme, "Ann")
    call = await ringing_call(client, acme, ann)
    answered = await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)
    assert answered.status_code == 200
    held = await client.put(f"/api/v1/agent/calls/{call['call_id']}/hold", json={"on_hold": True}, headers=ann.headers)
    assert held.status_code == 200, held.text
    socket = await opened(agent_socket(app, ann))
    try:
        answer = await reply_to(socket, {"type": "offer", "call_id": call["call_id"], "sdp": OFFER, "request_id": 7})
        assert answer == {"type": "answer", "call_id": call["call_id"], "sdp": "v=0\r\ns=answer-agent\r\n", "request_id": 7}
        audio = await socket.receive_json()
        assert (audio["type"], audio["call_id"], audio["on_hold"], audio["muted"]) == ("call.audio", call["call_id"], True, False)
    finally:
        await socket.close()
    assert (await events_of(client, acme, call["call_id"]))[-1]["type"] == "reconnected"


async def test_a_bad_offer_is_an_error_on_the_socket_and_the_call_keeps_ringing(
    app: Litestar, client: AsyncClient, acme: Admin, make_agent: MakeAgent
) -> None:
    ann = await make_agent(acme, "Ann")
    call = await ringing_call(client, acme, ann)
    socket = await opened(agent_socket(app, ann))
    try:
        cases = [
            ("hello", "invalid_offer"),
            (OFFER + "m=audio 9 UDP/TLS/RTP/SAVPF 8\r\na=rtpmap:8 PCMA/8000\r\n", "opus_required"),
            (OFFER + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "audio_only"),
        ]
        for sdp, code in cases:
            error = await reply_to(socket, {"type": "offer", "call_id": call["call_id"], "sdp": sdp, "request_id": code})
            assert (error["type"], error["code"], error["request_id"]) == ("error", code, code)
        assert (await client.get("/api/v1/agent/state", headers=ann.headers)).json()["state"] == "ringing"
        answer = await reply_to(socket, {"type": "offer", "call_id": call["call_id"], "sdp": OFFER})
        assert (answer["type"], answer["request_id"]) == ("answer", None)
    finally:
        await socket.close()


# --- trickled candidates -------------------------------------------------------------------------


async def test_trickled_candidates_go_to_the_senders_own_leg_until_the_end_of_candidates(
    app: Litestar, client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: TricklingMedia
) -> None:
    ann = await make_agent(acme, "Ann")
    call = await ringing_call(client, acme, ann)
    call_id = uuid.UUID(call["call_id"])
    agent = await opened(agent_socket(app, ann))
    caller = await opened(Socket(app, f"/ws/caller/{call_id}", f"caller_token={call['caller_token']}"))
    try:
        assert (await reply_to(agent, {"type": "offer", "call_id": str(call_id), "sdp": OFFER}))["type"] == "answer"
        for candidate in (CANDIDATE, None):
            await agent.send_json({"type": "ice_candidate", "call_id": str(call_id), "candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0})
        await caller.send_json({
            "type": "ice_candidate", "call_id": str(call_id), "party": "caller", "candidate": CANDIDATE,
            "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd",  # RTCIceCandidate.toJSON() as it is
        })
        await caller.send_json({"type": "ice_candidate", "call_id": str(call_id), "candidate": ""})
        await settled(agent)
        await settled(caller)
    finally:
        await agent.close()
        await caller.close()
    # Each socket's messages in order (the two sockets run side by side).
    assert [c for c in media.candidates if c[2] == "agent"] == [
        (acme.tenant_id, call_id, "agent", CANDIDATE, "0", 0),
        (acme.tenant_id, call_id, "agent", None, "0", 0),
    ]
    assert [c for c in media.candidates if c[2] == "caller"] == [
        (acme.tenant_id, call_id, "caller", CANDIDATE, "0", 0),
        (acme.tenant_id, call_id, "caller", None, None, None),
    ]


async def test_a_candidate_for_a_leg_that_does_not_exist_or_is_not_the_senders_is_refused(
    app: Litestar, client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: TricklingMedia
) -> None:
    ann = await make_agent(acme, "Ann")
    call = await ringing_call(client, acme, ann)
    socket = await opened(agent_socket(app, ann))
    try:
        before_answer = {"type": "ice_candidate", "call_id": call["call_id"], "candidate": CANDIDATE, "request_id": "c1"}
        assert await reply_to(socket, before_answer) == {
            "type": "error", "code": "no_leg", "detail": "this party has no media leg to add candidates to", "request_id": "c1",
        }
        assert (await reply_to(socket, {"type": "offer", "call_id": call["call_id"], "sdp": OFFER}))["type"] == "answer"
        not_mine = {"type": "ice_candidate", "call_id": call["call_id"], "party": "caller", "candidate": CANDIDATE}
        assert (await reply_to(socket, not_mine))["code"] == "invalid_party"
    finally:
        await socket.close()
    assert media.candidates == []


async def test_another_tenants_call_answers_exactly_like_a_call_that_does_not_exist(
    app: Litestar, client: AsyncClient, acme: Admin, globex: Admin, make_agent: MakeAgent, media: TricklingMedia
) -> None:
    ann = await make_agent(acme, "Ann")
    call = await ringing_call(client, acme, ann)
    answered = await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)
    assert answered.status_code == 200
    gus = await make_agent(globex, "Gus")
    await client.post("/api/v1/agent/session", headers=gus.headers)
    socket = await opened(agent_socket(app, gus))
    replies: dict[str, list[dict[str, Any]]] = {}
    try:
        for name, call_id in (("acme's", call["call_id"]), ("missing", str(uuid.uuid4()))):
            replies[name] = [
                await reply_to(socket, {"type": "ice_candidate", "call_id": call_id, "candidate": CANDIDATE, "party": "agent"}),
                await reply_to(socket, {"type": "offer", "call_id": call_id, "sdp": OFFER}),
            ]
    finally:
        await socket.close()
    assert replies["acme's"] == replies["missing"] == [{"type": "error", "code": "call_not_found", "detail": "no such call"}] * 2
    assert media.candidates == []
    assert media.legs[(uuid.UUID(call["call_id"]), "agent")] == OFFER  # Ann's leg untouched


async def test_a_caller_trickles_and_re_attaches_only_its_own_call(
    app: Litestar, client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: TricklingMedia
) -> None:
    ann = await make_agent(acme, "Ann")
    _queue, widget = await make_queue(client, acme, [ann])
    call = await place_call(client, widget, "Li Lei")
    other = await place_call(client, widget, "Han Meimei")
    call_id = uuid.UUID(call["call_id"])
    socket = await opened(Socket(app, f"/ws/caller/{call_id}", f"caller_token={call['caller_token']}"))
    try:
        answer = await reply_to(socket, {"type": "offer", "call_id": str(call_id), "sdp": OFFER, "request_id": "again"})
        assert answer == {"type": "answer", "call_id": str(call_id), "sdp": "v=0\r\ns=answer-caller\r\n", "request_id": "again"}
        assert (await reply_to(socket, {"type": "ice_candidate", "call_id": other["call_id"], "candidate": CANDIDATE}))["code"] == "call_not_found"
        assert (await reply_to(socket, {"type": "offer", "call_id": other["call_id"], "sdp": OFFER}))["code"] == "call_not_found"
        assert (await reply_to(socket, {"type": "ice_candidate", "call_id": str(call_id), "party": "agent", "candidate": CANDIDATE}))["code"] == "invalid_party"
        await socket.send_json({"type": "ice_candidate", "call_id": str(call_id), "candidate": CANDIDATE, "sdpMLineIndex": 0})
        await settled(socket)
    finally:
        await socket.close()
    assert media.candidates == [(acme.tenant_id, call_id, "caller", CANDIDATE, None, 0)]
    assert [e["type"] for e in await events_of(client, acme, str(call_id))][-1] == "reconnected"


async def test_a_suspended_tenants_agent_can_no_longer_offer_on_its_open_socket(
    app: Litestar, runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent
) -> None:
    ann = await make_agent(acme, "Ann")
    call = await ringing_call(client, acme, ann)
    socket = await opened(agent_socket(app, ann))
    try:
        await suspend(runtime, acme.tenant_id)
        error = await reply_to(socket, {"type": "offer", "call_id": call["call_id"], "sdp": OFFER})
        assert (error["type"], error["code"]) == ("error", "tenant_suspended")
    finally:
        await socket.close()


# --- bad input and floods ----------------------------------------------------------------------


BAD_MESSAGES = [
    ({"text": json.dumps({"type": "dial", "request_id": "r"})}, "unknown_message_type", "r"),
    ({"text": json.dumps({"type": "offer", "call_id": str(uuid.uuid4()), "request_id": "r"})}, "invalid_message", "r"),
    ({"text": json.dumps({"type": "offer", "call_id": "not-a-uuid", "sdp": OFFER})}, "invalid_message", None),
    ({"text": json.dumps({"type": "ice_candidate", "call_id": str(uuid.uuid4()), "candidate": 5})}, "invalid_message", None),
    ({"text": json.dumps({"type": "ice_candidate", "call_id": str(uuid.uuid4()), "candidate": None, "extra": 1})}, "invalid_message", None),
    ({"text": json.dumps({"type": "ice_candidate", "call_id": str(uuid.uuid4()), "candidate": "x" * 1025})}, "invalid_message", None),
    ({"text": json.dumps({"type": "ping", "request_id": True})}, "invalid_message", None),
    ({"text": json.dumps({"type": "offer", "call_id": str(uuid.uuid4()), "sdp": "v=0" + "a" * 16 * 1024})}, "message_too_large", None),
    ({"text": json.dumps({"type": "ping", "pad": "界" * 6000})}, "message_too_large", None),  # 6000 characters, 18000 bytes
    ({"bytes": b"\x00" * (16 * 1024 + 1)}, "message_too_large", None),
    ({"text": "[" * 10000 + "]" * 10000}, "message_too_large", None),
    ({"text": "[" * 8000 + "]" * 8000}, "invalid_message", None),
]


@pytest.mark.parametrize(("frame", "code", "request_id"), BAD_MESSAGES, ids=[
    "unknown-type", "missing-sdp", "bad-uuid", "candidate-not-text", "unknown-field", "long-candidate", "bool-request-id",
    "oversized", "oversized-in-bytes", "oversized-binary", "oversized-nesting", "deep-nesting",
])
async def test_a_bad_message_is_answered_with_its_code_and_the_socket_stays_open(
    app: Litestar, client: AsyncClient, acme: Admin, make_agent: MakeAgent, frame: dict[str, Any], code: str, request_id: str | None
) -> None:
    ann = await make_agent(acme, "Ann")
    await client.post("/api/v1/agent/session", headers=ann.headers)
    socket = await opened(agent_socket(app, ann))
    try:
        await socket.send_raw(frame)
        error = await socket.receive_json()
        assert (error["type"], error["code"], error.get("request_id")) == ("error", code, request_id)
        assert await reply_to(socket, {"type": "ping"}) == {"type": "pong", "lease": True}
    finally:
        await socket.close()


async def read_until_closed(socket: Socket) -> tuple[list[dict[str, Any]], int]:
    """Every message the app sent, then the close code."""
    sent = []
    while True:
        message = await socket.next()
        if message["type"] == "websocket.send":
            sent.append(json.loads(message["text"]))
        elif message["type"] == "websocket.close":
            return sent, message["code"]


async def test_a_flooding_socket_is_refused_then_closed_while_other_sockets_carry_on(
    app: Litestar, client: AsyncClient, acme: Admin, make_agent: MakeAgent, ticks: FrozenMonotonic
) -> None:
    ann = await make_agent(acme, "Ann")
    bob = await make_agent(acme, "Bob")
    call = await ringing_call(client, acme, bob)
    await client.post("/api/v1/agent/session", headers=ann.headers)
    flood = await opened(agent_socket(app, ann))
    calm = await opened(agent_socket(app, bob))
    try:
        for _ in range(200):  # the clock stands still: no token comes back
            await flood.send_json({"type": "ping"})
        sent, code = await read_until_closed(flood)
        await asyncio.wait_for(flood.task, 5)  # the handler has returned
        assert code == 1008
        assert [m["type"] for m in sent] == ["pong"] * 40 + ["error"] * 100
        assert {m.get("code") for m in sent[40:]} == {"rate_limited"}

        assert (await calm.receive_json())["type"] == "call.offered"
        assert await reply_to(calm, {"type": "ping"}) == {"type": "pong", "lease": True}
        answer = await reply_to(calm, {"type": "offer", "call_id": call["call_id"], "sdp": OFFER})
        assert answer["type"] == "answer"
        assert (await client.get("/api/v1/agent/state", headers=bob.headers)).json()["state"] == "on_call"
    finally:
        await calm.close()


async def test_the_message_budget_comes_back_with_time(
    app: Litestar, client: AsyncClient, acme: Admin, make_agent: MakeAgent, ticks: FrozenMonotonic
) -> None:
    ann = await make_agent(acme, "Ann")
    await client.post("/api/v1/agent/session", headers=ann.headers)
    socket = await opened(agent_socket(app, ann))
    try:
        replies = [await reply_to(socket, {"type": "ping"}) for _ in range(41)]
        assert [r["type"] for r in replies] == ["pong"] * 40 + ["error"]
        assert replies[-1]["code"] == "rate_limited"
        ticks.now += 0.5  # 20 a second: 10 more
        replies = [await reply_to(socket, {"type": "ping"}) for _ in range(11)]
        assert [r["type"] for r in replies] == ["pong"] * 10 + ["error"]
    finally:
        await socket.close()


async def test_the_caller_socket_answers_pings(app: Litestar, client: AsyncClient, acme: Admin, make_agent: MakeAgent) -> None:
    ann = await make_agent(acme, "Ann")
    _queue, widget = await make_queue(client, acme, [ann])
    call = await place_call(client, widget, "Li Lei")
    socket = await opened(Socket(app, f"/ws/caller/{call['call_id']}", f"caller_token={call['caller_token']}"))
    try:
        assert await reply_to(socket, {"type": "ping", "request_id": "p"}) == {"type": "pong"}
    finally:
        await socket.close()
