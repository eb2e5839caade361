"""/metrics: off without KEFU_METRICS_TOKEN, behind its bearer token otherwise, and the
figures move with real calls, routing, jobs and requests — with no tenant data in any label."""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from probe_support import TOKEN, serving
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import metrics
from kefu.platform.devservices import RedisServer
from kefu.platform.events import JobContext, enqueue, tenant_job
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from kefu.tenants.clock import ManualClock, ManualTimers

sys.path.insert(0, str(Path(__file__).parents[1] / "tenants"))
sys.path.insert(0, str(Path(__file__).parents[1] / "webrtc"))
from nodes_support import write_heartbeat  # noqa: E402
from tenants_support import OFFER, START, InProcessMedia, activate_user, bearer, create_tenant, create_user, manual_runtime  # noqa: E402

SCRAPE = {"Authorization": f"Bearer {TOKEN}"}
UUID_TEXT = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.IGNORECASE)


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(exposition: str, name: str, **labels: str) -> float:
    return samples(exposition).get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return response.text


# --- the gate ------------------------------------------------------------------------------------


async def test_metrics_answer_404_while_the_token_setting_is_unset(
    make_settings: Callable[..., Settings], sqlite_template: Path, pooled_app: Callable[[Runtime], Litestar]
) -> None:
    runtime = Runtime.build(make_settings("sqlite"))
    async with serving(pooled_app(runtime)) as client:
        for headers in ({}, SCRAPE):
            response = await client.get("/metrics", headers=headers)
            assert (response.status_code, response.json()["code"]) == (404, "not_found")


async def test_metrics_need_the_bearer_token(
    make_settings: Callable[..., Settings], sqlite_template: Path, pooled_app: Callable[[Runtime], Litestar]
) -> None:
    runtime = Runtime.build(make_settings("sqlite", KEFU_METRICS_TOKEN=TOKEN))
    async with serving(pooled_app(runtime)) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN[:-1]}x"}, {"Authorization": f"Basic {TOKEN}"}):
            response = await client.get("/metrics", headers=headers)
            assert (response.status_code, response.json()["code"]) == (401, "unauthorized"), headers
        body = await scrape(client)
    assert value(body, "kefu_outbox_unpublished") == 0
    assert ("process_cpu_seconds_total", frozenset()) in samples(body)


# --- calls, routing, queues and agents --------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def timers(clock: ManualClock) -> ManualTimers:
    return ManualTimers(clock)


@pytest.fixture
def cc_runtime(make_settings: Callable[..., Settings], backend: str, clock: ManualClock, timers: ManualTimers) -> Runtime:
    return manual_runtime(make_settings(backend, KEFU_METRICS_TOKEN=TOKEN), clock, timers)


@pytest.fixture
def cc_app(cc_runtime: Runtime, clock: ManualClock, pooled_app: Callable[[Runtime], Litestar]) -> Litestar:
    app = pooled_app(cc_runtime)
    cc_runtime.components["media"] = InProcessMedia(cc_runtime.settings.recordings_dir, clock)
    return app


