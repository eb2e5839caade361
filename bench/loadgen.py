"""A load generator for a running Kefu deployment, driven only through its public APIs.

It runs in its own process (asyncio, httpx, websockets) against a list of API
base URLs, each simulated person (tenant admin, agent, caller) pinned to one of
them in turn, as a load balancer with sticky sessions would place them:

1. **Onboarding** (not measured as a phase, but every request is counted): a
   platform operator (OAuth2 client credentials, ``POST /oauth/token``) creates
   ``--tenants`` tenants through the admin API (plan ``standard``, one seat per
   agent); each tenant's admin accepts the invitation (setting a password),
   creates a queue (no after-call work, a long ring timeout), ``--agents``
   agents (each accepts its own invitation), their queue membership and a web
   entry point (its widget key).
2. **Logins**: every agent ``POST /api/v1/auth/login``.
3. **Agent states**: every agent opens its desktop session
   (``POST /api/v1/agent/session``), its ``/ws/agent`` socket (pinged every
   10 s, which renews the presence lease), then ``PUT /api/v1/agent/status``
   not ready (reason ``break``), and available again.
4. **Calls**: open-loop Poisson arrivals at ``--rate`` per second for
   ``--seconds``, each to a tenant drawn at random: the caller
   ``POST /api/v1/widget/{key}/calls`` with a real SDP offer (a pool made once by
   aiortc before the phase; the media node answers it, no RTP ever flows).
   **Set-up** is measured here, client side, from sending the offer to the
   agent's socket receiving its ``call.offered`` push; it includes any wait
   in the queue and this process's own event-loop delays (reported as
   ``loop_lag``).  The agent answers (``POST .../answer`` with a pool offer),
   talks ``--talk`` seconds and hangs up (``POST .../hangup``), which ends the
   call and frees the agent for the next one; the ``call.ended`` push on its
   socket is awaited too (``call.ended_push``, timed from sending the hang-up).
5. Agents log out (``DELETE /api/v1/agent/session``).

The report gives, per operation, its count, errors, throughput and
p50/p95/p99/max latency, plus the errors by operation, HTTP status and problem
code, the calls' outcomes, and ``setups_per_s``: calls whose offer reached an
agent, divided by the time from the first offer sent to the last offer pushed.
The CLI prints human lines, then the JSON summary as its last line
(``--json FILE`` also writes it to a file).

Library: ``await run_load(LoadConfig(...))`` returns a ``LoadRun`` (the report
and the tenants made, with their admins' tokens and calls).  CLI::

    python bench/loadgen.py --api http://127.0.0.1:P1 --api http://127.0.0.1:P2 \\
        --operator-id op_... --operator-secret ... --tenants 20 --agents 10 --rate 50 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import secrets
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from acd_routing import percentile  # noqa: E402 - the benches' shared percentile (nearest rank, upper)

PING_INTERVAL_S = 10.0  # the desktop page pings every 10 s; the lease lasts 30 s
LAG_TICK_S = 0.05


# --- measuring ---------------------------------------------------------------------------


@dataclass
class Operation:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_start: float = math.inf
    last_end: float = -math.inf

    def summary(self) -> dict[str, Any]:
        window = self.last_end - self.first_start
        done = len(self.latencies)
        figures: dict[str, Any] = {"count": done, "errors": self.errors,
                                   "per_s": round(done / window, 2) if done and window > 0 else None}
        if done:
            figures.update({f"{name}_ms": round(percentile(self.latencies, q) * 1000, 2)
                            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))})
            figures["max_ms"] = round(max(self.latencies) * 1000, 2)
        return figures


class Recorder:
    """Latencies and errors per operation; errors keyed ``<operation> <status> <code>``."""

    def __init__(self) -> None:
        self.operations: dict[str, Operation] = {}
        self.errors: Counter[str] = Counter()

    def _op(self, name: str) -> Operation:
        return self.operations.setdefault(name, Operation())

    def ok(self, name: str, started: float, ended: float) -> None:
        op = self._op(name)
        op.latencies.append(ended - started)
        op.first_start, op.last_end = min(op.first_start, started), max(op.last_end, ended)

    def failed(self, name: str, what: str) -> None:
        self._op(name).errors += 1
        self.errors[f"{name} {what}"] += 1

    async def request(self, name: str, client: httpx.AsyncClient, method: str, url: str, *, expect: int = 200,
                      **kwargs: Any) -> httpx.Response | None:
        """One timed request; None (and an error counted) unless it answers ``expect``."""
        started = time.perf_counter()
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self.failed(name, type(exc).__name__)
            return None
        ended = time.perf_counter()
        if response.status_code != expect:
            self.failed(name, f"{response.status_code} {problem_code(response)}")
            return None
        self.ok(name, started, ended)
        return response


def problem_code(response: httpx.Response) -> str:
    """The stable code of an RFC 9457 problem (``error`` for OAuth2 answers), else ``-``."""
    try:
        body = response.json()
    except ValueError:
        return "-"
    return str(body.get("code") or body.get("error") or "-") if isinstance(body, dict) else "-"


class LoopLag:
    """How late this process's event loop wakes up: every client-side latency includes it."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            due = time.perf_counter() + LAG_TICK_S
            await asyncio.sleep(LAG_TICK_S)
            self.lags.append(max(0.0, time.perf_counter() - due))

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if not self.lags:
            return {}
        return {"p50_ms": round(percentile(self.lags, 0.5) * 1000, 2), "p99_ms": round(percentile(self.lags, 0.99) * 1000, 2),
                "max_ms": round(max(self.lags) * 1000, 2)}


