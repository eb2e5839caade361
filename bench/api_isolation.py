"""What row-level security costs a tenant-scoped API request.

Starts a throw-away PostgreSQL (kefu.platform.devservices), migrates it, seeds
several tenants with realistic rows, then sends tenant-scoped list and get
requests through the real ASGI app (httpx over the in-process ASGI transport,
the application connected as ``kefu_app``) in interleaved rounds:

* ``rls``:    row-level security ENABLEd and FORCEd, as in production;
* ``no-rls``: the same database with ``NO FORCE`` + ``DISABLE ROW LEVEL SECURITY``
              on every tenant table (the application's own ``tenant_id`` filters
              still apply, and the tenant is still set per transaction).

Rounds alternate (rls, no-rls, no-rls, rls, ...) so drift in the machine's speed
cancels out.  The figure is the ratio of the medians of round times; the last
line printed is ``rls_overhead_ratio=<x>`` (target: at most 1.15).

Run: ``make bench`` or ``.venv/bin/python bench/api_isolation.py [--tenants 20 --rows 200 --rounds 16]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert

from kefu.platform.app import create_app
from kefu.platform.db import migrate
from kefu.platform.db.base import tenant_tables
from kefu.platform.db.registry import metadata
from kefu.platform.devservices import PostgresServer
from kefu.platform.identity.principal import Principal
from kefu.platform.models import Membership, Tenant, User
from kefu.platform.runtime import Runtime
from kefu.platform.settings import load_settings
from kefu.tenants.models import Agent, Call, CallEvent, Queue


@dataclass
class SeededTenant:
    id: uuid.UUID
    token: str
    user_ids: list[uuid.UUID]
    agent_ids: list[uuid.UUID]
    queue_ids: list[uuid.UUID]
    call_ids: list[uuid.UUID]


async def seed(runtime: Runtime, *, tenants: int, rows: int, calls: int) -> list[SeededTenant]:
    """Bulk rows on the platform path: users with roles, agents, queues, calls with their event logs."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    seeded: list[SeededTenant] = []
    for n in range(tenants):
        tenant_id = uuid.uuid4()
        users = [uuid.uuid4() for _ in range(rows)]
        agents = [uuid.uuid4() for _ in range(rows)]
        queues = [uuid.uuid4() for _ in range(max(1, rows // 4))]
        call_ids = [uuid.uuid4() for _ in range(calls)]
        async with runtime.db.platform_session(reason="bench: seed") as session:
            await session.execute(insert(Tenant), [{"id": tenant_id, "slug": f"tenant-{n:03d}", "name": f"Tenant {n}", "branding": {}}])
            await session.execute(insert(User), [
                {"id": u, "tenant_id": tenant_id, "email": f"user{i:04d}@tenant{n}.test", "display_name": f"User {i} of {n}",
                 "locale": "en" if i % 2 else "zh-CN", "status": "active", "failed_logins": 0, "created_at": now - timedelta(days=i)}
                for i, u in enumerate(users)
            ])
            await session.execute(insert(Membership), [
                {"id": uuid.uuid4(), "tenant_id": tenant_id, "user_id": u, "role": "tenant_admin" if i == 0 else "agent", "created_at": now}
                for i, u in enumerate(users)
            ])
            await session.execute(insert(Agent), [
                {"id": a, "tenant_id": tenant_id, "user_id": users[i], "display_name": f"Agent {i}", "status": "offline",
                 "system_state": "idle", "state_changed_at": now, "created_at": now}
                for i, a in enumerate(agents)
            ])
            await session.execute(insert(Queue), [
                {"id": q, "tenant_id": tenant_id, "name": f"Queue {i}", "strategy": "longest_idle", "max_wait_s": 600, "created_at": now}
                for i, q in enumerate(queues)
            ])
            call_rows, event_rows = [], []
            for i, c in enumerate(call_ids):
                started = now - timedelta(minutes=7 * i + rng.randint(0, 5))
                queue_id, agent_id = rng.choice(queues), rng.choice(agents)
                call_rows.append({
                    "id": c, "tenant_id": tenant_id, "queue_id": queue_id, "agent_id": agent_id, "caller_name": f"Caller {i}",
                    "status": "ended", "started_at": started, "queued_at": started, "priority": 0,
                    "answered_at": started + timedelta(seconds=20), "ended_at": started + timedelta(seconds=200), "end_reason": "hangup",
                })
                for seq, (kind, offset, data) in enumerate((
                    ("created", 0, {"caller_name": f"Caller {i}"}), ("queued", 1, {"queue_id": str(queue_id)}),
                    ("offered", 15, {"agent_id": str(agent_id)}), ("answered", 20, {"agent_id": str(agent_id)}),
                    ("ended", 200, {"reason": "hangup"}),
                ), start=1):
                    event_rows.append({"tenant_id": tenant_id, "call_id": c, "seq": seq, "at": started + timedelta(seconds=offset),
                                       "type": kind, "actor": "system", "data": data})
            await session.execute(insert(Call), call_rows)
            await session.execute(insert(CallEvent), event_rows)
        admin = Principal.user(user_id=users[0], tenant_id=tenant_id, roles=frozenset({"tenant_admin"}))
        seeded.append(SeededTenant(tenant_id, runtime.tokens.issue(admin, ttl_s=24 * 3600), users, agents, queues, call_ids))
    return seeded


def workload(tenants: list[SeededTenant], per_round: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """(label, url, token): tenant-scoped list and get requests, spread over the tenants."""
    requests = []
    for i in range(per_round):
        t = tenants[rng.randrange(len(tenants))]
        kind = i % 8
        if kind == 0:
            requests.append(("list users", f"/api/v1/users?limit=50&offset={rng.randrange(0, 150)}", t.token))
        elif kind == 1:
            requests.append(("get user", f"/api/v1/users/{rng.choice(t.user_ids)}", t.token))
        elif kind == 2:
            requests.append(("list queues", "/api/v1/queues", t.token))
        elif kind == 3:
            requests.append(("get queue", f"/api/v1/queues/{rng.choice(t.queue_ids)}", t.token))
        elif kind == 4:
            requests.append(("list calls", f"/api/v1/calls?limit=50&offset={rng.randrange(0, 100)}", t.token))
        elif kind == 5:
            requests.append(("get call", f"/api/v1/calls/{rng.choice(t.call_ids)}", t.token))
        elif kind == 6:
            requests.append(("get agent", f"/api/v1/agents/{rng.choice(t.agent_ids)}", t.token))
        else:
            requests.append(("call events", f"/api/v1/calls/{rng.choice(t.call_ids)}/events", t.token))
    return requests


async def run_round(client: httpx.AsyncClient, requests: list[tuple[str, str, str]], timings: dict[str, list[float]]) -> float:
    started = time.perf_counter()
    for label, url, token in requests:
        t0 = time.perf_counter()
        response = await client.get(url, headers={"Authorization": f"Bearer {token}"})
        timings.setdefault(label, []).append(time.perf_counter() - t0)
        if response.status_code != 200:
            raise SystemExit(f"{url}: {response.status_code} {response.text[:300]}")
    return time.perf_counter() - started


def set_rls(server: PostgresServer, database: str, tables: list[str], enabled: bool) -> None:
    """Switch row-level security on every tenant table (as the superuser; the policies stay)."""
    if enabled:
        sql = "".join(f'ALTER TABLE "{t}" ENABLE ROW LEVEL SECURITY; ALTER TABLE "{t}" FORCE ROW LEVEL SECURITY;' for t in tables)
    else:
        sql = "".join(f'ALTER TABLE "{t}" NO FORCE ROW LEVEL SECURITY; ALTER TABLE "{t}" DISABLE ROW LEVEL SECURITY;' for t in tables)
    server.psql(database, sql)
    state = server.psql(database, "select count(*) from pg_class where relrowsecurity and relforcerowsecurity "
                                  f"and relname in ({', '.join(repr(t) for t in tables)})").strip()
    assert int(state) == (len(tables) if enabled else 0), state


async def check_isolation(client: httpx.AsyncClient, tenants: list[SeededTenant]) -> None:
    """Before timing anything: a tenant's list shows only its own users, and another tenant's id answers 404."""
    a, b = tenants[0], tenants[1]
    page = (await client.get("/api/v1/users?limit=200", headers={"Authorization": f"Bearer {a.token}"})).json()
    assert {item["id"] for item in page["items"]} <= {str(u) for u in a.user_ids}, "tenant A sees foreign users"
    foreign = await client.get(f"/api/v1/users/{b.user_ids[0]}", headers={"Authorization": f"Bearer {a.token}"})
    assert foreign.status_code == 404, foreign.text


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--rows", type=int, default=200, help="users and agents per tenant (queues: a quarter)")
    parser.add_argument("--calls", type=int, default=400, help="calls per tenant (five events each)")
    parser.add_argument("--rounds", type=int, default=16, help="timed rounds per mode")
    parser.add_argument("--requests", type=int, default=160, help="requests per round")
    args = parser.parse_args()

    server = PostgresServer.start()
    data_dir = Path(tempfile.mkdtemp(prefix="kefu-bench-"))
    try:
        database = server.create_empty_database()
        # Alembic's env runs its own event loop: migrate from a worker thread.
        await asyncio.to_thread(migrate.upgrade, server.url(database, "kefu_owner"))
        settings = load_settings({
            "KEFU_DATA_DIR": str(data_dir),
            "KEFU_DATABASE_URL": server.url(database, "kefu_app"),
            "KEFU_PLATFORM_DATABASE_URL": server.url(database, "kefu_platform"),
            "KEFU_MIGRATION_DATABASE_URL": server.url(database, "kefu_owner"),
        })
        runtime = Runtime.build(settings, process_roles=frozenset({"api"}))
        app = create_app(runtime=runtime)
        tables = tenant_tables(metadata()) + ["tenants"]
        t0 = time.perf_counter()
        tenants = await seed(runtime, tenants=args.tenants, rows=args.rows, calls=args.calls)
        server.psql(database, "ANALYZE")
        print(f"seeded {args.tenants} tenants x ({args.rows} users, {args.rows} agents, {max(1, args.rows // 4)} queues, "
              f"{args.calls} calls, {args.calls * 5} call events) in {time.perf_counter() - t0:.1f} s", flush=True)

        rng = random.Random(42)
        timings: dict[str, dict[str, list[float]]] = {"rls": {}, "no-rls": {}}
        rounds: dict[str, list[float]] = {"rls": [], "no-rls": []}
        await runtime.start()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://kefu.bench") as client:
                set_rls(server, database, tables, True)
                await check_isolation(client, tenants)
                # Warm-up in both modes: connection pool, statement caches, Python code paths.
                for mode in ("rls", "no-rls", "rls"):
                    set_rls(server, database, tables, mode == "rls")
                    await run_round(client, workload(tenants, args.requests, rng), {})
                # ABBA order: rls, no-rls, no-rls, rls, rls, ...
                order = [("rls", "no-rls")[(i + 1) // 2 % 2] for i in range(2 * args.rounds)]
                for mode in order:
                    set_rls(server, database, tables, mode == "rls")
                    requests = workload(tenants, args.requests, random.Random(rng.random()))
                    # One untimed pass after each switch: ALTER TABLE invalidates cached plans.
                    await run_round(client, requests[:16], {})
                    rounds[mode].append(await run_round(client, requests, timings[mode]))
                set_rls(server, database, tables, True)
        finally:
            await runtime.stop()
    finally:
        server.stop()

    print(f"{'request':<14} {'rls p50 ms':>11} {'no-rls p50 ms':>14} {'ratio':>7}")
    for label in sorted(timings["rls"]):
        on = statistics.median(timings["rls"][label]) * 1000
        off = statistics.median(timings["no-rls"][label]) * 1000
        print(f"{label:<14} {on:>11.2f} {off:>14.2f} {on / off:>7.3f}")
    on_round = statistics.median(rounds["rls"])
    off_round = statistics.median(rounds["no-rls"])
    per_request = args.requests
    print(f"rounds: {args.rounds} per mode x {per_request} requests; median round rls {on_round * 1000:.0f} ms, "
          f"no-rls {off_round * 1000:.0f} ms; throughput rls {per_request / on_round:.0f} req/s, no-rls {per_request / off_round:.0f} req/s")
    print(f"rls_overhead_ratio={on_round / off_round:.3f}")
    return 0


if __name__ == "__main__":
    # One line per request from httpx and the app would bury the figures.
    logging.basicConfig(level=logging.WARNING)
    for name in ("httpx", "kefu", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    sys.exit(asyncio.run(main()))
