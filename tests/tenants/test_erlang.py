"""Erlang C (kefu.tenants.erlang): the published worked example, an exact reference
computed here with fractions and factorials, and the input checks."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kefu.tenants.erlang import agents_needed, average_speed_of_answer, erlang_b, erlang_c, offered_traffic, service_level


def exact_erlang_c(traffic: Fraction, agents: int) -> Fraction:
    """The textbook formula, term by term, in exact arithmetic (the reference, not the implementation):
    C = (A^N/N! · N/(N-A)) / (sum_{k<N} A^k/k! + A^N/N! · N/(N-A))."""
    waiting = traffic**agents / math.factorial(agents) * Fraction(agents) / (agents - traffic)
    return waiting / (sum(traffic**k / math.factorial(k) for k in range(agents)) + waiting)


def test_the_published_worked_example_360_calls_per_half_hour_with_55_agents() -> None:
    """The worked example of Westbay Engineers' "The Erlang-C formula" page (reproduced in many
    call-centre texts): 360 calls per half hour, 4 minute calls (A = 48 erlangs), 55 agents,
    target answer time 15 s.  Its figures — probability of waiting 23.87 %, average speed of
    answer 8.18 s, service level 84.59 % within 15 s (86.68 % within 20 s) — are checked here
    against the exact formula in fractions, not copied: the page's own figures are rounded."""
    traffic = offered_traffic(360, 1800, 240)
    assert traffic == 48.0
    exact = exact_erlang_c(Fraction(48), 55)
    assert float(exact) == pytest.approx(0.238700936, abs=1e-9)

    assert erlang_c(traffic, 55) == pytest.approx(float(exact), rel=1e-12)
    assert round(erlang_c(traffic, 55), 4) == 0.2387
    assert round(average_speed_of_answer(traffic, 55, 240), 2) == 8.18
    assert round(service_level(traffic, 55, 240, 15), 4) == 0.8459
    assert round(service_level(traffic, 55, 240, 20), 4) == 0.8668
    assert service_level(traffic, 55, 240, 20) == pytest.approx(1 - float(exact) * math.exp(-7 * 20 / 240), rel=1e-12)


def test_agents_needed_is_the_smallest_staff_reaching_the_target_then_grossed_up_for_shrinkage() -> None:
    # 80 % in 20 s: 54 agents give 81.7 %, 53 give 75.2 %.
    assert round(service_level(48, 53, 240, 20), 3) == 0.752
    assert round(service_level(48, 54, 240, 20), 3) == 0.817
    assert agents_needed(360, 1800, 240, 0.8, 20) == 54
    assert agents_needed(360, 1800, 240, 0.8, 15) == 55
    # 54 / (1 - 0.3) = 77.1 -> 78 scheduled; an exact quotient is not rounded up (48 / 0.8 = 60).
    assert agents_needed(360, 1800, 240, 0.8, 20, shrinkage=0.3) == 78
    assert agents_needed(0, 1800, 240, 0.8, 20) == 0
    assert agents_needed(360, 1800, 240, 0.8, 20, shrinkage=0.1) == 60


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=60), st.fractions(min_value=Fraction(1, 100), max_value=Fraction(99, 100)))
def test_erlang_c_equals_the_exact_formula(agents: int, occupancy: Fraction) -> None:
    traffic = occupancy * agents
    assert erlang_c(float(traffic), agents) == pytest.approx(float(exact_erlang_c(traffic, agents)), rel=1e-9, abs=1e-15)


def test_large_centres_are_computed_without_overflow() -> None:
    # A^N / N! alone overflows a float beyond ~170 agents; the recurrence does not.
    for agents, traffic in ((200, 180.0), (2_000, 1_950.0), (10_000, 9_900.0)):
        c = erlang_c(traffic, agents)
        assert 0 < c < 1 and math.isfinite(c)
    exact = exact_erlang_c(Fraction(180), 200)
    assert erlang_c(180.0, 200) == pytest.approx(float(exact), rel=1e-9)


def test_erlang_b_recurrence_matches_its_definition() -> None:
    # B(A, N) = (A^N/N!) / sum_{k<=N} A^k/k!
    a, n = Fraction(7), 10
    exact = a**n / math.factorial(n) / sum(a**k / math.factorial(k) for k in range(n + 1))
    assert erlang_b(7, 10) == pytest.approx(float(exact), rel=1e-12)
    assert erlang_b(7, 0) == 1.0


def test_an_overloaded_queue_always_waits_and_answers_nothing_in_time() -> None:
    assert erlang_c(48, 48) == 1.0
    assert erlang_c(48, 40) == 1.0
    assert service_level(48, 48, 240, 20) == 0.0
    assert average_speed_of_answer(48, 47, 240) == math.inf


def test_no_traffic_never_waits() -> None:
    assert erlang_c(0, 0) == 0.0
    assert service_level(0, 3, 240, 20) == 1.0
    assert average_speed_of_answer(0, 3, 240) == 0.0


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=200), st.floats(min_value=0.05, max_value=0.98), st.floats(min_value=0, max_value=600))
def test_more_agents_never_lower_the_service_level(agents: int, occupancy: float, target_s: float) -> None:
    traffic = occupancy * agents
    assert service_level(traffic, agents + 1, 180, target_s) >= service_level(traffic, agents, 180, target_s) - 1e-12
    assert erlang_c(traffic, agents + 1) <= erlang_c(traffic, agents) + 1e-12
    assert 0.0 <= service_level(traffic, agents, 180, target_s) <= 1.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: erlang_c(-1, 5), "traffic must be a finite number of erlangs >= 0"),
        (lambda: erlang_c(float("nan"), 5), "traffic must be a finite number of erlangs >= 0"),
        (lambda: erlang_c(3, -1), "agents must be a whole number >= 0"),
        (lambda: erlang_c(3, 2.5), "agents must be a whole number >= 0"),
        (lambda: service_level(3, 5, 0, 20), "the average handle time must be a finite number > 0"),
        (lambda: service_level(3, 5, 180, -1), "the target answer time must be a finite number of seconds >= 0"),
        (lambda: agents_needed(-10, 1800, 240, 0.8, 20), "the call volume must be a finite number >= 0"),
        (lambda: agents_needed(10, 0, 240, 0.8, 20), "the interval must be a finite number > 0"),
        (lambda: agents_needed(10, 1800, 240, 1.0, 20), "the service-level target must be a fraction between 0 and 1"),
        (lambda: agents_needed(10, 1800, 240, 0.8, 20, shrinkage=1.0), "shrinkage must be a fraction >= 0 and < 1"),
        (lambda: agents_needed(10**9, 1800, 240, 0.8, 20), "agents would be needed"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        call()
