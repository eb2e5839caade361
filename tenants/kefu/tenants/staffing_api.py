"""Staffing: the Erlang C calculator and the simple workload formula over HTTP (docs/staffing.md).

Both routes are pure computations (``reports.read``): they read and store no
tenant data.  The queueing maths is ``kefu.tenants.erlang``; this module checks
the input (every value a user can type answers 400 ``invalid_staffing_input``
naming the field, never 500) and shapes the answer.
"""

from __future__ import annotations

import math
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Controller, post
from litestar.params import JSONBody

from kefu.platform.identity.principal import requires
from kefu.platform.problems import Problem
from kefu.platform.runtime import Runtime
from kefu.tenants.erlang import MAX_AGENTS, agents_needed, average_speed_of_answer, erlang_c, offered_traffic, service_level
from kefu.tenants.schemas import Request

# The largest offered traffic the calculator takes.  Finding the staff is a linear
# search whose every step costs O(agents); 10,000 erlangs (10,000 calls talking at
# once in one interval) answer within about a second even for a 99.999…% target,
# far beyond any single queue, and keep a typo from holding a worker for long.
MAX_TRAFFIC_ERLANGS = 10_000.0
MAX_AHT_S = 86_400.0
MAX_INTERVAL_MINUTES = 1_440.0
MAX_CALLS = 1e9  # per interval or per month: beyond it, a typo
HOURS_IN_A_MONTH = 744.0  # 31 days


class ErlangCRequest(Request):
    """Calls offered in one interval and the service-level target (docs/staffing.md)."""

    calls: float
    interval_minutes: float
    aht_s: float
    target_percent: float
    target_s: float
    shrinkage_percent: float = 0.0


class ErlangCOut(msgspec.Struct):
    traffic_erlangs: float
    agents_on_phones: int
    agents_scheduled: int
    service_level_percent: float
    asa_s: float
    occupancy_percent: float | None
    probability_of_waiting: float


class WorkloadRequest(Request):
    """The simple monthly formula: agents = volume × AHT × answer rate ÷ (hours × attendance × utilisation)."""

    monthly_calls: float
    aht_s: float
    answer_rate_percent: float
    monthly_hours_per_agent: float
    attendance_percent: float
    utilisation_percent: float


class WorkloadOut(msgspec.Struct):
    workload_hours: float
    productive_hours_per_agent: float
    agents_exact: float
    agents: int


def _invalid(field: str, detail: str) -> Problem:
    return Problem(400, "invalid_staffing_input", detail, field=field)


def _number(value: float, field: str, *, low: float, high: float, low_open: bool = False, high_open: bool = False) -> float:
    """``value`` within [low, high] (an open end excludes the bound), else 400 naming ``field``."""
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if not math.isfinite(value) or too_low or too_high:
        lower = f"{'>' if low_open else '>='} {low:g}"
        upper = f"{'<' if high_open else '<='} {high:g}"
        raise _invalid(field, f"{field} must be a number {lower} and {upper}, not {value!r}")
    return value


