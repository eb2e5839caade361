"""A media node: the aiortc peers of the calls placed on this process (``kefu media``).

``MediaNode`` runs a local ``MediaPlane`` and connects it to the control
plane through Redis (protocol in kefu.webrtc.remote and docs/media-nodes.md):

* it takes the ``Command``s addressed to it (``MediaPlane.COMMANDS`` only),
  runs each as its own task and answers with a ``Reply``;
* the plane's ``CALLBACKS`` (``on_leg_closed``, ...) become ``NodeEvent``s on
  the events stream; while Redis is unreachable they wait, in order, in a
  bounded backlog;
* every ``media_heartbeat_s`` it reports its load (calls, legs, CPU,
  ``media_max_calls``).  A node the control plane declared lost is fenced:
  its heartbeat is refused, so it ends the calls it still holds and rejoins
  under a new name.

The node owns no call state and never touches the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get
from prometheus_client.core import GaugeMetricFamily

from kefu.platform import metrics, probes
from kefu.platform.problems import exception_handlers
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from kefu.webrtc.leg import OfferRejected
from kefu.webrtc.media import MediaPlane
from kefu.webrtc.remote import (
    EVENTS,
    EVENTS_MAXLEN,
    NODES,
    REPLY_TTL_MS,
    Command,
    Failure,
    Heartbeat,
    NodeEvent,
    Reply,
    commands_key,
    fence_key,
    from_wire,
    media_callbacks,
    media_commands,
    new_node_name,
    redis_client,
    replies_key,
    stop_tasks,
    to_wire,
)

log = logging.getLogger(__name__)

# A reply Redis refused is sent again this often, until the command's own timeout.
REPLY_RETRY_S = 0.25

# Leg events kept while Redis is unreachable (the oldest go first when full).
EVENT_BACKLOG = 10_000

# Writes the heartbeat unless the control plane fenced this node (declared it lost).
HEARTBEAT_SCRIPT = """
if redis.call('exists', KEYS[2]) == 1 then return 0 end
redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


class CpuMeter:
    """The process's CPU use between two samples, in percent of one core."""

    def __init__(self) -> None:
        self._wall = time.monotonic()
        self._cpu = time.process_time()

    def sample(self) -> float:
        wall, cpu = time.monotonic(), time.process_time()
        elapsed = wall - self._wall
        percent = 100.0 * (cpu - self._cpu) / elapsed if elapsed > 0 else 0.0
        self._wall, self._cpu = wall, cpu
        return round(percent, 1)


