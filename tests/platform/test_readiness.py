"""/ready on the API app, the worker's probe server and a media node: 200 while the process can
take work; 503 ``not_ready`` naming the failed check when Redis is down or does not answer,
and from the moment shutdown begins."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from probe_support import TOKEN, serving

from kefu.platform import probes
from kefu.platform.devservices import RedisServer
from kefu.platform.events.worker import build_worker_runtime, serve_worker
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings


class HeldStop:
    """A service whose stop waits until the test lets it go: shutdown, caught in the middle."""

    name = "held stop"

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.release = asyncio.Event()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopping.set()
        await self.release.wait()


def assert_not_ready(response: httpx.Response, failed: list[str]) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == 503, body
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (body["code"], body["failed"]) == ("not_ready", failed)
    return body


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis server this test may stop (the session's is shared)."""
    server = RedisServer.start()
    try:
        yield server
    finally:
        server.process.send_signal(signal.SIGCONT)
        server.process.terminate()
        server.process.wait(10)


# --- the API app ----------------------------------------------------------------------------------


async def test_ready_when_started_and_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert (response.status_code, response.json()) == (200, {"status": "ready", "checks": {"runtime": "ok", "database": "ok"}})


async def test_ready_answers_503_from_the_moment_shutdown_begins(runtime: Runtime, pooled_app: Callable[[Runtime], Litestar]) -> None:
    app = pooled_app(runtime)
    held = HeldStop()
    runtime.add_service(held)  # the last service: stopped first
    opened, closing = asyncio.Event(), asyncio.Event()
    transport = httpx.ASGITransport(app=app)

    async def serve() -> None:
        async with app.lifespan():
            opened.set()
            await closing.wait()

    server = asyncio.create_task(serve())
    await opened.wait()
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as client:
        assert (await client.get("/ready")).status_code == 200
        closing.set()
        await held.stopping.wait()
        body = assert_not_ready(await client.get("/ready"), ["runtime"])
        assert body["checks"] == {"runtime": "stopping", "database": "skipped"}
        assert (await client.get("/health")).status_code == 200  # alive all the same
    held.release.set()
    await server


@pytest.mark.redis
async def test_ready_answers_503_naming_redis_while_redis_is_down(
    make_settings: Callable[..., Settings], backend: str, own_redis: RedisServer, pooled_app: Callable[[Runtime], Litestar]
) -> None:
    settings = make_settings(backend, KEFU_REDIS_URL=own_redis.url)
    runtime = Runtime.build(settings, process_roles=frozenset({"api"}))
    async with serving(pooled_app(runtime)) as client:
        ready = await client.get("/ready")
        assert (ready.status_code, ready.json()["checks"]) == (200, {"runtime": "ok", "database": "ok", "redis": "ok"})

        own_redis.process.terminate()
        own_redis.process.wait(10)
        body = assert_not_ready(await client.get("/ready"), ["redis"])
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["redis"].startswith("failed: ")

        own_redis._spawn()  # back on the same port
        assert (await client.get("/ready")).status_code == 200


@pytest.mark.redis
async def test_a_redis_that_does_not_answer_cannot_hang_the_probe(
    make_settings: Callable[..., Settings], sqlite_template: Path, own_redis: RedisServer, pooled_app: Callable[[Runtime], Litestar]
) -> None:
    runtime = Runtime.build(make_settings("sqlite", KEFU_REDIS_URL=own_redis.url), process_roles=frozenset({"api"}))
    async with serving(pooled_app(runtime)) as client:
        assert (await client.get("/ready")).status_code == 200
        os.kill(own_redis.process.pid, signal.SIGSTOP)  # alive, silent
        try:
            began = time.monotonic()
            body = assert_not_ready(await client.get("/ready"), ["redis"])
            took = time.monotonic() - began
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
    assert body["checks"]["redis"] in (f"no answer within {probes.CHECK_TIMEOUT_S:g} s", "failed: TimeoutError")
    assert took < probes.CHECK_TIMEOUT_S + 1.0


# --- kefu worker's probe server ----------------------------------------------------------------------


@pytest.mark.redis
async def test_the_worker_serves_its_probes_and_stops_being_ready_when_it_stops(
    make_settings: Callable[..., Settings], backend: str, redis_server: RedisServer
) -> None:
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    runtime = build_worker_runtime(make_settings(backend, KEFU_REDIS_URL=redis_server.url, KEFU_METRICS_TOKEN=TOKEN))
    held = HeldStop()
    runtime.add_service(held)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop, running = asyncio.Event(), asyncio.Event()
    worker = asyncio.create_task(serve_worker(runtime, stop, sockets=[listener], running=running))
    await running.wait()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/health")).json() == {"status": "ok", "role": "worker"}
            ready = await client.get("/ready")
            assert (ready.status_code, ready.json()) == (200, {"status": "ready", "checks": {"runtime": "ok", "database": "ok", "redis": "ok"}})
            assert (await client.get("/metrics")).status_code == 401
            scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert scraped.status_code == 200 and "process_cpu_seconds_total" in scraped.text

            stop.set()
            await held.stopping.wait()
            body = assert_not_ready(await client.get("/ready"), ["runtime"])
            assert body["checks"]["runtime"] == "stopping"
    finally:
        stop.set()
        held.release.set()
        await worker
    listener.close()