async def place_call(client: httpx.AsyncClient, widget_key: str, caller: str) -> dict[str, Any]:
    response = await client.post(f"/api/v1/widget/{widget_key}/calls", json={"caller_name": caller, "offer_sdp": OFFER})
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_call_booked_on_arrival_is_timed_and_one_that_waits_is_not(
    cc_runtime: Runtime, cc_app: Litestar, timers: ManualTimers
) -> None:
    runtime = cc_runtime
    scraped_at = [0.0]
    state = metrics.scrape_state(runtime)
    state.clock = lambda: scraped_at[0]  # the 5 s cache, moved by hand
    async with serving(cc_app) as client:
        tenant_id = await create_tenant(runtime, "acme")
        admin = bearer(runtime, tenant_id=tenant_id, user_id=await create_user(runtime, tenant_id, "admin@acme.test"), roles={"tenant_admin"})
        agent = (await client.post("/api/v1/agents", json={"email": "ann@acme.test", "display_name": "Ann"}, headers=admin)).json()
        await activate_user(runtime, tenant_id, uuid.UUID(agent["user_id"]))
        ann = bearer(runtime, tenant_id=tenant_id, user_id=uuid.UUID(agent["user_id"]), roles={"agent"})
        queue = (await client.post("/api/v1/queues", json={"name": "Support"}, headers=admin)).json()
        await client.put(f"/api/v1/queues/{queue['id']}/members", json={"agent_ids": [agent["id"]]}, headers=admin)
        widget = (await client.post("/api/v1/entry-points", json={"name": "Web", "queue_id": queue["id"]}, headers=admin)).json()["widget_key"]
        await client.post("/api/v1/agent/session", headers=ann)
        assert (await client.put("/api/v1/agent/status", json={"status": "available"}, headers=ann)).status_code == 200
        before = await scrape(client)

        first = await place_call(client, widget, "Li Lei")  # Ann is free: booked on arrival, her phone rings
        scraped_at[0] += metrics.CACHE_S
        after_first = await scrape(client)
        second = await place_call(client, widget, "Han Meimei")  # Ann is ringing: this one waits
        await timers.advance(7)
        cached = await scrape(client)
        scraped_at[0] += metrics.CACHE_S
        after_second = await scrape(client)
        hung_up = await client.post(f"/api/v1/widget/calls/{second['call_id']}/hangup", headers={"X-Caller-Token": second["caller_token"]})
        assert hung_up.status_code == 204
        after_hangup = await scrape(client)

    setup = "kefu_call_setup_seconds_count"
    assert value(after_first, setup) - value(before, setup) == 1
    assert value(after_second, setup) - value(after_first, setup) == 0
    assert value(after_first, "kefu_call_setup_seconds_bucket", le="10.0") - value(before, "kefu_call_setup_seconds_bucket", le="10.0") == 1
    started = ("kefu_calls_started_total", {"entry": "web"})
    assert value(after_second, started[0], **started[1]) - value(before, started[0], **started[1]) == 2
    assert value(after_first, "kefu_routing_offers_total", mode="single") - value(before, "kefu_routing_offers_total", mode="single") == 1
    assert value(after_hangup, "kefu_calls_ended_total", reason="abandoned") - value(before, "kefu_calls_ended_total", reason="abandoned") == 1

    # Scrape-time state: the cache served the scrape after the second call; the next read the database again.
    assert value(cached, "kefu_queue_calls_waiting", kind="caller") == 0
    assert value(after_first, "kefu_agents", status="available", system_state="ringing") == 1
    assert value(after_second, "kefu_queue_calls_waiting", kind="caller") == 1
    assert value(after_second, "kefu_queue_longest_wait_seconds", kind="caller") == 7.0
    assert value(after_second, "kefu_calls_in_progress", status="ringing") == 1
    assert value(after_second, "kefu_calls_in_progress", status="queued") == 1
    assert state.refreshes == 3

    # No tenant data anywhere: no UUID in any label value, and none of this tenant's ids or names in the text.
    for body in (after_first, after_second, after_hangup):
        labels = [v for (_, pairs) in samples(body) for _, v in pairs]
        assert [v for v in labels if UUID_TEXT.search(v)] == []
        for secret in (str(tenant_id), tenant_id.hex, agent["id"], queue["id"], first["call_id"], second["call_id"], widget, "acme", "Li Lei"):
            assert secret not in body


# --- jobs -----------------------------------------------------------------------------------------

ATTEMPTS: dict[str, int] = {}


@tenant_job(name="tests.metrics.note", key=lambda kw: f"note:{kw['probe']}")
async def note(job: JobContext, session: AsyncSession, *, tenant_id: uuid.UUID, probe: str) -> None:
    ATTEMPTS[probe] = ATTEMPTS.get(probe, 0) + 1


@tenant_job(name="tests.metrics.always_fails", max_retries=1, min_backoff_ms=1, max_backoff_ms=2)
async def always_fails(job: JobContext, session: AsyncSession, *, tenant_id: uuid.UUID, probe: str) -> None:
    raise ConnectionError("the far end is down")