# --- SDP offers --------------------------------------------------------------------------


async def make_offers(count: int) -> list[str]:
    """Real WebRTC audio offers from aiortc (gathered host candidates, DTLS fingerprint, Opus
    and PCMU).  The peer connections are closed at once: the media node answers these offers
    and tries ICE against candidates nobody answers, so no call's media ever connects (ICE
    would give up after about 30 s; the bench's calls end well before)."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    offers = []
    for _ in range(count):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        offers.append(pc.localDescription.sdp)
        await pc.close()
    return offers


# --- the people ----------------------------------------------------------------------------


@dataclass
class AgentSeat:
    tenant: TenantSetup
    index: int
    email: str
    api: str
    agent_id: str = ""
    invitation: str = ""
    token: str = ""
    socket: Any = None
    state: dict[str, Any] = field(default_factory=dict)
    state_changed: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass
class TenantSetup:
    slug: str
    api: str
    admin_email: str
    tenant_id: str = ""
    admin_invitation: str = ""
    admin_token: str = ""
    queue_id: str = ""
    widget_key: str = ""
    agents: list[AgentSeat] = field(default_factory=list)
    call_ids: list[str] = field(default_factory=list)


@dataclass
class CallRecord:
    tenant: TenantSetup
    sent_at: float
    call_id: str = ""
    api: str = ""  # the caller's replica
    caller_token: str = ""
    offered_at: float | None = None
    answered: bool = False
    hung_up: bool = False
    ended_push: bool = False
    abandoned: bool = False


@dataclass
class LoadConfig:
    apis: list[str]
    operator_id: str
    operator_secret: str
    tenants: int = 20
    agents: int = 10
    rate: float = 50.0
    seconds: float = 30.0
    talk_s: float = 1.5
    # What follows the ring: "answer" (the agent answers, talks ``talk_s``, hangs up) or
    # "caller-hangup" (the caller leaves as soon as the agent rings: the set-up alone).
    after_ring: str = "answer"
    ring_timeout_s: int = 120
    offers: int = 16
    concurrency: int = 8  # onboarding, log-in and state-change requests in flight at once
    seed: int = 1
    drain_s: float = 30.0  # after the last arrival: how long calls may take to be offered and end
    prefix: str = field(default_factory=lambda: f"lg{secrets.token_hex(3)}")
    log: Callable[[str], None] = field(default=lambda line: print(line, flush=True))


@dataclass
class LoadRun:
    report: dict[str, Any]
    tenants: list[TenantSetup]


class LoadGenerator:
    def __init__(self, config: LoadConfig) -> None:
        if not config.apis:
            raise ValueError("give at least one API base URL")
        self.config = config
        self.rec = Recorder()
        self.rng = random.Random(config.seed)  # which pool offer
        self.arrivals_rng = random.Random(config.seed)  # arrival times and tenants: the seed alone decides them
        self.password = f"Lg-{secrets.token_urlsafe(12)}"
        self.clients: dict[str, httpx.AsyncClient] = {}
        self.tenants: list[TenantSetup] = []
        self.offers: list[str] = []
        self.calls: dict[str, CallRecord] = {}
        self.offered: dict[str, asyncio.Future[float]] = {}  # call id -> when its call.offered push came
        self.ended: dict[str, asyncio.Future[float]] = {}  # call id -> when its call.ended push came
        self.agent_work: set[asyncio.Task[None]] = set()
        self.phases: dict[str, float] = {}
        self.lag = LoopLag()

    # --- plumbing ---

    def client(self, api: str) -> httpx.AsyncClient:
        if api not in self.clients:
            self.clients[api] = httpx.AsyncClient(
                base_url=api, timeout=60, limits=httpx.Limits(max_connections=500, max_keepalive_connections=200)
            )
        return self.clients[api]

    def api(self, n: int) -> str:
        return self.config.apis[n % len(self.config.apis)]

    async def bounded(self, jobs: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(job: Callable[[], Awaitable[Any]]) -> Any:
            async with gate:
                return await job()

        return await asyncio.gather(*(one(job) for job in jobs))

    async def close(self) -> None:
        for tenant in self.tenants:
            for seat in tenant.agents:
                await self._close_socket(seat)
        for client in self.clients.values():
            await client.aclose()

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def must(self, response: httpx.Response | None, what: str) -> dict[str, Any]:
        if response is None:
            raise RuntimeError(f"onboarding failed at {what}: {dict(self.rec.errors)}")
        return response.json() if response.content else {}

    # --- 1. onboarding ---

    async def operator_token(self) -> str:
        response = await self.rec.request(
            "oauth.token", self.client(self.api(0)), "POST", "/oauth/token",
            data={"grant_type": "client_credentials"}, auth=(self.config.operator_id, self.config.operator_secret),
        )
        return self.must(response, "the operator's token")["access_token"]

    async def onboard(self) -> None:
        operator = await self.operator_token()
        prefix, agents = self.config.prefix, self.config.agents
        self.tenants = [TenantSetup(slug=f"{prefix}-{t}", api=self.api(t), admin_email=f"admin@{prefix}-{t}.test")
                        for t in range(self.config.tenants)]
        for t, tenant in enumerate(self.tenants):
            tenant.agents = [AgentSeat(tenant, j, f"agent{j}@{tenant.slug}.test", self.api(t * agents + j)) for j in range(agents)]
        await self.bounded([lambda tenant=tenant: self._create_tenant(operator, tenant) for tenant in self.tenants])
        await self.bounded([lambda tenant=tenant: self._accept(tenant.api, tenant, None, tenant.admin_invitation) for tenant in self.tenants])
        # Agents one tenant at a time per tenant (each creation takes the tenant's seat lock), tenants in parallel.
        await self.bounded([lambda tenant=tenant: self._create_agents(tenant) for tenant in self.tenants])
        await self.bounded([lambda seat=seat: self._accept(seat.api, seat.tenant, seat, seat.invitation)
                            for tenant in self.tenants for seat in tenant.agents])
        await self.bounded([lambda tenant=tenant: self._queue_and_entry(tenant) for tenant in self.tenants])

    async def _create_tenant(self, operator: str, tenant: TenantSetup) -> None:
        body = {"name": f"Load {tenant.slug}", "slug": tenant.slug, "locale": "en", "time_zone": "UTC", "plan": "standard",
                "seats": self.config.agents, "admin": {"email": tenant.admin_email, "display_name": "Load admin"}}
        created = self.must(await self.rec.request("admin.create_tenant", self.client(self.api(0)), "POST", "/api/admin/v1/tenants",
                                                   expect=201, json=body, headers=self.bearer(operator)), "creating a tenant")
        tenant.tenant_id = created["tenant"]["id"]
        tenant.admin_invitation = created["admin"]["invitation_url"].split("#", 1)[1]

    async def _accept(self, api: str, tenant: TenantSetup, seat: AgentSeat | None, token: str) -> None:
        signed = self.must(await self.rec.request("invitation.accept", self.client(api), "POST", "/api/v1/invitations/accept",
                                                  json={"token": token, "password": self.password}), "accepting an invitation")
        if seat is None:
            tenant.admin_token = signed["access_token"]
        else:
            seat.token = signed["access_token"]

    async def _create_agents(self, tenant: TenantSetup) -> None:
        http, headers = self.client(tenant.api), self.bearer(tenant.admin_token)
        for seat in tenant.agents:
            body = {"email": seat.email, "display_name": f"Agent {seat.index}"}
            created = self.must(await self.rec.request("admin.create_agent", http, "POST", "/api/v1/agents", expect=201, json=body,
                                                       headers=headers), "creating an agent")
            seat.agent_id, seat.invitation = created["id"], created["invitation_token"]

    async def _queue_and_entry(self, tenant: TenantSetup) -> None:
        http, headers = self.client(tenant.api), self.bearer(tenant.admin_token)
        queue = self.must(await self.rec.request(
            "admin.create_queue", http, "POST", "/api/v1/queues", expect=201, headers=headers,
            json={"name": "Load", "wrap_up_mode": "none", "ring_timeout_s": self.config.ring_timeout_s},
        ), "creating a queue")
        tenant.queue_id = queue["id"]
        self.must(await self.rec.request("admin.set_members", http, "PUT", f"/api/v1/queues/{queue['id']}/members", headers=headers,
                                         json={"agent_ids": [seat.agent_id for seat in tenant.agents]}), "setting queue members")
        entry = self.must(await self.rec.request("admin.create_entry_point", http, "POST", "/api/v1/entry-points", expect=201,
                                                 headers=headers, json={"name": "Web", "queue_id": queue["id"]}), "creating an entry point")
        tenant.widget_key = entry["widget_key"]

    # --- 2. log-ins ---

    async def log_in_all(self) -> None:
        await self.bounded([lambda seat=seat: self._log_in(seat) for tenant in self.tenants for seat in tenant.agents])

    async def _log_in(self, seat: AgentSeat) -> None:
        response = await self.rec.request("auth.login", self.client(seat.api), "POST", "/api/v1/auth/login",
                                          json={"tenant": seat.tenant.slug, "email": seat.email, "password": self.password})
        if response is not None:
            seat.token = response.json()["access_token"]

    # --- 3. agent states ---

    async def agents_ready(self) -> None:
        await self.bounded([lambda seat=seat: self._make_ready(seat) for tenant in self.tenants for seat in tenant.agents])

    async def _make_ready(self, seat: AgentSeat) -> None:
        http, headers = self.client(seat.api), self.bearer(seat.token)
        if await self.rec.request("agent.session", http, "POST", "/api/v1/agent/session", headers=headers) is None:
            return
        started = time.perf_counter()
        url = seat.api.replace("http", "ws", 1) + f"/ws/agent?access_token={seat.token}"
        try:
            seat.socket = await websockets.connect(url, max_size=2**20)
        except (OSError, websockets.WebSocketException) as exc:
            self.rec.failed("ws.connect", type(exc).__name__)
            return
        seat.tasks = [asyncio.create_task(self._read(seat)), asyncio.create_task(self._ping(seat))]
        if not await self._state(seat, lambda s: True, 30):  # the socket's first push: the agent's state
            self.rec.failed("ws.connect", "no agent.state push")
            return
        self.rec.ok("ws.connect", started, time.perf_counter())
        for op, body, wanted in (("agent.not_ready", {"status": "not_ready", "reason": "break"}, "not_ready"),
                                 ("agent.available", {"status": "available"}, "available")):
            if await self.rec.request(op, http, "PUT", "/api/v1/agent/status", json=body, headers=headers) is None:
                return
            # The change reaches the desktop as a push too (through Redis when the seat's socket is elsewhere).
            if not await self._state(seat, lambda s, wanted=wanted: s.get("status") == wanted, 30):
                self.rec.failed(op, "no agent.state push")

    async def _state(self, seat: AgentSeat, wanted: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while not (seat.state and wanted(seat.state)):
            seat.state_changed.clear()
            try:
                await asyncio.wait_for(seat.state_changed.wait(), max(0.0, deadline - time.perf_counter()))
            except TimeoutError:
                return False
        return True

    async def _read(self, seat: AgentSeat) -> None:
        try:
            async for raw in seat.socket:
                at = time.perf_counter()
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "agent.state":
                    seat.state = frame
                    seat.state_changed.set()
                elif kind == "call.offered":
                    self._arrived(self.offered, frame["call_id"], at)
                    if self.config.after_ring == "answer":
                        work = asyncio.create_task(self._take(seat, frame["call_id"]))
                        self.agent_work.add(work)
                        work.add_done_callback(self.agent_work.discard)
                elif kind in ("call.ended", "call.withdrawn"):  # withdrawn: the caller left while it rang
                    self._arrived(self.ended, frame["call_id"], at)
                elif kind == "error":
                    self.rec.failed("ws.message", f"error {frame.get('code')}")
        except websockets.ConnectionClosed as exc:
            if exc.rcvd is None or exc.rcvd.code != 1000:
                self.rec.failed("ws.connect", f"closed {exc.rcvd.code if exc.rcvd else '-'}")

    async def _ping(self, seat: AgentSeat) -> None:
        while True:
            await asyncio.sleep(PING_INTERVAL_S)
            try:
                await seat.socket.send(json.dumps({"type": "ping"}))
            except websockets.ConnectionClosed:
                return

    async def _close_socket(self, seat: AgentSeat) -> None:
        if seat.socket is not None:
            await seat.socket.close()
        for task in seat.tasks:
            task.cancel()
        await asyncio.gather(*seat.tasks, return_exceptions=True)
        seat.socket, seat.tasks = None, []

    # --- 4. calls ---

    @staticmethod
    def _push(pushes: dict[str, asyncio.Future[float]], call_id: str) -> asyncio.Future[float]:
        """When a push about the call reached the agent's socket.  A push may come before the
        HTTP answer that names the call, so whichever side comes first makes the future."""
        if call_id not in pushes:
            pushes[call_id] = asyncio.get_running_loop().create_future()
        return pushes[call_id]

    def _arrived(self, pushes: dict[str, asyncio.Future[float]], call_id: str, at: float) -> None:
        arrived = self._push(pushes, call_id)
        if not arrived.done():
            arrived.set_result(at)

    async def _take(self, seat: AgentSeat, call_id: str) -> None:
        """The agent answers the offer, talks, and hangs up."""
        http, headers = self.client(seat.api), self.bearer(seat.token)
        response = await self.rec.request("call.answer", http, "POST", f"/api/v1/agent/calls/{call_id}/answer",
                                          json={"offer_sdp": self.rng.choice(self.offers)}, headers=headers)
        record = self.calls.get(call_id)
        if response is None:
            return
        if record is not None:
            record.answered = True
        await asyncio.sleep(self.config.talk_s)  # the conversation
        started = time.perf_counter()
        if await self.rec.request("call.hangup", http, "POST", f"/api/v1/agent/calls/{call_id}/hangup", expect=204,
                                  headers=headers) is None:
            return
        if record is not None:
            record.hung_up = True
        try:  # the desktop learns the call ended from its socket
            ended_at = await asyncio.wait_for(asyncio.shield(self._push(self.ended, call_id)), self.config.drain_s)
        except TimeoutError:
            self.rec.failed("call.ended_push", "no call.ended push")
            return
        self.rec.ok("call.ended_push", started, ended_at)
        if record is not None:
            record.ended_push = True

    async def _call(self, n: int, tenant: TenantSetup) -> None:
        sent, api = time.perf_counter(), self.api(n)
        response = await self.rec.request(
            "call.create", self.client(api), "POST", f"/api/v1/widget/{tenant.widget_key}/calls", expect=201,
            json={"caller_name": f"Caller {n}", "offer_sdp": self.rng.choice(self.offers)},
        )
        if response is None:
            return
        created = response.json()
        call_id = created["call_id"]
        record = CallRecord(tenant, sent, call_id, api, created["caller_token"])
        self.calls[call_id] = record
        tenant.call_ids.append(call_id)
        try:
            record.offered_at = await asyncio.wait_for(asyncio.shield(self._push(self.offered, call_id)),
                                                       self.config.seconds + self.config.drain_s)
        except TimeoutError:
            self.rec.failed("call.setup", "no call.offered push")
            return
        self.rec.ok("call.setup", sent, record.offered_at)
        if self.config.after_ring == "caller-hangup":  # the caller leaves while it rings: the agent is free again
            started = time.perf_counter()
            if await self.rec.request("call.caller_hangup", self.client(api), "POST", f"/api/v1/widget/calls/{call_id}/hangup",
                                      expect=204, headers={"X-Caller-Token": record.caller_token}) is not None:
                record.hung_up = True
                self.rec.ok("call.ended_push", started, await asyncio.shield(self._push(self.ended, call_id)))
                record.ended_push = True

    async def run_calls(self) -> dict[str, Any]:
        """Open-loop Poisson arrivals: each arrival is due at its own time whatever the
        earlier ones are doing; a late start (this process busy) is counted, not skipped."""
        rate, seconds = self.config.rate, self.config.seconds
        arrivals: list[asyncio.Task[None]] = []
        late: list[float] = []
        start = time.perf_counter()
        due = start
        n = 0
        while True:
            due += self.arrivals_rng.expovariate(rate)
            if due - start >= seconds:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            late.append(max(0.0, time.perf_counter() - due))
            arrivals.append(asyncio.create_task(self._call(n, self.arrivals_rng.choice(self.tenants))))
            n += 1
        await asyncio.gather(*arrivals)
        deadline = time.perf_counter() + self.config.talk_s + self.config.drain_s
        while self.agent_work and time.perf_counter() < deadline:
            await asyncio.wait(set(self.agent_work), timeout=max(0.0, deadline - time.perf_counter()))
        still_busy = len(self.agent_work)
        for work in list(self.agent_work):
            work.cancel()
        await asyncio.gather(*self.agent_work, return_exceptions=True)
        records = list(self.calls.values())
        # Calls no agent hung up (never offered, an answer refused, the drain ran out): their
        # callers give up, so the run leaves no call behind.
        await self.bounded([lambda record=record: self._abandon(record) for record in records if not record.hung_up])
        offered = [r.offered_at for r in records if r.offered_at is not None]
        first = min((r.sent_at for r in records), default=start)
        last = max(offered, default=first)
        return {
            "arrivals": n, "arrival_window_s": seconds, "offered_rate": rate, "arrival_rate": round(n / seconds, 2),
            "late_start_p99_ms": round(percentile(late, 0.99) * 1000, 2) if late else None,
            "created": len(records), "offered": len(offered),
            "answered": sum(r.answered for r in records), "hung_up": sum(r.hung_up for r in records),
            "ended_pushes": sum(r.ended_push for r in records),
            "abandoned": sum(r.abandoned for r in records), "still_busy": still_busy,
            "setups_per_s": round(len(offered) / (last - first), 2) if offered and last > first else 0.0,
        }

    async def _abandon(self, record: CallRecord) -> None:
        if await self.rec.request("call.abandon", self.client(record.api), "POST", f"/api/v1/widget/calls/{record.call_id}/hangup",
                                  expect=204, headers={"X-Caller-Token": record.caller_token}) is not None:
            record.abandoned = True

    # --- 5. log-out ---

    async def log_out_all(self) -> None:
        seats = [seat for tenant in self.tenants for seat in tenant.agents if seat.socket is not None]
        await self.bounded([lambda seat=seat: self.rec.request("agent.logout", self.client(seat.api), "DELETE", "/api/v1/agent/session",
                                                               headers=self.bearer(seat.token)) for seat in seats])

    # --- the run ---

    async def phase(self, name: str, work: Callable[[], Awaitable[Any]]) -> Any:
        self.config.log(f"== phase {name}: start")
        started = time.perf_counter()
        result = await work()
        self.phases[name] = round(time.perf_counter() - started, 2)
        self.config.log(f"== phase {name}: done in {self.phases[name]:.1f} s")
        return result

    async def run(self) -> LoadRun:
        try:
            self.offers = await make_offers(self.config.offers)
            await self.phase("onboarding", self.onboard)
            await self.phase("logins", self.log_in_all)
            await self.phase("agent_states", self.agents_ready)
            self.lag.start()
            calls = await self.phase("calls", self.run_calls)
            lag = await self.lag.stop()
            await self.phase("logout", self.log_out_all)
        finally:
            await self.close()
        report = {
            "config": {"apis": self.config.apis, "tenants": self.config.tenants, "agents_per_tenant": self.config.agents,
                       "rate": self.config.rate, "seconds": self.config.seconds, "talk_s": self.config.talk_s},
            "phases_s": self.phases,
            "operations": {name: op.summary() for name, op in sorted(self.rec.operations.items())},
            "errors": dict(sorted(self.rec.errors.items())),
            "error_count": sum(self.rec.errors.values()),
            "calls": calls,
            "loop_lag": lag,
        }
        return LoadRun(report, self.tenants)


async def run_load(config: LoadConfig) -> LoadRun:
    return await LoadGenerator(config).run()


def human_lines(report: dict[str, Any]) -> list[str]:
    lines = [f"phases (s): {report['phases_s']}"]
    for name, op in report["operations"].items():
        figures = (f"p50 {op['p50_ms']:.1f} / p95 {op['p95_ms']:.1f} / p99 {op['p99_ms']:.1f} / max {op['max_ms']:.1f} ms"
                   if op["count"] else "no successes")
        lines.append(f"{name:24} {op['count']:6d} ok {op['errors']:4d} err  {op['per_s'] or 0:8.1f}/s  {figures}")
    calls = report["calls"]
    lines.append(f"calls: {calls['arrivals']} arrivals in {calls['arrival_window_s']} s ({calls['arrival_rate']}/s offered "
                 f"{calls['offered_rate']}/s); created {calls['created']}, reached an agent {calls['offered']}, answered "
                 f"{calls['answered']}, hung up {calls['hung_up']}, call.ended pushes {calls['ended_pushes']}, "
                 f"abandoned by their callers at the end {calls['abandoned']}; "
                 f"set-ups {calls['setups_per_s']}/s")
    lines.append(f"load generator: event-loop lag {report['loop_lag']}, arrivals started late p99 {calls['late_start_p99_ms']} ms")
    lines.append(f"errors ({report['error_count']}): {report['errors'] or 'none'}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", action="append", required=True, help="an API replica's base URL (repeat for each)")
    parser.add_argument("--operator-id", required=True)
    parser.add_argument("--operator-secret", required=True)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--agents", type=int, default=10, help="agents per tenant")
    parser.add_argument("--rate", type=float, default=50.0, help="call arrivals per second (Poisson)")
    parser.add_argument("--seconds", type=float, default=30.0, help="arrival window")
    parser.add_argument("--talk", type=float, default=1.5, help="seconds an agent talks before hanging up")
    parser.add_argument("--after-ring", choices=("answer", "caller-hangup"), default="answer",
                        help="after the ring: the agent answers, talks and hangs up; or the caller hangs up at once")
    parser.add_argument("--concurrency", type=int, default=8, help="onboarding, log-in and status requests in flight")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the JSON summary here")
    args = parser.parse_args()
    config = LoadConfig(apis=[a.rstrip("/") for a in args.api], operator_id=args.operator_id, operator_secret=args.operator_secret,
                        tenants=args.tenants, agents=args.agents, rate=args.rate, seconds=args.seconds, talk_s=args.talk, after_ring=args.after_ring,
                        concurrency=args.concurrency, seed=args.seed)
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        run = runner.run(run_load(config))
    for line in human_lines(run.report):
        print(line, flush=True)
    summary = json.dumps(run.report)
    if args.json:
        args.json.write_text(summary)
    print(summary, flush=True)
    return 0 if run.report["error_count"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