# --- a media node -------------------------------------------------------------------------------------


@pytest.mark.redis
async def test_a_media_node_is_ready_while_its_heartbeat_is_written(make_settings: Callable[..., Settings], sqlite_template: Path, own_redis: RedisServer) -> None:
    from kefu.webrtc.node import build_node_runtime, create_node_app

    settings = make_settings("sqlite", KEFU_REDIS_URL=own_redis.url, KEFU_METRICS_TOKEN=TOKEN, KEFU_NODE_ID="media-t",
                             KEFU_MEDIA_HEARTBEAT_MS="60000")  # one heartbeat (at start) during this test
    runtime = build_node_runtime(settings)
    node = runtime.components["media_node"]
    async with serving(create_node_app(runtime)) as client:
        ready = await client.get("/ready")
        assert (ready.status_code, ready.json()["checks"]) == (200, {"runtime": "ok", "redis": "ok", "heartbeat": "ok"})
        scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert "kefu_media_calls 0.0" in scraped.text and "kefu_media_legs 0.0" in scraped.text

        written = node.last_beat_at
        node.clock = lambda: written + 200.0  # three heartbeat periods (180 s) have gone by without one
        body = assert_not_ready(await client.get("/ready"), ["heartbeat"])
        assert body["checks"]["heartbeat"] == "last heartbeat written 200.0 s ago"


@pytest.mark.redis
async def test_a_real_kefu_media_process_serves_ready_and_metrics(tmp_path: Path, redis_server: RedisServer) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "webrtc"))
    from nodes_support import MediaNodeProcess, private_key_pem, until

    unused = "postgresql+asyncpg://kefu_app@127.0.0.1:1/unused"  # a media node never connects to the database
    env = {
        "KEFU_MODE": "production", "KEFU_REDIS_URL": redis_server.url, "KEFU_JWT_PRIVATE_KEY": private_key_pem(),
        "KEFU_DATABASE_URL": unused, "KEFU_PLATFORM_DATABASE_URL": unused, "KEFU_DATA_DIR": str(tmp_path / "node"),
        "KEFU_METRICS_TOKEN": TOKEN,
    }
    node = MediaNodeProcess(env, node_id=f"probe-{os.getpid()}", log_dir=tmp_path).start()
    base = f"http://127.0.0.1:{node.env['KEFU_PORT']}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:

            async def ready() -> httpx.Response | None:
                try:
                    response = await client.get("/ready")
                except httpx.TransportError:
                    return None  # not listening yet
                return response if response.status_code == 200 else None

            answer = await until(ready, timeout=30, what=f"the media node to be ready; its log:\n{node.log()}")
            assert answer.json() == {"status": "ready", "checks": {"runtime": "ok", "redis": "ok", "heartbeat": "ok"}}
            assert (await client.get("/metrics")).status_code == 401
            scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert scraped.status_code == 200 and "kefu_media_calls 0.0" in scraped.text
        node.signal(signal.SIGTERM)
        assert node.process is not None
        node.process.wait(15)  # uvicorn re-raises SIGTERM once its graceful shutdown is done
        log = node.log()
        # SIGTERM marked the node not ready before uvicorn began its shutdown.
        assert log.index("shutting down: /ready answers 503 from now on") < log.index("Shutting down") < log.index("Application shutdown complete")
    finally:
        node.stop()


@pytest.mark.redis
async def test_a_real_kefu_worker_process_serves_its_probes_and_drains_on_sigterm(
    make_settings: Callable[..., Settings], sqlite_template: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    import subprocess
    import sys

    import redis

    sys.path.insert(0, str(Path(__file__).parents[1] / "webrtc"))
    from nodes_support import KEFU, until

    from kefu.platform.devservices import free_port

    redis.Redis.from_url(redis_server.url).flushdb()
    settings = make_settings("sqlite")
    port = free_port()
    env = {**os.environ, "KEFU_DATA_DIR": str(settings.data_dir), "KEFU_DATABASE_URL": settings.db.url, "KEFU_REDIS_URL": redis_server.url,
           "KEFU_PORT": str(port), "KEFU_METRICS_TOKEN": TOKEN}
    log_path = tmp_path / "worker.log"
    with log_path.open("ab") as log:
        worker = subprocess.Popen([KEFU, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def ready() -> httpx.Response | None:
                try:
                    response = await client.get("/ready")
                except httpx.TransportError:
                    return None  # not listening yet
                return response if response.status_code == 200 else None

            answer = await until(ready, timeout=30, what=f"the worker to be ready; its log:\n{log_path.read_text()}")
            assert answer.json()["checks"] == {"runtime": "ok", "database": "ok", "redis": "ok"}
            scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert scraped.status_code == 200 and "process_cpu_seconds_total" in scraped.text

        taken = subprocess.run([KEFU, "worker"], env=env, capture_output=True, text=True, timeout=60)  # the port is this worker's
        assert (taken.returncode, f"127.0.0.1:{port}") == (2, taken.stdout.split(" on ")[1].split(" ")[0])

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
        assert "shutting down: /ready answers 503 from now on" in log_path.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
