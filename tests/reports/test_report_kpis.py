"""KPIs of a hand-computed day: synthetic call and presence logs whose figures are worked
out in the comments, read back through GET /api/v1/reports for each dimension; the
incremental upkeep (run while the logs grow, with an event appended late to a call
already counted) gives exactly what a rebuild from the logs gives."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from reports_support import (
    Tenant,
    add_agent,
    add_queue,
    add_shift,
    add_team,
    ev,
    log,
    new_call,
    presence,
    report,
    rollup_table,
    row_of,
    run_rebuild,
    run_upkeep,
)

DAY = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return DAY.replace(hour=hh, minute=mm, second=ss)


class Day:
    agent_a: uuid.UUID
    agent_b: uuid.UUID
    queue: uuid.UUID
    team: uuid.UUID
    c1: uuid.UUID


async def write_first_half(t: Tenant) -> Day:
    d = Day()
    d.agent_a, d.agent_b = await add_agent(t, "Ann"), await add_agent(t, "Bob")
    d.queue = await add_queue(t, "Support")  # service level threshold: the default 20 s
    d.team = await add_team(t, "Blue", [d.agent_a, d.agent_b], supervisor=t.users["supervisor"])
    # Both agents are scheduled 09:00–10:00 (UTC) every day, from 08:00 on the day.
    hours = {day: [["09:00", "10:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    await add_shift(t, d.agent_a, hours, at(8, 0))
    await add_shift(t, d.agent_b, hours, at(8, 0))
    # Ann: logged in (not ready) 08:30, available 08:45, offline 10:00 → logged in 90 min, available 75 min,
    #      available within the shift 09:00–10:00 = 60 of 60 scheduled minutes.
    await presence(t, d.agent_a, at(8, 30), "not_ready")
    await presence(t, d.agent_a, at(8, 45), "available")
    # Bob: available 09:00–09:30 → logged in 30 min, available 30 min, 30 of 60 scheduled minutes.
    await presence(t, d.agent_b, at(9, 0), "available")

    q = d.queue
    # c1 answered by Ann after 10 s (within 20 s), talks 180 s; its wrap-up is logged later (see below).
    d.c1 = await new_call(t, started_at=at(9, 0))
    await log(t, d.c1, ev("queued", at(9, 0), queue_id=q), ev("answered", at(9, 0, 10), agent_id=d.agent_a),
              ev("disposition", at(9, 3, 0), agent_id=d.agent_a, first_call_resolution=True),
              ev("ended", at(9, 3, 10), reason="caller_hangup"))
    # c2 abandoned after exactly 20 s: a short abandon.
    c2 = await new_call(t, started_at=at(9, 1))
    await log(t, c2, ev("queued", at(9, 1), queue_id=q), ev("ended", at(9, 1, 20), reason="abandoned"))
    # c3 abandoned after 21 s: a real abandon.
    c3 = await new_call(t, started_at=at(9, 2))
    await log(t, c3, ev("queued", at(9, 2), queue_id=q), ev("ended", at(9, 2, 21), reason="abandoned"))
    # c4 answered by Ann after 30 s (outside 20 s); on hold 20 s; blind transfer to the queue at 09:07:00
    # (Ann: 09:05:30–09:07:00 = 90 s − 20 s hold = 70 s talk); Bob answers 09:07:10 and talks until 09:09:10 (120 s).
    c4 = await new_call(t, started_at=at(9, 5))
    await log(t, c4, ev("queued", at(9, 5), queue_id=q), ev("answered", at(9, 5, 30), agent_id=d.agent_a),
              ev("held", at(9, 6, 0)), ev("resumed", at(9, 6, 20)),
              ev("transferred", at(9, 7, 0), mode="blind", from_agent_id=d.agent_a, queue_id=q),
              ev("queued", at(9, 7, 0), queue_id=q), ev("answered", at(9, 7, 10), agent_id=d.agent_b),
              ev("ended", at(9, 9, 10), reason="agent_hangup"))
    return d


async def write_second_half(t: Tenant, d: Day) -> None:
    q = d.queue
    # c5 blocked: the queue was closed.
    c5 = await new_call(t, started_at=at(9, 10))
    await log(t, c5, ev("queued", at(9, 10), queue_id=q), ev("ended", at(9, 10), reason="closed"))
    # c6 contained by the IVR (never reached a queue).
    c6 = await new_call(t, started_at=at(9, 11))
    await log(t, c6, ev("ivr_started", at(9, 11)), ev("ended", at(9, 12), reason="ivr_completed"))
    # c7 through the IVR to the queue, answered by Bob after 10 s, 60 s talk.
    c7 = await new_call(t, started_at=at(9, 13))
    await log(t, c7, ev("ivr_started", at(9, 13)), ev("queued", at(9, 13, 30), queue_id=q),
              ev("answered", at(9, 13, 40), agent_id=d.agent_b), ev("ended", at(9, 14, 40), reason="caller_hangup"))
    # c8 a callback: queued 09:20, answered by Ann at 09:40 (1,180 s later), 60 s talk — out of SL and ASA.
    c8 = await new_call(t, started_at=at(9, 20))
    await log(t, c8, ev("queued", at(9, 20), queue_id=q), ev("callback_requested", at(9, 20, 30)),
              ev("answered", at(9, 40), agent_id=d.agent_a), ev("ended", at(9, 41), reason="agent_hangup"))
    # c9 voicemail.
    c9 = await new_call(t, started_at=at(9, 25))
    await log(t, c9, ev("queued", at(9, 25), queue_id=q), ev("voicemail_started", at(9, 26), queue_id=q),
              ev("ended", at(9, 27), reason="voicemail"))
    # Bob goes offline at 09:30, Ann at 10:00.
    await presence(t, d.agent_b, at(9, 30), "offline")
    await presence(t, d.agent_a, at(10, 0), "offline")
    # Late: c1's after-call work (30 s) is logged after c1 was already counted.
    await log(t, d.c1, ev("wrap_up_ended", at(9, 3, 40), agent_id=d.agent_a, by="agent", wrap_up_s=30.0))


DAY_ROW = "2026-11-23T00:00:00+00:00"


def expected_tenant_day() -> dict[str, Any]:
    return {
        # c1..c9
        "total_calls": 9,
        # c1, c4, c7, c8
        "answered": 4,
        # c2 (short) and c3
        "abandoned": 2, "short_abandoned": 1,
        "blocked": 1,
        # 4 / 9
        "answer_rate": 44.4,
        # within 20 s: c1 (10 s), c7 (10 s); denominator: answered without callbacks (c1, c4, c7) + abandoned − short (c3) = 4
        "service_level": 50.0,
        # (10 + 30 + 10) / 3 — c8 is a callback
        "asa_s": 16.7,
        # (2 − 1) / (4 + 2 − 1)
        "abandon_rate": 20.0,
        # (20 + 21) / 2
        "avg_time_to_abandon_s": 20.5,
        # handled segments: c1 Ann, c4 Ann, c4 Bob, c7 Bob, c8 Ann = 5; talk 180 + 70 + 120 + 60 + 60 = 490, hold 20, ACW 30
        "aht_s": 108.0, "avg_talk_s": 98.0, "avg_hold_s": 4.0, "avg_acw_s": 6.0,
        # one of five segments ended in a transfer
        "transfer_rate": 20.0,
        # c1 flagged resolved, nobody else flagged
        "fcr_rate": 100.0,
        # 5 handled / (90 + 30 min = 2 h)
        "calls_per_logged_in_hour": 2.5,
        # 540 s / (75 + 30 min = 6,300 s) = 8.57 %
        "occupancy": 8.6,
        # (60 + 30) / (60 + 60) scheduled minutes
        "adherence": 75.0,
        # c6 contained of c6, c7 in the IVR
        "ivr_containment": 50.0,
        "callbacks": 1, "voicemails": 1,
    }


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_hand_computed_day_and_incremental_upkeep_equals_a_rebuild(acme: Tenant) -> None:
    d = await write_first_half(acme)
    # Upkeep while the day is going on: half the calls are in, agent time through 09:00.
    first = await run_upkeep(acme, at(9, 4))
    assert first.calls == 4
    await write_second_half(acme, d)
    await run_upkeep(acme, DAY + timedelta(days=1, minutes=30))

    body = await report(acme, dimension="tenant", interval="day", **{"from": "2026-11-23", "to": "2026-11-23"})
    assert body["time_zone"] == "UTC" and body["dimension"] == "tenant" and body["interval"] == "day"
    assert [c["key"] for c in body["columns"]][:3] == ["total_calls", "answered", "abandoned"]
    row = row_of(body, DAY_ROW)
    assert {k: row[k] for k in expected_tenant_day()} == expected_tenant_day()

    # The queue holds every call but c6 (which never reached it); agent time is not a queue's.
    queue_row = row_of(await report(acme, dimension="queue", interval="day", **{"from": "2026-11-23", "to": "2026-11-23"}), DAY_ROW, str(d.queue))
    assert (queue_row["total_calls"], queue_row["ivr_containment"], queue_row["occupancy"]) == (8, 0.0, None)

    agents = await report(acme, dimension="agent", interval="day", **{"from": "2026-11-23", "to": "2026-11-23"})
    ann, bob = row_of(agents, DAY_ROW, str(d.agent_a)), row_of(agents, DAY_ROW, str(d.agent_b))
    # Ann answered c1, c4, c8 first; handled 3 segments: talk 180 + 70 + 60 = 310, hold 20, ACW 30 → AHT 360 / 3 = 120.
    # Occupancy 360 s / 4,500 s available = 8.0 %; 3 handled / 1.5 logged-in hours = 2.0; adherence 60 / 60.
    assert (ann["answered"], ann["aht_s"], ann["occupancy"], ann["calls_per_logged_in_hour"], ann["adherence"]) == (3, 120.0, 8.0, 2.0, 100.0)
    # Ann's SL: c1 within, c4 not (c8 a callback) → 50 %; her transfer rate 1 / 3.
    assert (ann["service_level"], ann["transfer_rate"]) == (50.0, 33.3)
    # Bob answered c7 first (c4 came to him transferred); handled c4 (120 s) and c7 (60 s) → AHT 90;
    # occupancy 180 / 1,800 s = 10 %; 2 handled / 0.5 h = 4.0; adherence 30 / 60.
    assert (bob["answered"], bob["aht_s"], bob["occupancy"], bob["calls_per_logged_in_hour"], bob["adherence"]) == (1, 90.0, 10.0, 4.0, 50.0)

    team = row_of(await report(acme, dimension="team", interval="day", **{"from": "2026-11-23", "to": "2026-11-23"}), DAY_ROW, str(d.team))
    assert (team["answered"], team["aht_s"], team["occupancy"], team["adherence"]) == (4, 108.0, 8.6, 75.0)

    incremental = await rollup_table(acme)
    await run_rebuild(acme, DAY + timedelta(days=1, minutes=30))
    assert await rollup_table(acme) == incremental
    again = await report(acme, dimension="tenant", interval="day", **{"from": "2026-11-23", "to": "2026-11-23"})
    assert again == body


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_thirty_minute_periods_split_agent_time_and_count_calls_where_they_entered(acme: Tenant) -> None:
    agent, queue = await add_agent(acme, "Ann"), await add_queue(acme, "Support")
    # Ann is available 09:20–09:40: 10 minutes in the 09:00 half hour, 10 in the 09:30 one.
    await presence(acme, agent, at(9, 20), "available")
    await presence(acme, agent, at(9, 40), "offline")
    # The call enters the queue at 09:29:50 and is answered at 09:30:10: it belongs to 09:00–09:30.
    call = await new_call(acme, started_at=at(9, 29, 50))
    await log(acme, call, ev("queued", at(9, 29, 50), queue_id=queue), ev("answered", at(9, 30, 10), agent_id=agent),
              ev("ended", at(9, 32, 10), reason="caller_hangup"))
    await run_upkeep(acme, at(12, 0))
    body = await report(acme, dimension="agent", interval="30m", **{"from": "2026-11-23", "to": "2026-11-23"})
    early, late = row_of(body, "2026-11-23T09:00:00+00:00"), row_of(body, "2026-11-23T09:30:00+00:00")
    assert (early["answered"], early["asa_s"], late["answered"]) == (1, 20.0, 0)
    # Logged in 10 min in each half hour: 1 handled / (1/6 h) = 6.0 in the first, none handled in the second.
    assert (early["calls_per_logged_in_hour"], late["calls_per_logged_in_hour"]) == (6.0, 0.0)
    # Occupancy: 120 s talk / 600 s available in the first half hour (the call's handling stays with its period).
    assert (early["occupancy"], late["occupancy"]) == (20.0, 0.0)
    assert len(body["rows"]) == 48


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_presence_changes_committed_after_their_buckets_were_rolled_up_are_applied(acme: Tenant) -> None:
    agent = await add_agent(acme, "Ann")
    await presence(acme, agent, at(8, 0), "available")
    await run_upkeep(acme, at(9, 0))  # agent time through 09:00: Ann available 08:00–09:00
    # Committed late (a slow transaction): Ann was not ready 08:30–08:40.
    await presence(acme, agent, at(8, 30), "not_ready")
    await presence(acme, agent, at(8, 40), "available")
    await run_upkeep(acme, at(10, 0))
    hours = await report(acme, dimension="agent", interval="30m", **{"from": "2026-11-23", "to": "2026-11-23"})
    # 08:30–09:00: available 20 of 30 minutes, logged in all 30 (not ready is logged in).
    half = row_of(hours, "2026-11-23T08:30:00+00:00")
    assert half["occupancy"] == 0.0 and half["calls_per_logged_in_hour"] == 0.0
    incremental = await rollup_table(acme)
    # The 15-minute buckets (logged_in_ms, available_ms): 08:15 all available; 08:30 logged in 15 min,
    # available 08:40–08:45 = 5 min; 08:45 all available.
    by_bucket = {r[2]: list(r[-4:-2]) for r in incremental}
    assert [by_bucket[at(8, m).isoformat()] for m in (15, 30, 45)] == [[900_000, 900_000], [900_000, 300_000], [900_000, 900_000]]
    await run_rebuild(acme, at(10, 0))
    assert await rollup_table(acme) == incremental
