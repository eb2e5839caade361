"""Erlang C: the M/M/N queue behind staffing and service-level figures.

Offered traffic ``A`` (erlangs) = arrival rate × average handle time; ``N``
agents.  With Poisson arrivals, exponential handle times, first-come
first-served and callers who never abandon (the model's assumptions):

* ``erlang_c(A, N)``: probability that a call waits at all;
* ``service_level(A, N, aht_s, target_s)``: fraction answered within
  ``target_s`` of queuing, ``1 - C·exp(-(N-A)·target_s/aht_s)``;
* ``average_speed_of_answer(A, N, aht_s)``: mean wait, ``C·aht_s/(N-A)``;
* ``agents_needed(...)``: the smallest N that reaches a service-level target,
  grossed up for shrinkage.

Numerically stable for thousands of agents: Erlang B by its recurrence
``B(0) = 1, B(n) = A·B(n-1) / (n + A·B(n-1))`` (no powers, no factorials),
then ``C = N·B / (N - A·(1 - B))``.  With ``N <= A`` the queue grows without
bound: every call waits (C = 1), the service level is 0 and the mean wait is
infinite.  Reporting reuses this module.
"""

from __future__ import annotations

import math

__all__ = ["agents_needed", "average_speed_of_answer", "erlang_b", "erlang_c", "offered_traffic", "service_level"]

# agents_needed gives up beyond this many agents (a typo in the volume, not a real centre).
MAX_AGENTS = 100_000


def _check_traffic(traffic_erlangs: float) -> float:
    if not math.isfinite(traffic_erlangs) or traffic_erlangs < 0:
        raise ValueError(f"traffic must be a finite number of erlangs >= 0, not {traffic_erlangs!r}")
    return float(traffic_erlangs)


def _check_agents(agents: int) -> int:
    if isinstance(agents, bool) or not isinstance(agents, int) or agents < 0:
        raise ValueError(f"agents must be a whole number >= 0, not {agents!r}")
    return agents


def _check_positive(value: float, what: str) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a finite number > 0, not {value!r}")
    return float(value)


def _check_target_s(target_s: float) -> float:
    if not math.isfinite(target_s) or target_s < 0:
        raise ValueError(f"the target answer time must be a finite number of seconds >= 0, not {target_s!r}")
    return float(target_s)


def offered_traffic(calls_per_interval: float, interval_s: float, aht_s: float) -> float:
    """Erlangs offered by ``calls_per_interval`` calls of ``aht_s`` seconds in ``interval_s`` seconds."""
    if not math.isfinite(calls_per_interval) or calls_per_interval < 0:
        raise ValueError(f"the call volume must be a finite number >= 0, not {calls_per_interval!r}")
    return calls_per_interval * _check_positive(aht_s, "the average handle time") / _check_positive(interval_s, "the interval")


def erlang_b(traffic_erlangs: float, agents: int) -> float:
    """Blocking probability of ``agents`` lines offered ``traffic_erlangs`` (lost-calls model)."""
    a, n = _check_traffic(traffic_erlangs), _check_agents(agents)
    b = 1.0
    for k in range(1, n + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(traffic_erlangs: float, agents: int) -> float:
    """Probability that a call has to wait (1.0 when ``agents <= traffic``: the queue never empties)."""
    a, n = _check_traffic(traffic_erlangs), _check_agents(agents)
    if a == 0:
        return 0.0
    if n <= a:
        return 1.0
    b = erlang_b(a, n)
    return min(1.0, n * b / (n - a * (1 - b)))


def service_level(traffic_erlangs: float, agents: int, aht_s: float, target_s: float) -> float:
    """Fraction of calls answered within ``target_s`` seconds of queuing (0.0 when ``agents <= traffic``)."""
    a, n = _check_traffic(traffic_erlangs), _check_agents(agents)
    aht, target = _check_positive(aht_s, "the average handle time"), _check_target_s(target_s)
    if a == 0:
        return 1.0
    if n <= a:
        return 0.0
    return max(0.0, 1.0 - erlang_c(a, n) * math.exp(-(n - a) * target / aht))


def average_speed_of_answer(traffic_erlangs: float, agents: int, aht_s: float) -> float:
    """Mean wait in seconds over all calls, answered at once or not (``inf`` when ``agents <= traffic``)."""
    a, n = _check_traffic(traffic_erlangs), _check_agents(agents)
    aht = _check_positive(aht_s, "the average handle time")
    if a == 0:
        return 0.0
    if n <= a:
        return math.inf
    return erlang_c(a, n) * aht / (n - a)


def agents_needed(
    calls_per_interval: float,
    interval_s: float,
    aht_s: float,
    target_sl: float,
    target_s: float,
    shrinkage: float = 0.0,
) -> int:
    """Agents to schedule: the smallest N whose service level reaches ``target_sl``,
    divided by ``1 - shrinkage`` (breaks, training, absence) and rounded up.

    ``target_sl`` is a fraction in (0, 1): a service level of exactly 1 is never
    reached by a queue with random arrivals.  No calls need no agents.
    """
    if not math.isfinite(target_sl) or not 0 < target_sl < 1:
        raise ValueError(f"the service-level target must be a fraction between 0 and 1 (exclusive), not {target_sl!r}")
    if not math.isfinite(shrinkage) or not 0 <= shrinkage < 1:
        raise ValueError(f"shrinkage must be a fraction >= 0 and < 1, not {shrinkage!r}")
    target = _check_target_s(target_s)
    a = offered_traffic(calls_per_interval, interval_s, aht_s)
    if a == 0:
        return 0
    n = math.floor(a) + 1
    while n > MAX_AGENTS or service_level(a, n, aht_s, target) < target_sl:
        if n > MAX_AGENTS:
            raise ValueError(f"more than {MAX_AGENTS} agents would be needed for {a:.1f} erlangs; check the call volume")
        n += 1
    # The epsilon keeps an exact quotient (8 / 0.8) from rounding up to the next agent.
    return math.ceil(n / (1 - shrinkage) - 1e-9)
