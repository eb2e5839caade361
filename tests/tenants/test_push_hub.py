"""The Redis-backed push hub: a push made on one API node reaches the browser
connected to another, in the order it was made, and never another channel."""

from __future__ import annotations

import asyncio
import uuid

from kefu.platform.devservices import RedisServer
from kefu.tenants.notify import RedisHub, agent_channel, call_channel, parse_redis_channel, redis_channel


async def test_a_push_on_one_node_reaches_the_subscriber_on_another_in_order(redis_server: RedisServer) -> None:
    node_a, node_b = RedisHub(redis_server.url), RedisHub(redis_server.url)
    await node_a.start()
    await node_b.start()
    tenant, other_tenant, agent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        async with node_b.subscribe(agent_channel(tenant, agent)) as mine, node_b.subscribe(agent_channel(other_tenant, agent)) as foreign:
            for n in range(50):
                node_a.publish(agent_channel(tenant, agent), {"type": "agent.state", "n": n})
            node_a.publish(call_channel(tenant, agent), {"type": "call.state"})  # same ids, another kind
            received = [await asyncio.wait_for(mine.get(), timeout=5) for _ in range(50)]
            assert [m["n"] for m in received] == list(range(50))
            # A marker published last on the foreign channel arrives, and nothing else did.
            node_a.publish(agent_channel(other_tenant, agent), {"type": "marker"})
            assert await asyncio.wait_for(foreign.get(), timeout=5) == {"type": "marker"}
            assert mine.empty()
    finally:
        await node_a.stop()
        await node_b.stop()


def test_channel_names_carry_kind_tenant_and_target_and_reject_anything_else() -> None:
    tenant, agent = uuid.uuid4(), uuid.uuid4()
    assert parse_redis_channel(redis_channel(agent_channel(tenant, agent))) == ("agent", tenant, agent)
    for bad in ("kefu:push:agent:x:y", "other:agent", f"kefu:push:agent:{tenant}", f"kefu:push:a:b:{tenant}:{agent}"):
        assert parse_redis_channel(bad) is None
