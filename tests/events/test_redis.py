"""Production shape on real Redis: pub/sub across API nodes, jobs through RedisBroker to a worker process runtime."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import websockets
from dramatiq.brokers.redis import RedisBroker

from kefu.platform.app import create_app
from kefu.platform.events import emit, enqueue
from kefu.platform.events.worker import build_worker_runtime, run_worker_process, serve_worker
from kefu.platform.identity.principal import Principal
from kefu.platform.runtime import Runtime
from tests.events.sample_events import WidgetPinged
from tests.events.sample_jobs import SEEN, inspect_tenant_context, ping_widget
from tests.events.server import serving
from tests.events.support import bus_of, make_tenant, started_runtime

pytestmark = pytest.mark.redis


async def test_event_emitted_on_one_node_reaches_a_socket_on_another(redis_settings) -> None:
    node_a = Runtime.build(redis_settings, process_roles=frozenset({"api"}))
    node_b = Runtime.build(redis_settings, process_roles=frozenset({"api"}))
    async with serving(create_app(runtime=node_a)), serving(create_app(runtime=node_b)) as base_b:
        acme = await make_tenant(node_a)
        globex = await make_tenant(node_a)
        access = node_b.tokens.issue(Principal.user(user_id=uuid.uuid4(), tenant_id=acme, roles=frozenset({"tenant_admin"})))
        async with websockets.connect(f"ws://{base_b}/ws/events?access_token={access}") as socket:
            assert json.loads(await socket.recv()) == {"type": "ready"}
            async with node_a.db.tenant_session(tenant_id=globex) as session:
                await emit(session, WidgetPinged(tenant_id=globex, widget_id=uuid.uuid4(), note="globex"))
            async with node_a.db.tenant_session(tenant_id=acme) as session:
                event_id = await emit(session, WidgetPinged(tenant_id=acme, widget_id=uuid.uuid4(), note="acme"))
            frame = json.loads(await socket.recv())
        assert frame["event"]["event_id"] == str(event_id)
        assert frame["event"]["data"]["note"] == "acme"


async def test_redis_subscription_gets_only_its_tenant_channel(redis_settings) -> None:
    async with started_runtime(redis_settings, roles=frozenset({"api"})) as runtime:
        acme = await make_tenant(runtime)
        globex = await make_tenant(runtime)
        bus = bus_of(runtime)
        async with bus.subscribe(tenant_id=acme) as acme_events, bus.subscribe(tenant_id=globex) as globex_events:
            async with runtime.db.tenant_session(tenant_id=globex) as session:
                globex_id = await emit(session, WidgetPinged(tenant_id=globex, widget_id=uuid.uuid4()))
            async with runtime.db.tenant_session(tenant_id=acme) as session:
                acme_id = await emit(session, WidgetPinged(tenant_id=acme, widget_id=uuid.uuid4()))
            assert (await acme_events.next(timeout=10)).event_id == acme_id
            assert (await globex_events.next(timeout=10)).event_id == globex_id


async def test_job_goes_through_redis_to_the_worker_process_runtime(redis_settings, backend: str) -> None:
    worker = build_worker_runtime(redis_settings)
    assert isinstance(worker.components["broker"], RedisBroker)
    stop = asyncio.Event()
    worker_task = asyncio.create_task(serve_worker(worker, stop))
    try:
        async with started_runtime(redis_settings, roles=frozenset({"api"})) as api:
            assert api.components["jobs"].worker is None  # API replicas only enqueue
            acme = await make_tenant(api)
            widget = uuid.uuid4()
            probe = uuid.uuid4().hex
            async with bus_of(api).subscribe(tenant_id=acme) as events:
                async with api.db.tenant_session(tenant_id=acme) as session:
                    await enqueue(session, inspect_tenant_context, tenant_id=acme, probe=probe)
                    await enqueue(session, ping_widget, tenant_id=acme, widget_id=str(widget))
                # The worker's job emitted this; the worker published it to Redis after its commit.
                published = await events.next(timeout=30)
            assert published.data == {"tenant_id": str(acme), "widget_id": str(widget), "note": "from a job"}
            await asyncio.to_thread(api.components["broker"].join, "kefu", timeout=30_000)
            # At least once: on SQLite a run whose commit met "database is locked"
            # is retried, and the probe records every run.  Each run saw its tenant.
            runs = [e for e in SEEN if e["probe"] == probe]
            assert runs and {e["tenant_id"] for e in runs} == {acme}
            if backend == "postgres":
                assert {e["setting"] for e in runs} == {str(acme)}
    finally:
        stop.set()
        await worker_task


def test_kefu_worker_refuses_to_run_without_redis(sqlite_settings, capsys) -> None:
    assert run_worker_process(sqlite_settings) == 2
    assert "KEFU_REDIS_URL" in capsys.readouterr().out
