"""What routing costs the control plane: decisions per second per core, decision
latency, and sustained call set-ups through entry point -> queue -> agent offer.

Starts its own PostgreSQL and Redis (kefu.platform.devservices), migrates a
fresh database and seeds 100 tenants: the largest with 10,000 agents, 1,000
queues (20 members each, every agent in two queues), 20 skills (a quarter of
the queues need one, every agent has three at random proficiencies); the
other 99 with 50 agents and 5 queues.  Every agent is logged in and
available, with a lease that outlasts the run.

1. **Decisions** (``kefu.tenants.routing.decide``, what the ACD runs per call):
   for every queue of the largest tenant, the facts are loaded once from
   PostgreSQL (``Acd.load_routing_facts``: waiting calls in order, free
   members, skills) and a call is decided against them ``--repeat`` times.
   Prints decisions per second per core (CPU time) and the p50/p99 latency.
2. **Routed offers, sustained** (the whole control plane path, no media):
   ``--processes`` API nodes (default 2, one per core), each its own
   process with its own ``Acd`` + ``CallFlow`` + Redis-backed event bus on
   the shared database, receive open-loop Poisson arrivals at
   ``--rate`` calls per second in all (half to the largest tenant, half
   spread over the others) for ``--seconds`` (default 60).  Each call goes
   ``CallFlow.start_web_call``: widget key -> caller leg answered -> one
   transaction creating the call, applying the queue's rules and booking
   the best free agent (``Acd.offer_on_arrival``; a routing pass after it
   when that cannot be done in line) -> ``offered`` event, i.e. the call
   rings at an agent when it returns.  The media plane is a stand-in
   answering SDP at once.  Prints the achieved rate, set-up latency
   p50/p99/max, the offers made (each checked in the database: every call
   ringing at exactly one agent or waiting in its queue for a free eligible
   agent, no agent with two), offers per CPU-second of the API processes,
   and the CPU per call of the API processes and of PostgreSQL + Redis.

The last line is ``routing_p99_ms=<x> decisions_per_s=<y>``: the decision
latency p99 and decisions per second per core of part 1.  Targets: p99 under
5 ms, at least 2,000 decisions per second per core; part 2 sustains 200 set-ups
per second on a 2-core machine.

Run: ``.venv/bin/python bench/acd_routing.py [--rate 200] [--seconds 60]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIG_AGENTS, BIG_QUEUES, MEMBERS_PER_QUEUE, BIG_SKILLS = 10_000, 1_000, 20, 20
SMALL_TENANTS, SMALL_AGENTS, SMALL_QUEUES = 99, 50, 5
OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


class StandInMedia:
    """The control plane's view of a media plane that answers at once (no RTP)."""

    async def answer_leg(self, **_: Any) -> str:
        return "v=0\r\ns=answer\r\n"

    async def end_call(self, **_: Any) -> list[Any]:
        return []

    async def close_leg(self, **_: Any) -> None:
        return None


