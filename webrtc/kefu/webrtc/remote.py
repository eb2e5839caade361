"""Media nodes seen from the control plane: ``RemoteMediaPlane`` and the Redis wire protocol.

In production the aiortc peers run in ``kefu media`` processes (media nodes,
``kefu.webrtc.node``), and every API replica's ``runtime.components["media"]``
is a ``RemoteMediaPlane``: the same async interface as ``MediaPlane`` (its
``COMMANDS`` become methods, its ``CALLBACKS`` attributes the control plane
sets), plus:

* ``await place_call(tenant_id=, call_id=) -> node`` picks the least loaded
  live node for a new call and pins the call to it; the control plane records
  the node on ``Call.media_node``, and every later command for the call goes
  to that node (found again through ``locate_call`` on another replica);
* ``on_node_lost(node)`` is called once per dead node, by one replica;
* ``live_call_nodes()`` (set by the control plane) lets one replica find
  calls pinned to nodes nobody knows any more (Redis lost its data).

The protocol (keys, messages, timings) is described in docs/media-nodes.md;
the names below are its single definition.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from kefu.platform import metrics
from kefu.platform.problems import Problem
from kefu.platform.settings import Settings
from kefu.webrtc.bridge import RecordedFile
from kefu.webrtc.leg import OfferRejected
from kefu.webrtc.media import MediaPlane

log = logging.getLogger(__name__)

# --- what can be called remotely ----------------------------------------------------

# Used until MediaPlane declares its own COMMANDS / CALLBACKS.
FALLBACK_COMMANDS = ("answer_leg", "bridge", "end_call", "close_leg", "leg_states")
FALLBACK_CALLBACKS = ("on_leg_closed",)


def media_commands() -> tuple[str, ...]:
    return tuple(getattr(MediaPlane, "COMMANDS", FALLBACK_COMMANDS))


def media_callbacks() -> tuple[str, ...]:
    return tuple(getattr(MediaPlane, "CALLBACKS", FALLBACK_CALLBACKS))


# What a command answers when the call's node is gone: its legs went with it,
# so ending or inspecting the call is already done.  Other commands fail.
GONE_WITH_THE_NODE: dict[str, Callable[[], Any]] = {"end_call": list, "close_leg": lambda: None, "leg_states": dict}

DEFAULT_COMMAND_TIMEOUT_S = 5.0
# answer_leg waits up to media.ANSWER_TIMEOUT_S (10 s) for ICE gathering;
# play_prompt may synthesise speech; end_call finishes recordings (an upload to S3).
COMMAND_TIMEOUTS_S = {"answer_leg": 15.0, "play_prompt": 15.0, "end_call": 30.0}

# --- Redis keys -----------------------------------------------------------------------

PREFIX = "kefu:media"
NODES = f"{PREFIX}:nodes"  # hash: node -> Heartbeat (JSON)
EVENTS = f"{PREFIX}:events"  # stream: NodeEvent (field "m"), node -> control plane
EVENTS_GROUP = "control-plane"
EVENTS_MAXLEN = 100_000
SWEEP_LOCK = f"{PREFIX}:sweep"


def commands_key(node: str) -> str:
    """List of ``Command``s for one node (RPUSH by the control plane, BLPOP by the node)."""
    return f"{PREFIX}:commands:{node}"


def replies_key(replica: str) -> str:
    """List of ``Reply``s for one API replica."""
    return f"{PREFIX}:replies:{replica}"


def fence_key(node: str) -> str:
    """Set when the control plane declared the node lost: the node may not report under that name again."""
    return f"{PREFIX}:fence:{node}"


def lost_lock_key(node: str) -> str:
    """Held by the one replica ending a lost node's calls."""
    return f"{PREFIX}:lost:{node}"


