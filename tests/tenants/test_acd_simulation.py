"""A simulated day through the real ACD: Poisson arrivals, exponential handle times,
N agents always available, on SQLite with the hand-driven clock.

Two checks (docs/acd-proof.md):

* the waits the engine produced are exactly those of a first-come first-served,
  work-conserving N-server queue fed the same arrival and handle times (the
  Kiefer-Wolfowitz recursion, computed here independently);
* the service level measured from the call rows matches Erlang C's prediction
  for that M/M/N queue within the sampling error of the run.
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
import uuid
from datetime import timedelta
from pathlib import Path

from acd_harness import Harness, sqlite_settings
from sqlalchemy import select

from kefu.tenants.erlang import service_level
from kefu.tenants.models import Call

AGENTS = 5
AHT_S = 180.0
OCCUPANCY = 0.65  # offered load per agent (docs/acd-proof.md: why not higher)
ARRIVAL_RATE = OCCUPANCY * AGENTS / AHT_S  # calls per second
CALLS = 640
WARM_UP_CALLS = 40  # the day starts with an empty queue: the first calls are left out
TARGET_S = 20.0
BATCHES = 20
# Two-sided 99.9 % quantile of Student's t with BATCHES - 1 = 19 degrees of freedom.
T_QUANTILE = 3.883
SEED = 20261123


async def run_day(harness: Harness, rng: random.Random) -> list[Call]:
    """Arrivals and hang-ups are timers on the node's ManualTimers; agents answer the moment
    they are rung (ring time 0), so a call's wait is the time it spent queued.  Each call's
    handle time is drawn when it arrives (so it belongs to the call, not to the answer order)."""
    node = harness.nodes[0]
    timers, clock = node.timers, harness.clock
    placed: list[uuid.UUID] = []
    handle_s: dict[uuid.UUID, float] = {}
    ended = 0

    async def answer_everything_ringing() -> None:
        for agent_id, call_id in await harness.ringing_offers():
            seat = harness.seat(agent_id)
            await harness.answer(node, seat, call_id)

            async def hang_up(seat=seat, call_id=call_id) -> None:  # type: ignore[no-untyped-def]
                nonlocal ended
                await harness.agent_hangup(node, seat, call_id)
                ended += 1
                await answer_everything_ringing()

            timers.call_at(clock.now + timedelta(seconds=handle_s[call_id]), hang_up)

    async def arrive() -> None:
        call = await harness.place_call(node, caller_name=f"Caller {len(placed)}")
        placed.append(call.call_id)
        handle_s[call.call_id] = rng.expovariate(1 / AHT_S)
        await answer_everything_ringing()
        if len(placed) < CALLS:
            timers.call_at(clock.now + timedelta(seconds=rng.expovariate(ARRIVAL_RATE)), arrive)

    timers.call_at(clock.now + timedelta(seconds=rng.expovariate(ARRIVAL_RATE)), arrive)
    while ended < CALLS:
        await harness.advance((timers.pending()[0] - clock.now).total_seconds())
    async with harness.db.tenant_session(tenant_id=harness.tenant_id) as session:
        calls = {c.id: c for c in await session.scalars(select(Call).where(Call.tenant_id == harness.tenant_id))}
    return [calls[call_id] for call_id in placed]


def fcfs_waits(arrivals: list[float], handle_times: list[float], servers: int) -> list[float]:
    """Waits in a first-come first-served queue with ``servers`` identical servers that never
    idle while a call waits: each call starts when it arrives or when the earliest server frees up."""
    free_at = [0.0] * servers
    waits = []
    for arrival, handle in zip(arrivals, handle_times):
        start = max(arrival, heapq.heappop(free_at))
        waits.append(start - arrival)
        heapq.heappush(free_at, start + handle)
    return waits


async def test_a_simulated_day_meets_the_erlang_c_service_level(sqlite_template: Path, tmp_path: Path) -> None:
    settings = sqlite_settings(sqlite_template, tmp_path / "day", KEFU_RING_TIMEOUT="86400")
    async with Harness(settings, nodes=1) as harness:
        await harness.set_up_tenant(agents=AGENTS)
        # Presence is not what this test is about: a lease longer than the day, so no renewals are needed.
        harness.nodes[0].cc.acd.lease_s = 30 * 24 * 3600
        for seat in harness.seats:
            await harness.go_available(harness.nodes[0], seat)
        start = harness.clock.now
        calls = await run_day(harness, random.Random(SEED))

    assert [c.status for c in calls] == ["ended"] * CALLS
    assert {c.end_reason for c in calls} == {"agent_hangup"}
    waits = [(c.answered_at - c.queued_at).total_seconds() for c in calls]

    # 1. The engine is the M/M/N FCFS queue, call by call.
    arrivals = [(c.queued_at - start).total_seconds() for c in calls]
    handled = [(c.ended_at - c.answered_at).total_seconds() for c in calls]
    reference = fcfs_waits(arrivals, handled, AGENTS)
    assert max(abs(w - r) for w, r in zip(waits, reference)) < 1e-3
    assert sum(w > 0 for w in waits) > CALLS // 10  # the queue was really used

    # 2. Its service level is Erlang C's, within the run's sampling error.
    kept = waits[WARM_UP_CALLS:]
    answered_in_time = [1.0 if wait <= TARGET_S else 0.0 for wait in kept]
    measured = statistics.fmean(answered_in_time)
    predicted = service_level(ARRIVAL_RATE * AHT_S, AGENTS, AHT_S, TARGET_S)
    # Consecutive waits are correlated (a busy spell delays many calls in a row), so the
    # binomial error sqrt(p(1-p)/n) is far too small: batch means over the run give the real one.
    size = len(answered_in_time) // BATCHES
    batch_means = [statistics.fmean(answered_in_time[i * size:(i + 1) * size]) for i in range(BATCHES)]
    standard_error = statistics.stdev(batch_means) / math.sqrt(BATCHES)
    tolerance = T_QUANTILE * standard_error
    binomial = math.sqrt(predicted * (1 - predicted) / len(kept))
    print(
        f"\nservice level within {TARGET_S:.0f} s, {AGENTS} agents, {ARRIVAL_RATE * AHT_S:.2f} erlangs, {len(kept)} calls: "
        f"measured {measured:.4f}, Erlang C {predicted:.4f}, difference {measured - predicted:+.4f}, "
        f"tolerance ±{tolerance:.4f} (batch-means standard error {standard_error:.4f}, binomial {binomial:.4f}); "
        f"mean wait {statistics.fmean(kept):.1f} s, {sum(w > 0 for w in kept)} calls waited"
    )
    assert abs(measured - predicted) <= tolerance
