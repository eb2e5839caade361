"""Two real `kefu api` replicas and a `kefu media` node on one PostgreSQL database and one Redis.

``ApiCluster`` starts the processes the way production runs them (one shared
JWT signing key and public URL, so a token minted once works on both
replicas), keeps an HTTP client per replica, and holds an in-process
``Runtime`` (never started) on the same settings to mint tokens and read the
database.  ``ContactCenter`` builds a tenant with a queue, agents and a web
entry point through the API.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
from media_support import ClientPeer
from nodes_support import KEFU, MediaNodeProcess, until
from sqlalchemy import select

from kefu.platform.runtime import Runtime
from kefu.platform.settings import load_settings
from kefu.tenants.models import Agent, Call, CallEvent
from kefu.webrtc.remote import NODES, Heartbeat, redis_client

# The tenant helpers live with the contact-center tests; pytest puts that folder on
# sys.path only when it collects it (cf. tests/e2e/conftest.py).
sys.path.insert(0, str(Path(__file__).parents[1] / "tenants"))
from tenants_support import activate_user, bearer, create_tenant, create_user


class ApiNodeProcess(MediaNodeProcess):
    """A real `kefu api` replica (production mode) with its log in a file."""

    def start(self) -> ApiNodeProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([KEFU, "api"], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.env['KEFU_PORT']}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Seat:
    agent_id: uuid.UUID
    headers: dict[str, str]
    token: str


@dataclass
class ContactCenter:
    tenant_id: uuid.UUID
    admin: dict[str, str]
    queue_id: str
    widget: str
    seats: list[Seat]


@dataclass
class ApiCluster:
    env: dict[str, str]
    api: dict[str, ApiNodeProcess]
    media: list[MediaNodeProcess]
    runtime: Runtime
    http: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    redis: Any = None

    async def start(self) -> None:
        """The media node first (a replica reads the nodes it can place calls on as it
        starts), then both replicas, each up once its /health says ``ok``."""
        self.redis = redis_client(self.env["KEFU_REDIS_URL"])
        for node in self.media:
            node.start()
        await until(lambda: _media_reporting(self.redis, {n.node_id for n in self.media}), timeout=60, what="the media node reporting")
        for process in self.api.values():
            process.start()
        for name, process in self.api.items():
            self.http[name] = httpx.AsyncClient(base_url=f"http://{process.base}", timeout=30)
        await asyncio.gather(*(self.healthy(name) for name in self.api))

    async def healthy(self, name: str) -> None:
        await until(lambda: self._health_ok(name), timeout=60, what=f"{name} answering GET /health")

    async def _health_ok(self, name: str) -> bool:
        process = self.api[name]
        if not process.running():
            raise AssertionError(f"{name} exited:\n{process.log()[-3000:]}")
        try:
            response = await self.http[name].get("/health")
        except httpx.TransportError:
            return False
        return response.status_code == 200 and response.json()["status"] == "ok"

    async def ensure_running(self) -> None:
        """Restart any replica a previous test killed."""
        dead = [name for name, process in self.api.items() if not process.running()]
        for name in dead:
            self.api[name].start()
        await asyncio.gather(*(self.healthy(name) for name in dead))

    async def stop(self) -> None:
        for client in self.http.values():
            await client.aclose()
        for process in [*self.api.values(), *self.media]:
            process.stop()
        if self.redis is not None:
            await self.redis.aclose()
        await self.runtime.db.dispose()

    def ws(self, name: str, path: str) -> str:
        return f"ws://{self.api[name].base}{path}"

    # --- reading the shared database ------------------------------------------------

    async def agents(self, tenant_id: uuid.UUID) -> dict[uuid.UUID, Agent]:
        async with self.runtime.db.tenant_session(tenant_id=tenant_id) as session:
            return {a.id: a for a in await session.scalars(select(Agent).where(Agent.tenant_id == tenant_id))}

    async def calls(self, tenant_id: uuid.UUID) -> dict[uuid.UUID, Call]:
        async with self.runtime.db.tenant_session(tenant_id=tenant_id) as session:
            return {c.id: c for c in await session.scalars(select(Call).where(Call.tenant_id == tenant_id))}

    async def call(self, tenant_id: uuid.UUID, call_id: str) -> Call:
        return (await self.calls(tenant_id))[uuid.UUID(call_id)]

    async def events(self, tenant_id: uuid.UUID, *types: str) -> list[CallEvent]:
        async with self.runtime.db.tenant_session(tenant_id=tenant_id) as session:
            query = select(CallEvent).where(CallEvent.tenant_id == tenant_id).order_by(CallEvent.call_id, CallEvent.seq)
            if types:
                query = query.where(CallEvent.type.in_(types))
            return list(await session.scalars(query))

    # --- the contact center, through the API --------------------------------------------

    async def contact_center(self, names: list[str], *, via: str) -> ContactCenter:
        """A tenant with one queue of ``names`` (agents) behind a web entry point."""
        runtime, http = self.runtime, self.http[via]
        tenant_id = await create_tenant(runtime, f"acme-{uuid.uuid4().hex[:6]}")
        admin = bearer(runtime, tenant_id=tenant_id, user_id=await create_user(runtime, tenant_id, "admin@acme.test"), roles={"tenant_admin"})
        seats = []
        for name in names:
            response = await http.post("/api/v1/agents", json={"email": f"{name.lower()}@acme.test", "display_name": name}, headers=admin)
            assert response.status_code == 201, response.text
            body = response.json()
            await activate_user(runtime, tenant_id, uuid.UUID(body["user_id"]))
            headers = bearer(runtime, tenant_id=tenant_id, user_id=uuid.UUID(body["user_id"]), roles={"agent"})
            seats.append(Seat(uuid.UUID(body["id"]), headers, headers["Authorization"].split()[1]))
        queue = (await http.post("/api/v1/queues", json={"name": "Support"}, headers=admin)).json()
        members = {"agent_ids": [str(s.agent_id) for s in seats]}
        assert (await http.put(f"/api/v1/queues/{queue['id']}/members", json=members, headers=admin)).status_code == 200
        entry = (await http.post("/api/v1/entry-points", json={"name": "Web", "queue_id": queue["id"]}, headers=admin)).json()
        return ContactCenter(tenant_id, admin, queue["id"], entry["widget_key"], seats)

    async def log_in(self, via: str, seat: Seat) -> None:
        response = await self.http[via].post("/api/v1/agent/session", headers=seat.headers)
        assert response.status_code == 200, response.text

    async def go_ready(self, via: str, seat: Seat) -> None:
        response = await self.http[via].put("/api/v1/agent/status", json={"status": "available"}, headers=seat.headers)
        assert response.status_code == 200, response.text

    async def call_in(self, via: str, center: ContactCenter, peer: ClientPeer, name: str) -> dict[str, Any]:
        offer = await peer.offer()
        response = await self.http[via].post(f"/api/v1/widget/{center.widget}/calls", json={"caller_name": name, "offer_sdp": offer})
        assert response.status_code == 201, response.text
        body = response.json()
        await peer.accept(body["answer_sdp"])
        return body

    async def answer(self, via: str, seat: Seat, call_id: str, peer: ClientPeer) -> None:
        response = await self.http[via].post(f"/api/v1/agent/calls/{call_id}/answer", json={"offer_sdp": await peer.offer()}, headers=seat.headers)
        assert response.status_code == 200, response.text
        await peer.accept(response.json()["answer_sdp"])


def cluster_env(*, database_url: str, platform_url: str, redis_url: str, key_pem: str, tmp_path: Path) -> dict[str, str]:
    """What every process of the cluster shares: the database, Redis, the signing key and
    the public URL (the tokens' issuer) of the load balancer in front of the replicas."""
    return {
        "KEFU_MODE": "production", "KEFU_DATABASE_URL": database_url, "KEFU_PLATFORM_DATABASE_URL": platform_url,
        "KEFU_REDIS_URL": redis_url, "KEFU_JWT_PRIVATE_KEY": key_pem, "KEFU_PUBLIC_URL": "http://kefu.test",
        "KEFU_MEDIA_ALLOW_LOOPBACK": "1", "KEFU_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "KEFU_DATA_DIR": str(tmp_path / "data"),
        # Offers outlive the tests' checks unless a queue says otherwise (its own ring_timeout_s).
        "KEFU_RING_TIMEOUT": "120",
    }


def build_cluster(env: dict[str, str], *, api_names: tuple[str, ...], media_names: tuple[str, ...], log_dir: Path) -> ApiCluster:
    return ApiCluster(
        env=env,
        api={name: ApiNodeProcess(env, node_id=name, log_dir=log_dir) for name in api_names},
        media=[MediaNodeProcess(env, node_id=name, log_dir=log_dir) for name in media_names],
        runtime=Runtime.build(load_settings(env), process_roles=frozenset({"api"})),
    )


async def _media_reporting(redis: Any, node_ids: set[str]) -> bool:
    beats = [msgspec.json.decode(raw, type=Heartbeat) for raw in (await redis.hgetall(NODES)).values()]
    return node_ids <= {b.node_id for b in beats if b.state == "running"}


async def next_frame(socket: Any, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15) -> dict[str, Any]:
    """The next frame on ``socket`` that satisfies ``predicate`` (pushed by a replica)."""
    seen: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await socket.recv())
                if predicate(frame):
                    return frame
                seen.append(frame)
    except TimeoutError:
        raise AssertionError(f"no awaited frame within {timeout} s; the socket pushed only {seen}") from None