REPLY_TTL_MS = 60_000
FENCE_TTL_S = 7 * 24 * 3600
LOST_LOCK_MS = 30_000
ORPHAN_SWEEP_S = 30.0
EVENT_RECLAIM_S = 10.0
EVENT_IDLE_MS = 30_000  # an event read but not acknowledged this long is handled again
MAX_EVENT_DELIVERIES = 5
MAX_PINS = 100_000
# A node id is shown in Call.media_node (64 characters) with "/<incarnation>".
NODE_ID_SHOWN = 55


def new_node_name(node_id: str) -> str:
    """A node process's name: its configured id and a random incarnation (a restart is a new node)."""
    return f"{node_id[:NODE_ID_SHOWN]}/{secrets.token_hex(4)}"


def redis_client(url: str) -> Any:
    import redis.asyncio as aioredis

    return aioredis.from_url(url, decode_responses=True, socket_connect_timeout=2.0, socket_timeout=5.0, health_check_interval=10)


# --- messages ---------------------------------------------------------------------------


class Heartbeat(msgspec.Struct, kw_only=True):
    node: str  # "<node_id>/<incarnation>", what Call.media_node records
    node_id: str  # KEFU_NODE_ID (a restarted process keeps it)
    seq: int  # grows with every heartbeat: a changed seq is what "alive" means
    state: str  # "running" | "stopped" (shutting down: its calls are lost now)
    calls: int
    legs: int
    cpu_percent: float  # the process's CPU time over the last interval (100 = one core)
    max_calls: int
    started_at: float  # epoch seconds, the node's clock
    pid: int = 0
    host: str = ""


class Command(msgspec.Struct, kw_only=True):
    id: str
    reply_to: str  # the API replica waiting for the Reply
    command: str  # one of MediaPlane.COMMANDS
    kwargs: dict[str, Any]  # wire-encoded (to_wire)
    timeout_ms: int  # how long the control plane waits for the reply (a later reply is ignored)


class Failure(msgspec.Struct, kw_only=True):
    kind: str  # "offer_rejected" (re-raised as OfferRejected) | "failed" (MediaUnavailable)
    code: str
    detail: str


class Reply(msgspec.Struct, kw_only=True):
    id: str
    ok: bool
    result: Any = None  # wire-encoded
    error: Failure | None = None


class NodeEvent(msgspec.Struct, kw_only=True):
    node: str
    callback: str  # one of MediaPlane.CALLBACKS
    args: list[Any]  # wire-encoded positional arguments


# --- values on the wire -----------------------------------------------------------------
# JSON plus tagged values: {"$uuid": s}, {"$datetime": iso}, {"$bytes": base64},
# {"$dataclass": name, "fields": {...}} for registered dataclasses, and
# {"$dict": {...}} for a dict whose keys start with "$".  Tuples travel as lists.

WIRE_TYPES: dict[str, type] = {"RecordedFile": RecordedFile}
for _cls in getattr(MediaPlane, "WIRE_TYPES", ()):
    WIRE_TYPES[_cls.__name__] = _cls


