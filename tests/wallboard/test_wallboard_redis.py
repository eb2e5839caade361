"""Production shape: two API nodes sharing the database and Redis.  A change made through
node A reaches a wallboard socket on node B (pushed through Redis), and a socket on each
node gets the same snapshot: one computation for the tenant, not one per node."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
import websockets
from tenants_support import activate_user, bearer, create_tenant, create_user

from kefu.platform.app import create_app
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from tests.events.server import serving

pytestmark = pytest.mark.redis

TIMEOUT_S = 10


async def until(socket, condition):  # type: ignore[no-untyped-def]
    """Frames are read until one meets ``condition`` (each wait bounded, none slept)."""
    while True:
        frame = json.loads(await socket.recv())
        if condition(frame):
            return frame


async def test_a_change_on_node_a_reaches_a_wallboard_socket_on_node_b(redis_settings: Settings) -> None:
    node_a = Runtime.build(redis_settings, process_roles=frozenset({"api"}))
    node_b = Runtime.build(redis_settings, process_roles=frozenset({"api"}))
    async with serving(create_app(runtime=node_a)) as base_a, serving(create_app(runtime=node_b)) as base_b:
        tenant = await create_tenant(node_a, f"wb-{uuid.uuid4().hex[:8]}")
        admin_id = await create_user(node_a, tenant, "admin@wallboard.test")
        admin = bearer(node_a, tenant_id=tenant, user_id=admin_id, roles={"tenant_admin"})
        async with httpx.AsyncClient(base_url=f"http://{base_a}", headers=admin, timeout=30) as api_a:
            created = await api_a.post("/api/v1/agents", json={"email": "ann@wallboard.test", "display_name": "Ann"})
            assert created.status_code == 201, created.text
            ann = created.json()
            await activate_user(node_a, tenant, uuid.UUID(ann["user_id"]))
            queue = (await api_a.post("/api/v1/queues", json={"name": "Sales"})).json()
            assert (await api_a.put(f"/api/v1/queues/{queue['id']}/members", json={"agent_ids": [ann["id"]]})).status_code == 200
            ann_headers = bearer(node_a, tenant_id=tenant, user_id=uuid.UUID(ann["user_id"]), roles={"agent"})

            token_b = node_b.tokens.issue(node_a.tokens.verify(admin["Authorization"].split(" ", 1)[1]))
            token_a = admin["Authorization"].split(" ", 1)[1]
            async with websockets.connect(f"ws://{base_b}/ws/wallboard?access_token={token_b}") as on_b, \
                    websockets.connect(f"ws://{base_a}/ws/wallboard?access_token={token_a}") as on_a:
                for socket in (on_b, on_a):
                    first = json.loads(await socket.recv())
                    assert (first["totals"]["agents"]["offline"], [q["name"] for q in first["queues"]]) == (1, ["Sales"])
                before = node_a.components["wallboard"].computations + node_b.components["wallboard"].computations

                # Ann logs in and goes ready through node A.
                assert (await api_a.post("/api/v1/agent/session", headers=ann_headers)).status_code in (200, 201)
                ready = await api_a.put("/api/v1/agent/status", json={"status": "available"}, headers=ann_headers)
                assert ready.status_code == 200, ready.text
                seen_b = await until(on_b, lambda f: f["totals"]["agents"]["available"] == 1)
                seen_a = await until(on_a, lambda f: f["totals"]["agents"]["available"] == 1)
                assert seen_a == seen_b  # the same snapshot, computed once and pushed to both nodes
                after = node_a.components["wallboard"].computations + node_b.components["wallboard"].computations
                assert 1 <= after - before <= 2  # log-in and ready: at most one computation each, across both nodes