async def test_jobs_are_counted_by_outcome(cc_runtime: Runtime, cc_app: Litestar) -> None:
    runtime = cc_runtime
    probe = uuid.uuid4().hex
    async with serving(cc_app) as client:
        tenant_id = await create_tenant(runtime, "acme")
        before = await scrape(client)
        for job in (note, note, always_fails):  # the second note has the first one's key: a duplicate
            async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
                await enqueue(session, job, tenant_id=tenant_id, probe=probe)
            if job is always_fails:
                with pytest.raises(ConnectionError):  # the stub broker's join reports the message that failed for good
                    await runtime.components["jobs"].drain()
            else:
                await runtime.components["jobs"].drain()
        after = await scrape(client)

    def moved(actor: str, outcome: str) -> float:
        return value(after, "kefu_jobs_total", actor=actor, outcome=outcome) - value(before, "kefu_jobs_total", actor=actor, outcome=outcome)

    assert ATTEMPTS[probe] == 1
    assert (moved("tests.metrics.note", "done"), moved("tests.metrics.note", "skipped_duplicate")) == (1, 1)
    assert (moved("tests.metrics.always_fails", "retried"), moved("tests.metrics.always_fails", "failed")) == (1, 1)
    assert value(after, "kefu_job_seconds_count", actor="tests.metrics.always_fails") - value(before, "kefu_job_seconds_count", actor="tests.metrics.always_fails") == 2


# --- HTTP ---------------------------------------------------------------------------------------------


async def test_requests_are_counted_by_route_template_not_by_path(
    make_settings: Callable[..., Settings], sqlite_template: Path, pooled_app: Callable[[Runtime], Litestar]
) -> None:
    runtime = Runtime.build(make_settings("sqlite", KEFU_METRICS_TOKEN=TOKEN))
    call_id = uuid.uuid4()
    async with serving(pooled_app(runtime)) as client:
        before = await scrape(client)
        assert (await client.get(f"/api/v1/calls/{call_id}")).status_code == 401
        after = await scrape(client)
    labels = {"method": "GET", "route": "/api/v1/calls/{call_id}", "status": "4xx"}
    assert value(after, "kefu_http_requests_total", **labels) - value(before, "kefu_http_requests_total", **labels) == 1
    assert str(call_id) not in after
    assert not any(dict(pairs).get("route") == "/metrics" for (_, pairs) in samples(after))


# --- media nodes, as the API sees them ----------------------------------------------------------------


@pytest.mark.redis
async def test_media_node_gauges_are_per_node_id(make_settings: Callable[..., Settings], sqlite_template: Path, redis_server: RedisServer) -> None:
    from kefu.webrtc.remote import RemoteMediaPlane

    remote = RemoteMediaPlane(make_settings("sqlite", KEFU_REDIS_URL=redis_server.url))
    await remote.start()
    try:
        await remote.redis.flushdb()
        await write_heartbeat(remote.redis, node="media-a/1", calls=3, max_calls=100, cpu_percent=12.5)
        await write_heartbeat(remote.redis, node="media-b/1", calls=1, max_calls=50, cpu_percent=4.0)
        await remote.wait_for_nodes(lambda nodes: len(nodes) == 2, timeout=5)
        families = {family.name: family for family in metrics.media_node_figures(remote)}
    finally:
        await remote.stop()

    def by_node(name: str) -> dict[str, float]:
        return {sample.labels["node_id"]: sample.value for sample in families[name].samples}

    assert families["kefu_media_nodes_live"].samples[0].value == 2
    assert by_node("kefu_media_node_calls") == {"media-a": 3, "media-b": 1}
    assert by_node("kefu_media_node_legs") == {"media-a": 6, "media-b": 2}
    assert by_node("kefu_media_node_max_calls") == {"media-a": 100, "media-b": 50}
    assert by_node("kefu_media_node_cpu_percent") == {"media-a": 12.5, "media-b": 4.0}