def erlang_c_staffing(data: ErlangCRequest) -> ErlangCOut:
    """Agents on the phones for the target (smallest N), grossed up for shrinkage, with that staff's figures."""
    calls = _number(data.calls, "calls", low=0, high=MAX_CALLS)
    interval_minutes = _number(data.interval_minutes, "interval_minutes", low=0, high=MAX_INTERVAL_MINUTES, low_open=True)
    aht_s = _number(data.aht_s, "aht_s", low=0, high=MAX_AHT_S, low_open=True)
    target = _number(data.target_percent, "target_percent", low=0, high=100, low_open=True, high_open=True) / 100
    target_s = _number(data.target_s, "target_s", low=0, high=MAX_AHT_S)
    shrinkage = _number(data.shrinkage_percent, "shrinkage_percent", low=0, high=100, high_open=True) / 100
    interval_s = interval_minutes * 60
    traffic = offered_traffic(calls, interval_s, aht_s)
    if traffic > MAX_TRAFFIC_ERLANGS:
        raise _invalid("calls", f"{traffic:.0f} erlangs offered; the calculator takes at most {MAX_TRAFFIC_ERLANGS:.0f} (check the call volume)")
    try:
        on_phones = agents_needed(calls, interval_s, aht_s, target, target_s)
        scheduled = agents_needed(calls, interval_s, aht_s, target, target_s, shrinkage) if shrinkage else on_phones
    except ValueError as error:  # more than MAX_AGENTS for an extreme target
        raise _invalid("target_percent", str(error)) from error
    return ErlangCOut(
        traffic_erlangs=round(traffic, 4),
        agents_on_phones=on_phones,
        agents_scheduled=scheduled,
        service_level_percent=round(100 * service_level(traffic, on_phones, aht_s, target_s), 2),
        asa_s=round(average_speed_of_answer(traffic, on_phones, aht_s), 2),
        occupancy_percent=round(100 * traffic / on_phones, 2) if on_phones else None,
        probability_of_waiting=round(erlang_c(traffic, on_phones), 6),
    )


def workload_staffing(data: WorkloadRequest) -> WorkloadOut:
    """The monthly rule of thumb: hours of talk to answer ÷ productive hours of one agent, rounded up."""
    monthly_calls = _number(data.monthly_calls, "monthly_calls", low=0, high=MAX_CALLS)
    aht_s = _number(data.aht_s, "aht_s", low=0, high=MAX_AHT_S, low_open=True)
    answer_rate = _number(data.answer_rate_percent, "answer_rate_percent", low=0, high=100) / 100
    hours = _number(data.monthly_hours_per_agent, "monthly_hours_per_agent", low=0, high=HOURS_IN_A_MONTH, low_open=True)
    attendance = _number(data.attendance_percent, "attendance_percent", low=0, high=100, low_open=True) / 100
    utilisation = _number(data.utilisation_percent, "utilisation_percent", low=0, high=100, low_open=True) / 100
    workload_hours = monthly_calls * aht_s * answer_rate / 3600
    productive_hours = hours * attendance * utilisation
    if productive_hours == 0:  # a denormal number of hours times two fractions
        raise _invalid("monthly_hours_per_agent", "monthly_hours_per_agent leaves no productive time")
    exact = workload_hours / productive_hours
    if exact > MAX_AGENTS:
        raise _invalid("monthly_calls", f"more than {MAX_AGENTS} agents would be needed; check the call volume")
    # As in erlang.agents_needed: the epsilon keeps an exact quotient that binary floats
    # round up (12.000000000000002) from adding an agent.
    return WorkloadOut(
        workload_hours=round(workload_hours, 2), productive_hours_per_agent=round(productive_hours, 2),
        agents_exact=round(exact, 2), agents=math.ceil(exact - 1e-9),
    )


class StaffingController(Controller):
    path = "/api/v1/staffing"
    tags = ["staffing"]

    @post("/erlang-c", guards=[requires("reports.read")], status_code=200)
    async def erlang_c(self, data: JSONBody[ErlangCRequest]) -> ErlangCOut:
        """Agents needed for a service-level target (Erlang C), grossed up for shrinkage, and
        that staff's service level, average speed of answer, occupancy and probability of waiting."""
        # A thread: a large centre's search takes up to about a second (see MAX_TRAFFIC_ERLANGS).
        return await anyio.to_thread.run_sync(erlang_c_staffing, data)

    @post("/workload", guards=[requires("reports.read")], status_code=200)
    async def workload(self, data: JSONBody[WorkloadRequest]) -> WorkloadOut:
        """Agents for a month's volume by the simple workload formula (no queueing: see docs/staffing.md)."""
        return workload_staffing(data)


def install(runtime: Runtime) -> list[Any]:
    return [StaffingController]
