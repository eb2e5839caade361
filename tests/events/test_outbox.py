"""emit() writes the outbox in the caller's transaction; the bus publishes only what committed."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select

from kefu.platform.events import TenantSuspended, emit
from kefu.platform.events.types import EVENT_TYPES, TenantEvent
from kefu.platform.db import Database
from kefu.platform.events import api as events_api
from kefu.platform.models import OutboxEvent, Tenant
from kefu.platform.runtime import Runtime
from tests.events.sample_events import WidgetPinged
from tests.events.support import bus_of, make_tenant, started_runtime


class Boom(Exception):
    pass


async def test_event_classes_state_type_permission_and_routing_key() -> None:
    tenant_id = uuid.UUID("00000000-0000-0000-0000-0000000000aa")
    event = TenantSuspended(tenant_id=tenant_id, reason="unpaid")
    assert event.event_type == "tenant.suspended"
    assert event.permission == "events.read"
    assert event.routing_key == "tenant.00000000-0000-0000-0000-0000000000aa.tenant.suspended"
    assert event.data() == {"tenant_id": str(tenant_id), "reason": "unpaid"}
    assert EVENT_TYPES["tenant.suspended"] is TenantSuspended
    with pytest.raises(TypeError):
        TenantSuspended(reason="no tenant")  # type: ignore[call-arg]


async def test_a_second_class_cannot_claim_an_event_type() -> None:
    with pytest.raises(ValueError, match="already defined"):

        class Impostor(TenantEvent, frozen=True, kw_only=True):
            event_type = "tenant.suspended"  # type: ignore[misc]


async def test_committed_event_is_published_once_and_marked(settings) -> None:
    async with started_runtime(settings) as runtime:
        tenant_id = await make_tenant(runtime)
        widget = uuid.uuid4()
        async with bus_of(runtime).subscribe(tenant_id=tenant_id) as events:
            async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
                event_id = await emit(session, WidgetPinged(tenant_id=tenant_id, widget_id=widget, note="hi"))
            published = await events.next(timeout=10)
        assert published.event_id == event_id
        assert published.event_type == "test.widget_pinged"
        assert published.tenant_id == tenant_id
        assert published.permission == "calls.read"
        assert published.routing_key == f"tenant.{tenant_id}.test.widget_pinged"
        assert published.event() == WidgetPinged(tenant_id=tenant_id, widget_id=widget, note="hi")
        async with runtime.db.platform_session(reason="test check") as session:
            row = await session.scalar(select(OutboxEvent).where(OutboxEvent.event_id == event_id))
        assert row is not None and row.published_at is not None and row.attempts == 1
        assert bus_of(runtime).published_count == 1


async def test_rolled_back_emit_is_never_published(settings) -> None:
    async with started_runtime(settings) as runtime:
        tenant_id = await make_tenant(runtime)
        bus = bus_of(runtime)
        async with bus.subscribe(tenant_id=tenant_id) as events:
            with pytest.raises(Boom):
                async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
                    await emit(session, WidgetPinged(tenant_id=tenant_id, widget_id=uuid.uuid4(), note="rolled back"))
                    raise Boom()
            # A later committed event arrives first and alone: the rolled-back one never existed.
            async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
                await emit(session, WidgetPinged(tenant_id=tenant_id, widget_id=uuid.uuid4(), note="committed"))
            first = await events.next(timeout=10)
            assert first.data["note"] == "committed"
            assert await bus.relay() == 0
        async with runtime.db.platform_session(reason="test check") as session:
            notes = (await session.scalars(select(OutboxEvent.payload))).all()
        assert [n["note"] for n in notes] == ["committed"]
        assert bus.published_count == 1


async def test_a_tenant_session_cannot_emit_for_another_tenant(sqlite_settings) -> None:
    async with started_runtime(sqlite_settings) as runtime:
        mine = await make_tenant(runtime)
        other = await make_tenant(runtime)
        with pytest.raises(ValueError, match="session's tenant"):
            async with runtime.db.tenant_session(tenant_id=mine) as session:
                await emit(session, TenantSuspended(tenant_id=other))
        async with runtime.db.platform_session(reason="test check") as session:
            assert await session.scalar(select(func.count()).select_from(OutboxEvent)) == 0


async def test_relay_publishes_rows_left_unpublished_by_a_crash(settings) -> None:
    # A process that died between commit and publish: its rows were written,
    # never published (here: a database with no running bus at all).
    crashed = Database(settings.db)
    tenant_id = uuid.uuid4()
    async with crashed.platform_session(reason="test set-up") as session:
        session.add(Tenant(id=tenant_id, slug=f"t-{tenant_id.hex[:10]}", name="Test", branding={}))
    async with crashed.tenant_session(tenant_id=tenant_id) as session:
        first = await emit(session, TenantSuspended(tenant_id=tenant_id, reason="one"))
        second = await emit(session, TenantSuspended(tenant_id=tenant_id, reason="two"))
    await crashed.dispose()
    # The next process start relays them, in order, once.
    runtime = Runtime.build(settings, process_roles=frozenset({"api"}))
    events_api.install(runtime)
    bus = bus_of(runtime)
    received = []
    original_deliver = bus._deliver

    async def recording_deliver(events):  # observe what the relay sends on start
        received.extend(events)
        await original_deliver(events)

    bus._deliver = recording_deliver  # type: ignore[method-assign]
    await runtime.start()
    try:
        assert [(e.event_id, e.data["reason"]) for e in received] == [(first, "one"), (second, "two")]
        assert await bus.relay() == 0
        async with runtime.db.platform_session(reason="test check") as session:
            unpublished = await session.scalar(
                select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))
            )
        assert unpublished == 0
    finally:
        await runtime.stop()


async def test_failed_delivery_leaves_rows_for_the_relay(sqlite_settings) -> None:
    async with started_runtime(sqlite_settings) as runtime:
        tenant_id = await make_tenant(runtime)
        bus = bus_of(runtime)
        original_deliver = bus._deliver

        async def broken(events):
            raise ConnectionError("redis is down")

        bus._deliver = broken  # type: ignore[method-assign]
        async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
            event_id = await emit(session, TenantSuspended(tenant_id=tenant_id))
        bus._deliver = original_deliver  # type: ignore[method-assign]
        async with bus.subscribe(tenant_id=tenant_id) as events:
            assert await bus.relay() == 1
            assert (await events.next(timeout=10)).event_id == event_id


async def test_rows_committed_during_a_publication_go_out_together_afterwards(settings) -> None:
    async with started_runtime(settings) as runtime:
        tenant_id = await make_tenant(runtime)
        bus = bus_of(runtime)
        batches: list[list[str]] = []
        release = asyncio.Event()
        original_deliver = bus._deliver

        async def held_deliver(events):  # the first publication waits until released
            batches.append([e.data["note"] for e in events])
            if len(batches) == 1:
                await release.wait()
            await original_deliver(events)

        bus._deliver = held_deliver  # type: ignore[method-assign]

        async def commit(note: str) -> None:
            async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
                await emit(session, WidgetPinged(tenant_id=tenant_id, widget_id=uuid.uuid4(), note=note))

        async with bus.subscribe(tenant_id=tenant_id) as events:
            first = asyncio.create_task(commit("first"))
            while not batches:
                await asyncio.sleep(0)  # until the first publication is under way
            others = [asyncio.create_task(commit(f"n{i}")) for i in range(5)]
            while len(bus._waiting) < 5:
                await asyncio.sleep(0)  # every other commit is waiting for it
            assert not any(task.done() for task in others)  # a caller returns once its rows are out
            release.set()
            await asyncio.gather(first, *others)
            received = sorted([(await events.next(timeout=10)).data["note"] for _ in range(6)])
        assert [sorted(batch) for batch in batches] == [["first"], ["n0", "n1", "n2", "n3", "n4"]]  # commit order is theirs
        assert received == sorted(["first", "n0", "n1", "n2", "n3", "n4"])
        async with runtime.db.platform_session(reason="test check") as session:
            unpublished = await session.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None)))
        assert unpublished == 0 and bus.published_count == 6
