"""Helpers for signalling over the sockets with real peers: an in-process websocket
conversation with the app, trickling peers, ICE servers as aiortc takes them.

``AppSocket`` drives one websocket of the app over ASGI messages in the test's
own loop (no network).  ``trickle_offer`` splits an aiortc offer into what a
trickling browser sends first (no candidates) and the candidates it sends
afterwards; ``ConfiguredPeer`` is a ``ClientPeer`` with the ICE servers and
transport policy a browser would be given.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection
from litestar import Litestar
from media_support import ClientPeer, ToneTrack

TIMEOUT_S = 15
PUSHES = {"agent.state", "call.offered", "call.state", "call.audio", "call.ended", "consult.offered", "consult.ended", "call.transferred"}


class AppSocket:
    """One websocket conversation with the app (ASGI messages, no network)."""

    def __init__(self, app: Litestar, path: str, query: str) -> None:
        self.inbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pushes: list[dict[str, Any]] = []
        scope = {
            "type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "http_version": "1.1",
            "path": path, "raw_path": path.encode(), "root_path": "", "query_string": query.encode(),
            "headers": [(b"host", b"testserver.local")], "client": ("127.0.0.1", 50000), "server": ("testserver.local", 80),
            "subprotocols": [],
        }
        self.inbound.put_nowait({"type": "websocket.connect"})
        self.task = asyncio.create_task(app(scope, self.inbound.get, self.outbound.put))  # type: ignore[arg-type]

    @classmethod
    def agent(cls, app: Litestar, auth: dict[str, str]) -> "AppSocket":
        return cls(app, "/ws/agent", f"access_token={auth['Authorization'].split()[1]}")

    @classmethod
    def caller(cls, app: Litestar, call_id: uuid.UUID | str, caller_token: str) -> "AppSocket":
        return cls(app, f"/ws/caller/{call_id}", f"caller_token={caller_token}")

    async def receive(self) -> dict[str, Any]:
        """The next message the app sent (accept frames skipped)."""
        while True:
            message = await asyncio.wait_for(self.outbound.get(), TIMEOUT_S)
            if message["type"] == "websocket.send":
                return json.loads(message["text"])  # type: ignore[no-any-return]
            assert message["type"] == "websocket.accept", message

    async def push(self, kind: str) -> dict[str, Any]:
        """The next push of ``kind`` (one seen earlier counts)."""
        for i, seen in enumerate(self.pushes):
            if seen["type"] == kind:
                return self.pushes.pop(i)
        while True:
            message = await self.receive()
            if message["type"] == kind:
                return message
            self.pushes.append(message)

    async def send(self, message: dict[str, Any]) -> None:
        await self.inbound.put({"type": "websocket.receive", "text": json.dumps(message)})

    async def send_raw(self, frame: dict[str, Any]) -> None:
        await self.inbound.put({"type": "websocket.receive", **frame})

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send ``message``; its reply (answer, pong or error), pushes kept aside."""
        await self.send(message)
        while True:
            received = await self.receive()
            if received["type"] in PUSHES:
                self.pushes.append(received)
                continue
            return received

    async def until_closed(self) -> tuple[list[dict[str, Any]], int]:
        """Every message still to come, and the close code; the handler has returned."""
        sent = []
        while True:
            message = await asyncio.wait_for(self.outbound.get(), TIMEOUT_S)
            if message["type"] == "websocket.send":
                sent.append(json.loads(message["text"]))
            elif message["type"] == "websocket.close":
                await asyncio.wait_for(self.task, TIMEOUT_S)
                return sent, int(message["code"])

    async def close(self) -> None:
        if not self.task.done():
            await self.inbound.put({"type": "websocket.disconnect", "code": 1000})
            await asyncio.wait_for(self.task, TIMEOUT_S)


def without_candidates(sdp: str) -> str:
    """A description as a trickling peer sends it: no candidates, no end-of-candidates."""
    return "".join(line for line in sdp.splitlines(keepends=True) if not line.startswith(("a=candidate:", "a=end-of-candidates")))


def candidates_of(sdp: str) -> list[str]:
    """The ``candidate:...`` strings of a description, as ``RTCIceCandidate.candidate`` gives them."""
    return [line[2:].strip() for line in sdp.splitlines() if line.startswith("a=candidate:")]


async def trickle_offer(peer: ClientPeer) -> tuple[str, list[str]]:
    """The peer's offer without its candidates, and the candidates to trickle after it."""
    full = await peer.offer()
    return without_candidates(full), candidates_of(full)


async def trickle(socket: AppSocket, call_id: uuid.UUID | str, candidates: list[str]) -> None:
    """Each candidate as its own message, then the end of candidates; every one accepted."""
    for candidate in [*candidates, None]:
        request_id = f"candidate-{uuid.uuid4().hex[:8]}"
        await socket.send({
            "type": "ice_candidate", "call_id": str(call_id), "candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0,
            "request_id": request_id,
        })
    # Messages are handled in order: once the ping is answered, every candidate was taken (or refused).
    reply = await socket.request({"type": "ping"})
    assert reply["type"] == "pong", reply  # a refused candidate's error would come first


def rtc_ice_servers(ice_servers: list[dict[str, Any]]) -> list[RTCIceServer]:
    """The API's ``ice_servers`` as aiortc takes them (a browser takes the JSON as it is)."""
    return [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential")) for s in ice_servers]


class ConfiguredPeer(ClientPeer):
    """A ``ClientPeer`` with given ICE servers; ``relay_only`` is ``iceTransportPolicy: "relay"``."""

    def __init__(self, frequency: float, ice_servers: list[RTCIceServer], *, relay_only: bool = False) -> None:
        super().__init__(frequency)
        self._unused_pc = self.pc  # ClientPeer's own, never offered on: closed with this peer
        policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers, iceTransportPolicy=policy))
        self.pc.addTrack(ToneTrack(frequency))
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    async def close(self) -> None:
        await self._unused_pc.close()
        await super().close()

    def selected_pair(self) -> Any:
        """The aioice candidate pair this peer's audio uses (aioice internals, read only)."""
        transport = self.pc.getTransceivers()[0].sender.transport.transport
        return transport._connection._nominated[1]

    def local_candidate_types(self) -> set[str]:
        transport = self.pc.getTransceivers()[0].sender.transport.transport
        return {c.type for c in transport._connection.local_candidates}
