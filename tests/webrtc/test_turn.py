"""TURN credentials the API hands out work on a real coturn (TURN REST API,
``use-auth-secret``), wrong and expired ones do not, and a caller that may use
nothing but the relay still reaches the media plane and talks to the agent.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from aioice import stun, turn
from call_support import AGENT_HZ, CALLER_HZ, hears, login
from media_support import ClientPeer
from signalling_support import ConfiguredPeer, rtc_ice_servers
from turn_support import CoturnServer, free_udp_and_tcp_port

from kefu.platform.db.base import utcnow
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from kefu.tenants.demo import load_demo
from kefu.tenants.signalling import issue_turn_credentials, turn_credential

SECRET = "kefu-test-static-auth-secret"
PRODUCTION_CONFIG = Path(__file__).parents[2] / "infra" / "coturn" / "turnserver.conf"
TTL_S = 600
CONNECT_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def coturn() -> Iterator[CoturnServer]:
    server = CoturnServer.start(SECRET)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(make_settings, coturn: CoturnServer) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings("sqlite", KEFU_TURN_URLS=coturn.url, KEFU_TURN_SECRET=SECRET, KEFU_TURN_TTL=str(TTL_S))


@pytest.fixture
async def demo(client, runtime: Runtime) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return await load_demo(runtime)


class Datagrams(asyncio.DatagramProtocol):
    """Keeps what a UDP endpoint receives."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))


async def relay_round_trip(coturn: CoturnServer, username: str, credential: str) -> tuple[str, int]:
    """Allocate on coturn with the credential and send one datagram through the relay to a
    peer on loopback; the relayed address, which is where the peer saw it come from."""
    loop = asyncio.get_running_loop()
    peer_transport, peer = await loop.create_datagram_endpoint(Datagrams, local_addr=("127.0.0.1", 0))
    relay, mine = await turn.create_turn_endpoint(Datagrams, coturn.address, username, credential, lifetime=TTL_S)
    try:
        relayed = relay.get_extra_info("sockname")
        relay.sendto(b"through the relay", peer_transport.get_extra_info("sockname"))
        data, source = await asyncio.wait_for(peer.received.get(), 5)
        assert (data, source) == (b"through the relay", relayed)
        return relayed  # type: ignore[no-any-return]
    finally:
        relay.close()
        peer_transport.close()


async def test_an_agents_credential_from_the_api_allocates_a_relay_and_a_wrong_one_is_refused(
    client, demo: dict[str, str], coturn: CoturnServer  # type: ignore[no-untyped-def]
) -> None:
    auth = await login(client, demo, "agent")
    body = (await client.get("/api/v1/media/ice-servers", headers=auth)).json()
    [turn_server] = body["ice_servers"]
    assert (turn_server["urls"], body["ttl_s"]) == ([coturn.url], TTL_S)
    relayed = await relay_round_trip(coturn, turn_server["username"], turn_server["credential"])
    assert relayed[0] == "127.0.0.1"

    with pytest.raises(stun.TransactionFailed) as refused:
        await turn.create_turn_endpoint(Datagrams, coturn.address, turn_server["username"], "not-the-credential")
    assert refused.value.response.attributes["ERROR-CODE"][0] == 401
    other_secret = turn_credential("another-secret", turn_server["username"])
    with pytest.raises(stun.TransactionFailed):
        await turn.create_turn_endpoint(Datagrams, coturn.address, turn_server["username"], other_secret)


async def test_a_callers_credential_from_the_widget_route_allocates_a_relay(
    client, demo: dict[str, str], coturn: CoturnServer  # type: ignore[no-untyped-def]
) -> None:
    body = (await client.get(f"/api/v1/widget/{demo['widget_key']}/ice-servers")).json()
    [turn_server] = body["ice_servers"]
    await relay_round_trip(coturn, turn_server["username"], turn_server["credential"])


@pytest.fixture
def expired_clock(runtime: Runtime) -> None:
    """The ACD's clock (which dates credentials) one TTL and a minute in the past."""
    runtime.components["acd.clock"] = lambda: utcnow() - timedelta(seconds=TTL_S + 60)


async def test_coturn_refuses_a_credential_once_it_has_expired(
    expired_clock: None, client, demo: dict[str, str], coturn: CoturnServer  # type: ignore[no-untyped-def]
) -> None:
    auth = await login(client, demo, "agent")
    [turn_server] = (await client.get("/api/v1/media/ice-servers", headers=auth)).json()["ice_servers"]
    assert int(turn_server["username"].split(":")[0]) < utcnow().timestamp()
    with pytest.raises(stun.TransactionFailed) as refused:
        await turn.create_turn_endpoint(Datagrams, coturn.address, turn_server["username"], turn_server["credential"])
    assert refused.value.response.attributes["ERROR-CODE"][0] == 401