class MediaNode:
    name = "media-node"

    def __init__(self, settings: Settings, media: MediaPlane | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.media = media or MediaPlane(settings)
        self.node_id = settings.node_id
        self.node = new_node_name(settings.node_id)
        self.started_at = time.time()
        self.commands = media_commands()
        self.callbacks = media_callbacks()
        self.redis: Any = None
        self.state = "starting"
        self._seq = 0
        self._cpu = CpuMeter()
        self._backlog: deque[bytes] = deque(maxlen=EVENT_BACKLOG)
        self._flushing = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._redis_down = False
        self._heartbeat_script: Any = None
        self._stopping = False
        # Readiness: when a heartbeat was last written (``clock``), and whether the last one was refused.
        self.last_beat_at: float | None = None
        self.fenced = False

    @property
    def calls(self) -> int:
        return int(getattr(self.media, "call_count", len(getattr(self.media, "_bridges", ()))))

    @property
    def legs(self) -> int:
        count = getattr(self.media, "leg_count", None)
        if count is None:
            count = sum(len(bridge.legs) for bridge in getattr(self.media, "_bridges", {}).values())
        return int(count)

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if not self.settings.redis_url:
            raise RuntimeError("a media node needs KEFU_REDIS_URL: the control plane reaches it through Redis")
        self.redis = redis_client(self.settings.redis_url)
        self._heartbeat_script = self.redis.register_script(HEARTBEAT_SCRIPT)
        await self.media.start()
        for callback in self.callbacks:
            setattr(self.media, callback, self._forwarder(callback))
        self.state = "running"
        await self._beat_safely()
        self._tasks = [
            asyncio.create_task(self._heartbeats(), name="kefu-media-heartbeat"),
            asyncio.create_task(self._take_commands(), name="kefu-media-commands"),
        ]
        log.info("media node %s taking calls (at most %d)", self.node, self.settings.media_max_calls)

    async def stop(self) -> None:
        """Tell the control plane first (it ends this node's calls now), then close every leg."""
        self.state = "stopped"
        self._stopping = True  # redis-py may swallow a cancellation that lands mid-command
        await stop_tasks(self._tasks)
        self._tasks = []
        await self._beat_safely()
        await stop_tasks(list(self._running))
        await self.media.stop()
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None

    # --- heartbeats ---------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.settings.media_heartbeat_s)  # the heartbeat's period
            await self._beat_safely()

    async def _beat_safely(self) -> None:
        try:
            await self.heartbeat()
        except asyncio.CancelledError:
            raise
        except Exception:
            self._redis_failed("heartbeat")

    async def heartbeat(self) -> None:
        self._seq += 1
        beat = Heartbeat(
            node=self.node, node_id=self.node_id, seq=self._seq, state=self.state, calls=self.calls, legs=self.legs,
            cpu_percent=self._cpu.sample(), max_calls=self.settings.media_max_calls, started_at=self.started_at,
            pid=os.getpid(), host=socket.gethostname(),
        )
        accepted = await self._heartbeat_script(keys=[NODES, fence_key(self.node)], args=[self.node, msgspec.json.encode(beat)])
        self._redis_ok()
        self.fenced = not accepted
        if accepted:
            self.last_beat_at = self.clock()
        if not accepted and self.state == "running":
            await self._rejoin()
            return
        await self._flush_events()

    async def _rejoin(self) -> None:
        """The control plane declared this node lost (it was cut off too long) and ended its calls."""
        stale = self.node
        log.error("media node %s was declared lost; closing its %d call(s) and rejoining under a new name", stale, self.calls)
        await self.media.stop()  # closes every leg without reporting (the calls have ended)
        for callback in self.callbacks:
            setattr(self.media, callback, self._forwarder(callback))
        self.node = new_node_name(self.node_id)
        self.started_at = time.time()
        await self.heartbeat()

    async def heartbeat_check(self) -> str | None:
        """Readiness: the heartbeat is being written (within three periods, as the control plane
        wants it to place calls here) and the node is not fenced."""
        if self.fenced:
            return "fenced: declared lost by the control plane"
        if self.last_beat_at is None:
            return "no heartbeat written yet"
        age = self.clock() - self.last_beat_at
        if age > 3 * self.settings.media_heartbeat_s:
            return f"last heartbeat written {age:.1f} s ago"
        return None

    def _redis_failed(self, what: str) -> None:
        if not self._redis_down:
            self._redis_down = True
            log.warning("media node %s: Redis unreachable (%s); calls go on, reports wait", self.node, what, exc_info=True)

    def _redis_ok(self) -> None:
        if self._redis_down:
            self._redis_down = False
            log.info("media node %s: Redis reachable again", self.node)

    # --- commands -------------------------------------------------------------------------

    async def _take_commands(self) -> None:
        while not self._stopping:
            try:
                item = await self.redis.blpop([commands_key(self.node)], timeout=1)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._redis_failed("commands")
                await asyncio.sleep(0.5)  # Redis is down: retry at a gentle pace
                continue
            if item is None:
                continue
            task = asyncio.ensure_future(self._run(item[1]))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, raw: str) -> None:
        try:
            command = msgspec.json.decode(raw, type=Command)
        except msgspec.DecodeError:
            log.error("undecodable command dropped")
            return
        # Redis may be restarting: the reply is worth sending while the replica still waits for
        # it, i.e. until the command's timeout counted from when it was taken.
        deadline = time.monotonic() + command.timeout_ms / 1000
        reply = await self.execute(command)
        encoded = msgspec.json.encode(reply)
        while True:
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.lpush(replies_key(command.reply_to), encoded)
                    pipe.pexpire(replies_key(command.reply_to), REPLY_TTL_MS)
                    await pipe.execute()
                return
            except Exception:
                self._redis_failed("reply")
                if self._stopping or time.monotonic() >= deadline:
                    log.warning("media node %s: the reply to %s %s could not be sent in time", self.node, command.command, command.id)
                    return
                await asyncio.sleep(REPLY_RETRY_S)

    async def execute(self, command: Command) -> Reply:
        method = getattr(self.media, command.command, None) if command.command in self.commands else None
        if method is None:
            metrics.MEDIA_COMMANDS.labels("unknown", "unknown_command").inc()
            return Reply(id=command.id, ok=False, error=Failure(kind="failed", code="unknown_command", detail=f"media nodes have no command {command.command!r}"))
        started = time.monotonic()
        outcome = "failed"
        try:
            result = await method(**from_wire(command.kwargs))
            took_ms = (time.monotonic() - started) * 1000
            if took_ms > command.timeout_ms:
                log.warning("%s took %.0f ms on media node %s; the control plane gave up after %d ms",
                            command.command, took_ms, self.node, command.timeout_ms)
            outcome = "ok"
            return Reply(id=command.id, ok=True, result=to_wire(result))
        except OfferRejected as exc:
            outcome = "offer_rejected"
            return Reply(id=command.id, ok=False, error=Failure(kind="offer_rejected", code=exc.code, detail=exc.detail))
        except Exception as exc:
            log.exception("%s failed on media node %s", command.command, self.node)
            detail = f"{command.command} failed on media node {self.node}: {type(exc).__name__}"
            return Reply(id=command.id, ok=False, error=Failure(kind="failed", code="media_failed", detail=detail))
        finally:
            metrics.MEDIA_COMMANDS.labels(command.command, outcome).inc()
            metrics.MEDIA_COMMAND_SECONDS.labels(command.command).observe(time.monotonic() - started)

    # --- events to the control plane -------------------------------------------------------

    def _forwarder(self, callback: str) -> Callable[..., Any]:
        async def forward(*args: Any) -> None:
            event = NodeEvent(node=self.node, callback=callback, args=to_wire(list(args)))
            self._backlog.append(msgspec.json.encode(event))
            await self._flush_events()

        forward.__name__ = f"forward_{callback}"
        return forward

    async def _flush_events(self) -> None:
        async with self._flushing:
            while self._backlog:
                try:
                    await self.redis.xadd(EVENTS, {"m": self._backlog[0]}, maxlen=EVENTS_MAXLEN, approximate=True)
                except Exception:
                    self._redis_failed("events")
                    return  # the next heartbeat tries again
                self._backlog.popleft()