def server_cpu_s() -> float:
    """CPU seconds used so far by this machine's PostgreSQL and Redis processes."""
    total = 0
    for pid in Path("/proc").iterdir():
        if not pid.name.isdigit():
            continue
        try:
            if not (pid / "comm").read_text().startswith(("postgres", "redis")):
                continue
            fields = (pid / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime + stime, and cutime + cstime (backends that exited, reaped by the postmaster), in clock ticks
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- database -------------------------------------------------------------------------


def settings_env(db_urls: dict[str, str], redis_url: str, data_dir: str) -> dict[str, str]:
    return {
        "KEFU_DATA_DIR": data_dir, "KEFU_PORT": "8000", "KEFU_DATABASE_URL": db_urls["app"],
        "KEFU_PLATFORM_DATABASE_URL": db_urls["platform"], "KEFU_MIGRATION_DATABASE_URL": db_urls["owner"],
        "KEFU_REDIS_URL": redis_url, "KEFU_RING_TIMEOUT": "600", "KEFU_LOG_LEVEL": "WARNING",
    }


async def seed(platform_url: str) -> dict[str, Any]:
    """Bulk-insert the tenants (as the platform role, which row-level security lets write every tenant)."""
    from kefu.platform.db.base import utcnow
    from kefu.platform.models import Tenant, User
    from kefu.tenants.models import (
        Agent,
        AgentSkill,
        EntryPoint,
        Queue,
        QueueMember,
        QueueSkill,
        Skill,
    )
    from sqlalchemy import insert
    from sqlalchemy.ext.asyncio import create_async_engine

    rng = random.Random(7)
    now = utcnow()
    lease = now + timedelta(hours=6)
    engine = create_async_engine(platform_url)
    plan: dict[str, Any] = {"big": None, "small": []}
    async with engine.begin() as conn:
        for index in range(1 + SMALL_TENANTS):
            big = index == 0
            tenant_id = uuid.uuid4()
            await conn.execute(insert(Tenant), [{"id": tenant_id, "slug": f"t{index}", "name": f"Tenant {index}", "locale": "en", "status": "active"}])
            n_agents, n_queues = (BIG_AGENTS, BIG_QUEUES) if big else (SMALL_AGENTS, SMALL_QUEUES)
            users = [{"id": uuid.uuid4(), "tenant_id": tenant_id, "email": f"a{i}@t{index}.test", "display_name": f"A{i}", "status": "active"} for i in range(n_agents)]
            agents = [
                {"id": uuid.uuid4(), "tenant_id": tenant_id, "user_id": u["id"], "display_name": u["display_name"], "status": "available",
                 "system_state": "idle", "state_changed_at": now - timedelta(seconds=rng.uniform(0, 3600)), "lease_expires_at": lease, "created_at": now}
                for u in users
            ]
            queues = [{"id": uuid.uuid4(), "tenant_id": tenant_id, "name": f"Q{q}", "strategy": "longest_idle", "created_at": now} for q in range(n_queues)]
            for chunk in range(0, n_agents, 2000):
                await conn.execute(insert(User), users[chunk:chunk + 2000])
                await conn.execute(insert(Agent), agents[chunk:chunk + 2000])
            await conn.execute(insert(Queue), queues)
            members = []
            per_queue = MEMBERS_PER_QUEUE if big else SMALL_AGENTS
            for q, queue in enumerate(queues):
                for m in range(per_queue):
                    agent = agents[(q * per_queue // 2 + m) % n_agents] if big else agents[m]
                    members.append({"id": uuid.uuid4(), "tenant_id": tenant_id, "queue_id": queue["id"], "agent_id": agent["id"], "position": m})
            for chunk in range(0, len(members), 5000):
                await conn.execute(insert(QueueMember), members[chunk:chunk + 5000])
            entries = [
                {"id": uuid.uuid4(), "tenant_id": tenant_id, "name": f"E{q}", "kind": "web", "widget_key": f"wk_bench_{index}_{q}",
                 "queue_id": queue["id"], "priority": 0, "enabled": True, "created_at": now}
                for q, queue in enumerate(queues)
            ]
            await conn.execute(insert(EntryPoint), entries)
            if big:
                skills = [{"id": uuid.uuid4(), "tenant_id": tenant_id, "name": f"S{s}", "created_at": now} for s in range(BIG_SKILLS)]
                await conn.execute(insert(Skill), skills)
                agent_skills = [
                    {"id": uuid.uuid4(), "tenant_id": tenant_id, "agent_id": a["id"], "skill_id": s["id"], "proficiency": rng.randint(1, 10)}
                    for a in agents for s in rng.sample(skills, 3)
                ]
                for chunk in range(0, len(agent_skills), 5000):
                    await conn.execute(insert(AgentSkill), agent_skills[chunk:chunk + 5000])
                queue_skills = [
                    {"id": uuid.uuid4(), "tenant_id": tenant_id, "queue_id": queue["id"], "skill_id": rng.choice(skills)["id"],
                     "min_proficiency": rng.randint(1, 5), "required": True}
                    for queue in queues[: n_queues // 4]
                ]
                await conn.execute(insert(QueueSkill), queue_skills)
                plan["big"] = {"tenant_id": tenant_id, "queues": [q["id"] for q in queues], "widgets": [e["widget_key"] for e in entries]}
            else:
                plan["small"].append({"tenant_id": tenant_id, "widgets": [e["widget_key"] for e in entries]})
    await engine.dispose()
    return plan


# --- part 1: decisions ---------------------------------------------------------------------


async def measure_decisions(env: dict[str, str], plan: dict[str, Any], repeat: int) -> tuple[float, float, float, int]:
    from kefu.platform.db import Database
    from kefu.platform.db.base import utcnow
    from kefu.platform.settings import load_settings
    from kefu.tenants import routing
    from kefu.tenants.acd import Acd

    settings = load_settings(env)
    db = Database(settings.db)
    acd = Acd(db, ring_timeout_s=600, sweep_interval_s=None, rng=random.Random(1))
    tenant_id = plan["big"]["tenant_id"]
    now = utcnow()
    facts: list[tuple[routing.WaitingCall, list[routing.Candidate], routing.Rules]] = []
    for queue_id in plan["big"]["queues"]:
        rules, calls, candidates = await _facts_with_a_waiting_call(db, acd, tenant_id, queue_id, now)
        facts.append((calls[0][0], candidates, rules))
    await db.dispose()
    latencies: list[float] = []
    decided = 0
    cpu_start = time.process_time()
    for _ in range(repeat):
        for call, candidates, rules in facts:
            started = time.perf_counter()
            decision = routing.decide(call, candidates, rules, now, acd.rng)
            latencies.append(time.perf_counter() - started)
            decided += decision is not None
    cpu = time.process_time() - cpu_start
    count = len(latencies)
    return count / cpu, percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000, decided


class _RollBack(Exception):
    pass


async def _facts_with_a_waiting_call(db: Any, acd: Any, tenant_id: uuid.UUID, queue_id: uuid.UUID, now: Any) -> Any:
    """The facts the router loads for the queue with one call waiting (inserted, then rolled back)."""
    from kefu.tenants import routing
    from kefu.tenants.models import Call

    loaded = None
    try:
        async with db.tenant_session(tenant_id=tenant_id) as session:
            session.add(Call(id=uuid.uuid4(), tenant_id=tenant_id, queue_id=queue_id, status="queued", started_at=now,
                             queued_at=now - timedelta(seconds=5), priority=0, skills=[]))
            await session.flush()
            facts = await acd.load_routing_facts(session, tenant_id=tenant_id, queue_id=queue_id, now=now)
            assert facts is not None
            queue, calls, candidates = facts
            loaded = (routing.Rules(queue.strategy, queue.relax_after_s, queue.relax_any_after_s), calls, candidates)
            raise _RollBack
    except _RollBack:
        pass
    assert loaded is not None and loaded[1]
    return loaded


# --- part 2: sustained set-ups ------------------------------------------------------------------


def api_node(env: dict[str, str], plan: dict[str, Any], rate: float, seconds: float, seed_: int, results: Any, start_at: float) -> None:
    from kefu.webrtc.fastpath import install_event_loop_policy

    install_event_loop_policy()  # uvloop, as `kefu api` gets it through uvicorn
    try:
        asyncio.run(_api_node(env, plan, rate, seconds, seed_, results, start_at))
    except BaseException:
        import traceback

        results.put({"error": traceback.format_exc()})


async def _api_node(env: dict[str, str], plan: dict[str, Any], rate: float, seconds: float, seed_: int, results: Any, start_at: float) -> None:
    import logging

    logging.disable(logging.WARNING)
    from kefu.platform.app import create_app
    from kefu.platform.runtime import Runtime
    from kefu.platform.settings import load_settings
    from kefu.tenants.services import contact_center

    settings = load_settings(env)
    runtime = Runtime.build(settings, process_roles=frozenset({"api"}))
    create_app(runtime=runtime)
    runtime.components["media"] = StandInMedia()
    await runtime.start()
    print(f"API node {seed_} up", file=sys.stderr, flush=True)
    flow = contact_center(runtime).calls
    rng = random.Random(seed_)
    latencies: list[float] = []
    failures: list[str] = []
    call_ids: list[str] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(widget: str) -> None:
        started = time.perf_counter()
        try:
            created = await flow.start_web_call(widget_key=widget, caller_name="Bench caller", offer_sdp=OFFER)
        except Exception as exc:  # noqa: BLE001 - counted and shown
            failures.append(repr(exc))
            return
        latencies.append(time.perf_counter() - started)
        call_ids.append(str(created.call_id))

    while time.time() < start_at:
        await asyncio.sleep(0.01)
    cpu_start = time.process_time()
    wall_start = time.perf_counter()
    next_at = wall_start
    while next_at - wall_start < seconds:
        next_at += rng.expovariate(rate)
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if rng.random() < 0.5:
            widget = rng.choice(plan["big"]["widgets"])
        else:
            widget = rng.choice(rng.choice(plan["small"])["widgets"])
        task = asyncio.create_task(one(widget))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start
    results.put({"latencies": latencies, "failures": failures, "call_ids": call_ids, "wall": wall, "cpu": cpu})
    try:
        await asyncio.wait_for(runtime.stop(), 10)
    except TimeoutError:
        print(f"API node {seed_}: stopping took over 10 s", file=sys.stderr, flush=True)


async def check_offers(owner_url: str, call_ids: list[str]) -> tuple[int, int, int, int]:
    """(calls ringing at exactly one agent, calls waiting in their queue, calls in any
    other state, agents holding two calls)."""
    from kefu.tenants.models import Agent, Call
    from sqlalchemy import func, select
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(owner_url)
    async with engine.connect() as conn:
        ids = [uuid.UUID(c) for c in call_ids]
        ringing = waiting = 0
        for chunk in range(0, len(ids), 5000):
            rows = (await conn.execute(
                select(Call.id, Call.status, Call.agent_id).where(Call.id.in_(ids[chunk:chunk + 5000]))
            )).all()
            ringing += sum(1 for r in rows if r.status == "ringing" and r.agent_id is not None)
            waiting += sum(1 for r in rows if r.status == "queued")
        doubled = await conn.scalar(
            select(func.count()).select_from(
                select(Call.agent_id).where(Call.status.in_(("ringing", "connected")), Call.agent_id.is_not(None))
                .group_by(Call.agent_id).having(func.count() > 1).subquery()
            )
        ) or 0
        mismatched = await conn.scalar(
            select(func.count()).select_from(Call).join(Agent, (Agent.tenant_id == Call.tenant_id) & (Agent.id == Call.agent_id))
            .where(Call.status == "ringing", Agent.current_call_id != Call.id)
        ) or 0
    await engine.dispose()
    return ringing, waiting, len(ids) - ringing - waiting, doubled + mismatched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="call arrivals per second in all (default 200)")
    parser.add_argument("--seconds", type=float, default=60.0, help="arrival window (default 60)")
    parser.add_argument("--processes", type=int, default=2, help="API node processes (default 2)")
    parser.add_argument("--repeat", type=int, default=20, help="decisions per queue in part 1 (default 20)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from kefu.platform.db import migrate
    from kefu.platform.devservices import PostgresServer, RedisServer

    postgres = PostgresServer.start()
    redis = RedisServer.start()
    try:
        name = postgres.create_empty_database("kefu_bench")
        owner = postgres.url(name, "kefu_owner")
        migrate.upgrade(owner)
        urls = {"app": postgres.url(name, "kefu_app"), "platform": postgres.url(name, "kefu_platform"), "owner": owner}
        data_dir = tempfile.mkdtemp(prefix="kefu-bench-acd-")
        env = settings_env(urls, redis.url, data_dir)
        started = time.perf_counter()
        plan = asyncio.run(seed(urls["platform"]))
        print(f"seeded 100 tenants (largest: {BIG_AGENTS} agents, {BIG_QUEUES} queues) in {time.perf_counter() - started:.1f} s", flush=True)

        per_core, p50, p99, decided = asyncio.run(measure_decisions(env, plan, args.repeat))
        print(f"decisions: {args.repeat * BIG_QUEUES} over the largest tenant's {BIG_QUEUES} queues ({decided} found an agent): "
              f"{per_core:,.0f} per second per core, latency p50 {p50:.3f} ms, p99 {p99:.3f} ms", flush=True)

        results: Any = multiprocessing.get_context("spawn").Queue()
        start_at = time.time() + 8.0  # every node up before the first arrival
        nodes = [
            multiprocessing.get_context("spawn").Process(
                target=api_node, args=(env, plan, args.rate / args.processes, args.seconds, 100 + n, results, start_at)
            )
            for n in range(args.processes)
        ]
        for node in nodes:
            node.start()
        time.sleep(max(0.0, start_at - time.time()))
        servers_before = server_cpu_s()
        outcomes = [results.get(timeout=args.seconds + 600) for _ in nodes]
        servers_cpu = server_cpu_s() - servers_before
        for node in nodes:
            node.join()
        for outcome in outcomes:
            if "error" in outcome:
                print(f"an API node failed:\n{outcome['error']}", flush=True)
                return 1
        latencies = [x for o in outcomes for x in o["latencies"]]
        failures = [x for o in outcomes for x in o["failures"]]
        call_ids = [x for o in outcomes for x in o["call_ids"]]
        wall = max(o["wall"] for o in outcomes)
        cpu = sum(o["cpu"] for o in outcomes)
        ringing, waiting, other, conflicts = asyncio.run(check_offers(urls["platform"], call_ids))
        print(f"set-ups: {len(call_ids)} calls in {wall:.1f} s = {len(call_ids) / wall:.1f} per second through {args.processes} API node(s) "
              f"(offered {args.rate:.0f}/s); failures {len(failures)}{' e.g. ' + failures[0] if failures else ''}", flush=True)
        if latencies:
            print(f"set-up latency (arrival -> ringing at an agent): p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
                  f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms", flush=True)
        # Nobody answers here, so an offered agent stays ringing: a call whose queue has no
        # eligible member left free waits (skills, or a small tenant's 50 agents all ringing).
        print(f"offers: {ringing} calls ringing at one agent each, {waiting} waiting for a free eligible agent, {other} in another state, "
              f"{conflicts} double bookings; "
              f"API CPU {cpu:.1f} s = {ringing / cpu if cpu else 0:,.0f} routed offers per CPU-second", flush=True)
        if call_ids:
            print(f"CPU per call: API {cpu / len(call_ids) * 1000:.2f} ms, PostgreSQL + Redis {servers_cpu / len(call_ids) * 1000:.2f} ms "
                  f"(the machine has {os.cpu_count()} cores: {(cpu + servers_cpu) / wall:.2f} cores busy on average)", flush=True)
        print(f"routing_p99_ms={p99:.3f} decisions_per_s={per_core:.0f}")
        return 0 if conflicts == 0 and other == 0 and not failures else 1
    finally:
        redis.stop()
        postgres.stop()


if __name__ == "__main__":
    raise SystemExit(main())