@pytest.fixture
async def peers() -> AsyncIterator[list[ClientPeer]]:
    made: list[ClientPeer] = []
    yield made
    await asyncio.gather(*(peer.close() for peer in made))


async def test_a_caller_restricted_to_the_relay_reaches_the_media_plane_through_coturn(
    client, demo: dict[str, str], peers: list[ClientPeer]  # type: ignore[no-untyped-def]
) -> None:
    agent_auth = await login(client, demo, "agent")
    await client.post("/api/v1/agent/session", headers=agent_auth)
    await client.put("/api/v1/agent/status", json={"status": "available"}, headers=agent_auth)

    ice = (await client.get(f"/api/v1/widget/{demo['widget_key']}/ice-servers")).json()["ice_servers"]
    caller = ConfiguredPeer(CALLER_HZ, rtc_ice_servers(ice), relay_only=True)  # iceTransportPolicy: "relay"
    peers.append(caller)
    offer = await caller.offer()
    assert caller.local_candidate_types() == {"relay"}
    assert {line.split()[7] for line in offer.splitlines() if line.startswith("a=candidate:")} == {"relay"}
    created = await client.post(f"/api/v1/widget/{demo['widget_key']}/calls", json={"caller_name": "Li Lei", "offer_sdp": offer})
    assert created.status_code == 201, created.text
    body = created.json()
    await caller.accept(body["answer_sdp"])

    agent = ClientPeer(AGENT_HZ)
    peers.append(agent)
    answered = await client.post(f"/api/v1/agent/calls/{body['call_id']}/answer", json={"offer_sdp": await agent.offer()}, headers=agent_auth)
    assert answered.status_code == 200, answered.text
    await agent.accept(answered.json()["answer_sdp"])
    await asyncio.wait_for(asyncio.gather(caller.connected.wait(), agent.connected.wait()), CONNECT_TIMEOUT_S)

    assert caller.selected_pair().local_candidate.type == "relay"
    assert await asyncio.gather(hears(caller), hears(agent)) == [{"agent"}, {"caller"}]


def on_loopback(port: int, root: Path) -> str:
    """infra/coturn/turnserver.conf as documented, with only what a test box needs changed:
    loopback addresses and free ports, a self-signed certificate, files in ``root``,
    no user switch, and the test's secret in place of the placeholder."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=turn.kefu.test",
         "-keyout", str(root / "privkey.pem"), "-out", str(root / "fullchain.pem")],
        check=True, capture_output=True,
    )
    replacements = {
        "listening-port": str(port), "tls-listening-port": str(free_udp_and_tcp_port()), "external-ip": None,
        "listening-ip": "127.0.0.1", "relay-ip": "127.0.0.1", "min-port": "40000", "max-port": "40999",
        "static-auth-secret": SECRET, "cert": str(root / "fullchain.pem"), "pkey": str(root / "privkey.pem"),
        "log-file": str(root / "turnserver.log"), "pidfile": str(root / "turnserver.pid"), "proc-user": None, "proc-group": None,
    }
    lines = []
    for line in PRODUCTION_CONFIG.read_text().splitlines():
        match = re.match(r"^#?([a-z0-9-]+)=", line)
        name = match.group(1) if match else None
        if name in replacements:
            if replacements[name] is not None:
                lines.append(f"{name}={replacements.pop(name)}")
            continue
        lines.append(line)
    lines += [f"{name}={value}" for name, value in replacements.items() if value is not None]  # settings the example leaves commented out
    return "\n".join(lines) + "\n"


async def test_the_documented_production_configuration_accepts_kefus_credentials_and_nothing_else() -> None:
    text = PRODUCTION_CONFIG.read_text()
    for required in ("use-auth-secret", "no-cli", "tls-listening-port=5349", "denied-peer-ip=10.0.0.0-10.255.255.255", "min-port=", "realm="):
        assert required in text, required
    assert not re.search(r"^[a-z][a-z0-9-]*=\S*[ \t]+#", text, flags=re.M), "coturn would read a trailing comment as part of the value"
    server = CoturnServer.start(SECRET, config=on_loopback)
    try:
        issued = issue_turn_credentials(SECRET, opaque_id="0123456789abcdef0123456789abcdef.u0123456789abcdef", ttl_s=TTL_S, now=time.time())
        relay, _ = await turn.create_turn_endpoint(Datagrams, server.address, issued.username, issued.credential, lifetime=TTL_S)
        relay.close()
        with pytest.raises(stun.TransactionFailed) as refused:
            await turn.create_turn_endpoint(Datagrams, server.address, issued.username, turn_credential("not-the-secret", issued.username))
        assert refused.value.response.attributes["ERROR-CODE"][0] == 401
    finally:
        server.stop()