def register_wire_type(cls: type) -> type:
    """Let a dataclass travel between media nodes and the control plane (decodes by its type hints)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    WIRE_TYPES[cls.__name__] = cls
    return cls


def to_wire(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, UUID):
        return {"$uuid": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(value).decode()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if WIRE_TYPES.get(name) is not type(value):
            raise TypeError(f"{name} is not registered with kefu.webrtc.remote.register_wire_type")
        return {"$dataclass": name, "fields": msgspec.to_builtins(value)}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("only dicts with string keys can be sent to a media node")
        encoded = {k: to_wire(v) for k, v in value.items()}
        return {"$dict": encoded} if any(k.startswith("$") for k in value) else encoded
    raise TypeError(f"a {type(value).__name__} cannot be sent to a media node")


def from_wire(value: Any) -> Any:
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and "$uuid" in value:
        return UUID(value["$uuid"])
    if len(value) == 1 and "$datetime" in value:
        return datetime.fromisoformat(value["$datetime"])
    if len(value) == 1 and "$bytes" in value:
        return base64.b64decode(value["$bytes"])
    if len(value) == 1 and "$dict" in value:
        return {k: from_wire(v) for k, v in value["$dict"].items()}
    if set(value) == {"$dataclass", "fields"}:
        cls = WIRE_TYPES.get(value["$dataclass"])
        if cls is None:
            raise ValueError(f"unknown wire type {value['$dataclass']!r}")
        return msgspec.convert(value["fields"], cls)
    return {k: from_wire(v) for k, v in value.items()}


# --- errors --------------------------------------------------------------------------------


class MediaUnavailable(Problem):
    """No media node can do this now (none live, the call's node died, no answer in time, Redis down).

    ``node_lost``: the call's node is known dead or fenced, so nothing it did for the call
    outlives it (the control plane may place a call that does not exist yet elsewhere)."""

    def __init__(self, detail: str, *, node_lost: bool = False) -> None:
        super().__init__(503, "media_unavailable", detail)
        self.node_lost = node_lost


def raise_failure(failure: Failure) -> None:
    if failure.kind == "offer_rejected":
        raise OfferRejected(failure.code, failure.detail)
    raise MediaUnavailable(failure.detail)


# --- the control plane's view of the nodes ----------------------------------------------------


@dataclasses.dataclass
class NodeStatus:
    node: str
    node_id: str
    seq: int
    state: str
    calls: int
    legs: int
    cpu_percent: float
    max_calls: int
    started_at: float
    # This replica's monotonic clock when the seq last changed (never the node's clock).
    last_seen: float
    # Calls this replica placed there since the node's last report.
    placed: int = 0

    @property
    def load(self) -> float:
        return (self.calls + self.placed) / max(self.max_calls, 1)

    def update(self, beat: Heartbeat, now: float) -> None:
        self.seq, self.state, self.calls, self.legs = beat.seq, beat.state, beat.calls, beat.legs
        self.cpu_percent, self.max_calls, self.started_at = beat.cpu_percent, beat.max_calls, beat.started_at
        self.last_seen, self.placed = now, 0

    @classmethod
    def of(cls, beat: Heartbeat, now: float) -> "NodeStatus":
        return cls(
            node=beat.node, node_id=beat.node_id, seq=beat.seq, state=beat.state, calls=beat.calls, legs=beat.legs,
            cpu_percent=beat.cpu_percent, max_calls=beat.max_calls, started_at=beat.started_at, last_seen=now,
        )


NodeLostCallback = Callable[[str], Awaitable[object]]
LocateCall = Callable[[UUID, UUID], Awaitable[str | None]]
LiveCallNodes = Callable[[], Awaitable[set[str]]]


class RemoteMediaPlane:
    """The media plane of an API replica whose peers run on media nodes (a runtime service)."""

    name = "media"

    def __init__(
        self,
        settings: Settings,
        *,
        replica_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        command_timeouts_s: dict[str, float] | None = None,
        orphan_sweep_s: float = ORPHAN_SWEEP_S,
    ) -> None:
        if not settings.redis_url:
            raise ValueError("media nodes need KEFU_REDIS_URL")
        self.settings = settings
        self.commands = media_commands()
        self.callbacks = media_callbacks()
        for callback in self.callbacks:
            setattr(self, callback, None)
        self.replica_id = replica_id or f"{settings.node_id}/{secrets.token_hex(4)}"
        self.clock = clock
        self.heartbeat_s = settings.media_heartbeat_s
        self.timeout_s = settings.media_node_timeout_s
        self.command_timeouts_s = {**COMMAND_TIMEOUTS_S, **(command_timeouts_s or {})}
        self.orphan_sweep_s = orphan_sweep_s
        # Set by the control plane (kefu.tenants.callflow).
        self.on_node_lost: NodeLostCallback | None = None
        self.locate_call: LocateCall | None = None
        self.live_call_nodes: LiveCallNodes | None = None
        self.redis: Any = None
        self._nodes: dict[str, NodeStatus] = {}
        self._lost: set[str] = set()
        self._handling: set[str] = set()
        self._pins: OrderedDict[tuple[UUID, UUID], str] = OrderedDict()
        self._pending: dict[str, tuple[str, asyncio.Future[Reply]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        # Since when this replica's view of the nodes has been complete (None: Redis unreachable).
        self._view_since: float | None = None
        self._changed: asyncio.Condition | None = None
        self._stopping = False

    def __getattr__(self, name: str) -> Any:
        # MediaPlane.COMMANDS become coroutine methods; nothing else does (e.g. the
        # in-process-only, synchronous leg_state is absent here).
        if name.startswith("_") or name not in self.__dict__.get("commands", ()):
            raise AttributeError(name)

        async def command(**kwargs: Any) -> Any:
            return await self._command(name, kwargs)

        command.__name__ = command.__qualname__ = name
        return command

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        self.redis = redis_client(self.settings.redis_url)  # type: ignore[arg-type]
        self._changed = asyncio.Condition()
        try:
            await self._refresh()
        except Exception:
            log.warning("media nodes: Redis unreachable at start; placing calls once it answers", exc_info=True)
        self._tasks = [
            asyncio.create_task(self._monitor(), name="kefu-media-monitor"),
            asyncio.create_task(self._read_replies(), name="kefu-media-replies"),
            asyncio.create_task(self._read_events(), name="kefu-media-events"),
        ]

    async def stop(self) -> None:
        self._stopping = True  # redis-py may swallow a cancellation that lands mid-command
        await stop_tasks([*self._tasks, *self._background])
        self._tasks = []
        for _node, future in self._pending.values():
            if not future.done():
                future.set_exception(MediaUnavailable("the API process is stopping"))
        if self.redis is not None:
            try:
                await self._leave_group()
            except Exception:
                log.debug("leaving the media events group failed", exc_info=True)
            await self.redis.aclose()
            self.redis = None

    # --- the nodes ------------------------------------------------------------------

    def nodes(self) -> list[NodeStatus]:
        """Live nodes as this replica last saw them."""
        return [n for n in self._nodes.values() if n.node not in self._lost and n.state == "running"]

    async def wait_for_nodes(self, predicate: Callable[[list[NodeStatus]], bool], *, timeout: float) -> list[NodeStatus]:
        """Wait until ``predicate(self.nodes())`` holds (it is checked after every refresh)."""
        assert self._changed is not None, "start() first"
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: predicate(self.nodes())), timeout)
        return self.nodes()

    async def place_call(self, *, tenant_id: UUID, call_id: UUID) -> str:
        """Pin a new call to the least loaded live node and return that node's name."""
        if self._view_since is None:
            raise MediaUnavailable("the media nodes cannot be reached (Redis does not answer)")
        now = self.clock()
        fresh = now - 3 * self.heartbeat_s
        candidates = [n for n in self.nodes() if n.last_seen >= fresh and n.calls + n.placed < n.max_calls]
        if not candidates:
            raise MediaUnavailable("no media node is taking calls")
        best = min(candidates, key=lambda n: (n.load, n.cpu_percent, n.node))
        best.placed += 1
        self._pin((tenant_id, call_id), best.node)
        return best.node

    def _pin(self, key: tuple[UUID, UUID], node: str) -> None:
        self._pins[key] = node
        self._pins.move_to_end(key)
        while len(self._pins) > MAX_PINS:
            self._pins.popitem(last=False)

    async def _node_of(self, tenant_id: UUID, call_id: UUID) -> str | None:
        node = self._pins.get((tenant_id, call_id))
        if node is None and self.locate_call is not None:
            try:
                node = await self.locate_call(tenant_id, call_id)
            except Exception as exc:
                raise MediaUnavailable("the call's media node could not be looked up") from exc
            if node:
                self._pin((tenant_id, call_id), node)
        return node

    async def _is_live(self, node: str) -> bool:
        if node in self._lost:
            return False
        if node not in self._nodes and self._view_since is not None:
            await self._refresh()  # a node started since the last refresh
        if node in self._nodes:
            return node not in self._lost
        if await self.redis.exists(fence_key(node)):
            self._lost.add(node)
        return False

    # --- commands ----------------------------------------------------------------------

    async def _command(self, name: str, kwargs: dict[str, Any]) -> Any:
        tenant_id, call_id = kwargs.get("tenant_id"), kwargs.get("call_id")
        if not isinstance(tenant_id, UUID) or not isinstance(call_id, UUID):
            raise TypeError(f"{name} needs tenant_id and call_id UUIDs")
        node = await self._node_of(tenant_id, call_id)
        try:
            live = node is not None and await self._is_live(node)
        except Exception as exc:
            raise MediaUnavailable("the media nodes cannot be reached (Redis does not answer)") from exc
        if not live:
            if name in GONE_WITH_THE_NODE:
                self._pins.pop((tenant_id, call_id), None)
                return GONE_WITH_THE_NODE[name]()
            if node is None:
                raise MediaUnavailable("no media node holds this call")
            raise MediaUnavailable(f"the call's media node {node} is gone", node_lost=True)
        assert node is not None
        result = await self._request(node, name, kwargs)
        if name == "end_call":
            self._pins.pop((tenant_id, call_id), None)
        return result

    async def _request(self, node: str, name: str, kwargs: dict[str, Any]) -> Any:
        timeout = self.command_timeouts_s.get(name, DEFAULT_COMMAND_TIMEOUT_S)
        command = Command(
            id=secrets.token_hex(8), reply_to=self.replica_id, command=name, kwargs=to_wire(kwargs), timeout_ms=int(timeout * 1000)
        )
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[command.id] = (node, future)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.rpush(commands_key(node), msgspec.json.encode(command))
                # Commands nobody takes (the node just died) vanish with their timeout.
                pipe.pexpire(commands_key(node), command.timeout_ms)
                await pipe.execute()
            async with asyncio.timeout(timeout):
                reply = await future
        except TimeoutError:
            raise MediaUnavailable(f"media node {node} did not answer {name} within {timeout:g} s") from None
        except MediaUnavailable:
            raise
        except Exception as exc:
            raise MediaUnavailable("the media nodes cannot be reached (Redis does not answer)") from exc
        finally:
            self._pending.pop(command.id, None)
        if reply.error is not None:
            raise_failure(reply.error)
        return from_wire(reply.result)

    async def _read_replies(self) -> None:
        key = replies_key(self.replica_id)
        while not self._stopping:
            try:
                item = await self.redis.blpop([key], timeout=1)
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(0.5)  # Redis is down: retry at a gentle pace
                continue
            if item is None:
                continue
            try:
                reply = msgspec.json.decode(item[1], type=Reply)
            except msgspec.DecodeError:
                log.error("undecodable media node reply dropped")
                continue
            pending = self._pending.get(reply.id)
            if pending is not None and not pending[1].done():
                pending[1].set_result(reply)

    # --- node events (leg reports and other callbacks) ------------------------------------

    async def _ensure_group(self) -> None:
        import redis.exceptions

        try:
            await self.redis.xgroup_create(EVENTS, EVENTS_GROUP, id="$", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _leave_group(self) -> None:
        pending = await self.redis.xpending_range(EVENTS, EVENTS_GROUP, min="-", max="+", count=1, consumername=self.replica_id)
        if not pending:  # events it read but did not finish stay for another replica to claim
            await self.redis.xgroup_delconsumer(EVENTS, EVENTS_GROUP, self.replica_id)

    async def _read_events(self) -> None:
        grouped = False
        next_reclaim = self.clock() + EVENT_RECLAIM_S
        while not self._stopping:
            try:
                if not grouped:
                    await self._ensure_group()
                    grouped = True
                batches = await self.redis.xreadgroup(EVENTS_GROUP, self.replica_id, {EVENTS: ">"}, count=100, block=1000)
                for _stream, entries in batches or ():
                    for entry_id, fields in entries:
                        self._spawn(self._handle_event(entry_id, fields))
                if self.clock() >= next_reclaim:
                    next_reclaim = self.clock() + EVENT_RECLAIM_S
                    await self._reclaim_events()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                grouped = grouped and "NOGROUP" not in str(exc)
                log.debug("reading media node events failed; retrying", exc_info=True)
                await asyncio.sleep(0.5)  # Redis is down: retry at a gentle pace

    async def _reclaim_events(self) -> None:
        """Handle events another replica read and never acknowledged (it died, or its handler failed)."""
        claimed = await self.redis.xautoclaim(EVENTS, EVENTS_GROUP, self.replica_id, min_idle_time=EVENT_IDLE_MS, count=100)
        for entry_id, fields in claimed[1]:
            if fields is None:
                continue
            pending = await self.redis.xpending_range(EVENTS, EVENTS_GROUP, min=entry_id, max=entry_id, count=1)
            if pending and pending[0]["times_delivered"] > MAX_EVENT_DELIVERIES:
                log.error("media node event %s failed %d times; dropped: %s", entry_id, MAX_EVENT_DELIVERIES, fields)
                await self.redis.xack(EVENTS, EVENTS_GROUP, entry_id)
                continue
            self._spawn(self._handle_event(entry_id, fields))

    async def _handle_event(self, entry_id: str, fields: dict[str, str]) -> None:
        try:
            event = msgspec.json.decode(fields["m"], type=NodeEvent)
            args = from_wire(event.args)
        except Exception:
            log.error("undecodable media node event %s dropped", entry_id)
            await self.redis.xack(EVENTS, EVENTS_GROUP, entry_id)
            return
        callback = getattr(self, event.callback, None) if event.callback in self.callbacks else None
        if callback is not None:
            try:
                await callback(*args)
            except Exception:
                # Left unacknowledged: a replica claims it again after EVENT_IDLE_MS.
                log.exception("media callback %s from node %s failed", event.callback, event.node)
                return
        await self.redis.xack(EVENTS, EVENTS_GROUP, entry_id)

    # --- liveness -----------------------------------------------------------------------------

    async def _monitor(self) -> None:
        next_sweep = self.clock() + self.orphan_sweep_s
        while not self._stopping:
            await asyncio.sleep(self.heartbeat_s / 2)  # the monitor's tick, not a wait for work
            try:
                await self._refresh()
                self._check_nodes()
                if self.clock() >= next_sweep:
                    next_sweep = self.clock() + self.orphan_sweep_s
                    await self._sweep_orphans()
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._view_since is not None:
                    log.warning("media nodes: Redis unreachable; no node is declared lost until it answers again", exc_info=True)
                self._view_since = None

    async def _refresh(self) -> None:
        raw = await self.redis.hgetall(NODES)
        now = self.clock()
        if self._view_since is None:
            self._view_since = now
        for node, data in raw.items():
            try:
                beat = msgspec.json.decode(data, type=Heartbeat)
            except msgspec.DecodeError:
                continue
            known = self._nodes.get(node)
            if known is None:
                self._nodes[node] = NodeStatus.of(beat, now)
                if node not in self._lost:
                    log.info("media node %s reports (%d/%d calls)", node, beat.calls, beat.max_calls)
            elif beat.seq != known.seq:
                known.update(beat, now)
        for node in [n for n in self._nodes if n not in raw]:
            del self._nodes[node]  # another replica ended its calls
            self._mark_lost(node)
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    def _check_nodes(self) -> None:
        if self._view_since is None:
            return
        now = self.clock()
        # Silence counts only from when this replica could see Redis.
        since = self._view_since
        newest: dict[str, NodeStatus] = {}
        for node in self._nodes.values():
            if node.node not in self._lost and node.started_at > getattr(newest.get(node.node_id), "started_at", -1.0):
                newest[node.node_id] = node
        for node in list(self._nodes.values()):
            silent_s = now - max(node.last_seen, since)
            if node.state == "stopped":
                reason = "it stopped"
            elif silent_s > self.timeout_s:
                reason = f"no heartbeat for {silent_s:.1f} s"
            elif newest.get(node.node_id) is not node and silent_s > 2 * self.heartbeat_s:
                reason = "it restarted"
            else:
                continue
            self._declare_lost(node.node, reason)

    def _mark_lost(self, node: str) -> None:
        if node in self._lost:
            return
        self._lost.add(node)
        for command_id, (target, future) in list(self._pending.items()):
            if target == node and not future.done():
                future.set_exception(MediaUnavailable(f"media node {node} was lost", node_lost=True))

    def _declare_lost(self, node: str, reason: str) -> None:
        if node not in self._lost:
            log.warning("media node %s is lost (%s)", node, reason)
            self._mark_lost(node)
        if self.on_node_lost is not None and node not in self._handling:
            self._handling.add(node)
            self._spawn(self._end_node(node))

    async def _end_node(self, node: str) -> None:
        """One replica (the holder of the node's lost lock) fences the node and ends its calls."""
        assert self.on_node_lost is not None
        try:
            if not await self.redis.set(lost_lock_key(node), self.replica_id, nx=True, px=LOST_LOCK_MS):
                return  # another replica is on it; if it dies, its lock expires and this one retries
            await self.redis.set(fence_key(node), self.replica_id, ex=FENCE_TTL_S)
            await self.redis.delete(commands_key(node))
            await self.on_node_lost(node)
            await self.redis.hdel(NODES, node)
            self._nodes.pop(node, None)
            metrics.MEDIA_NODES_LOST.inc()  # once per node: by the replica holding its lost lock
        except Exception:
            log.exception("ending the calls of lost media node %s failed; retrying", node)
            try:
                if await self.redis.get(lost_lock_key(node)) == self.replica_id:
                    await self.redis.delete(lost_lock_key(node))
            except Exception:
                pass
        finally:
            self._handling.discard(node)

    async def _sweep_orphans(self) -> None:
        """Calls pinned to a node that no longer reports at all (Redis lost its data): end them too."""
        if self.live_call_nodes is None or self.on_node_lost is None or self._view_since is None:
            return
        if self.clock() - self._view_since < self.timeout_s:
            return  # nodes are still reporting again after an outage
        if not await self.redis.set(SWEEP_LOCK, self.replica_id, nx=True, px=int(self.orphan_sweep_s * 900)):
            return
        pinned = await self.live_call_nodes()
        # Read the table after the calls: a node a call was placed on was in it then,
        # and stays until it is declared lost.
        await self._refresh()
        for node in pinned:
            if node not in self._nodes:
                self._declare_lost(node, "it is not reporting")

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(_logged(coroutine))
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def stop_tasks(tasks: list[asyncio.Task[Any]], *, grace_s: float = 3.0) -> None:
    """Cancel background tasks and wait for them (a loop that missed its cancellation ends within its next pass)."""
    for task in tasks:
        task.cancel()
    if tasks:
        _done, stuck = await asyncio.wait(tasks, timeout=grace_s)
        for task in stuck:
            log.warning("media task %s did not stop in %g s", task.get_name(), grace_s)


async def _logged(coroutine: Awaitable[Any]) -> None:
    try:
        await coroutine
    except asyncio.CancelledError:
        raise
    except Exception:
        log.warning("media node background work failed", exc_info=True)