# --- the `kefu media` process ---------------------------------------------------------------


def build_node_runtime(settings: Settings) -> Runtime:
    """A runtime with only the media role: kefu.webrtc's install gives it a ``MediaNode``."""
    from kefu.webrtc import api

    runtime = Runtime.build(settings, process_roles=frozenset({"media"}))
    api.install(runtime)
    return runtime


def node_figures(node: MediaNode) -> list[GaugeMetricFamily]:
    """The node's own gauges, read on every scrape."""
    calls = GaugeMetricFamily("kefu_media_calls", "Calls on this media node.")
    calls.add_metric([], node.calls)
    legs = GaugeMetricFamily("kefu_media_legs", "Media legs (peer connections) on this media node.")
    legs.add_metric([], node.legs)
    age = GaugeMetricFamily("kefu_media_heartbeat_age_seconds", "Since this node's heartbeat was last written (-1: never).")
    age.add_metric([], -1.0 if node.last_beat_at is None else node.clock() - node.last_beat_at)
    return [calls, legs, age]


def create_node_app(runtime: Runtime) -> Litestar:
    """The node's HTTP routes are its probes — ``/health``, ``/ready``, ``/metrics``
    (docs/observability.md); calls come through Redis."""
    node: MediaNode = runtime.components["media_node"]
    readiness = probes.readiness_of(runtime)
    readiness.add_check("heartbeat", node.heartbeat_check)
    metrics.scrape_state(runtime).add_live(lambda: node_figures(node))

    @get("/health", include_in_schema=False, sync_to_thread=False)
    def health() -> dict[str, Any]:
        return {"status": "ok" if runtime.started else "starting", "node": node.node, "calls": node.calls, "legs": node.legs}

    @get("/ready", include_in_schema=False)
    async def ready() -> dict[str, Any]:
        return await readiness.report()

    @get("/metrics", include_in_schema=False)
    async def metrics_endpoint(request: Request) -> Response[bytes]:
        return await probes.metrics_response(runtime, request)

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        readiness.begin()
        restore_signals = probes.mark_stopping_on_signals(readiness)
        try:
            await runtime.start()
        except BaseException:
            restore_signals()
            raise
        try:
            yield
        finally:
            readiness.shutting_down()  # /ready answers 503 while the node hands its calls back
            restore_signals()
            await runtime.stop()
            await readiness.close()

    return Litestar(
        route_handlers=[health, ready, metrics_endpoint], lifespan=[lifespan], exception_handlers=exception_handlers,  # type: ignore[arg-type]
        openapi_config=None,
    )
