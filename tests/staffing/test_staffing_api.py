"""The staffing calculator over HTTP (docs/staffing.md), on both backends: published worked
examples recomputed exactly here (fractions and factorials, not the figures remembered from
the pages), shrinkage gross-up, the simple workload formula, and every bad input answering
400 ``invalid_staffing_input`` with the field, never 500."""

from __future__ import annotations

import math
import sys
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "tenants"))

from tenants_support import bearer, create_tenant, create_user  # noqa: E402
from test_erlang import exact_erlang_c  # noqa: E402  (the textbook formula in exact arithmetic)

from kefu.platform.runtime import Runtime  # noqa: E402

ERLANG_C = "/api/v1/staffing/erlang-c"
WORKLOAD = "/api/v1/staffing/workload"


async def headers_of(runtime: Runtime, role: str) -> dict[str, str]:
    tenant_id = await create_tenant(runtime, f"acme-{uuid.uuid4().hex[:6]}")
    user_id = await create_user(runtime, tenant_id, f"{role}@acme.test")
    return bearer(runtime, tenant_id=tenant_id, user_id=user_id, roles={role})


@pytest.fixture
async def viewer(runtime: Runtime, client: Any) -> dict[str, str]:
    """A report viewer: ``reports.read`` and nothing to do with queues or agents."""
    return await headers_of(runtime, "report_viewer")


def exact_figures(traffic: Fraction, agents: int, aht_s: int, target_s: int) -> dict[str, float]:
    """Service level, ASA, occupancy and P(wait) of ``agents`` from the exact Erlang C."""
    c = exact_erlang_c(traffic, agents)
    return {
        "service_level_percent": round(100 * (1 - float(c) * math.exp(-float(agents - traffic) * target_s / aht_s)), 2),
        "asa_s": round(float(c * aht_s / (agents - traffic)), 2),
        "occupancy_percent": round(float(100 * traffic / agents), 2),
        "probability_of_waiting": round(float(c), 6),
    }


def smallest_staff(traffic: Fraction, aht_s: int, target: float, target_s: int) -> int:
    n = math.floor(traffic) + 1
    while exact_figures(traffic, n, aht_s, target_s)["service_level_percent"] < 100 * target:
        n += 1
    return n


async def test_westbay_example_360_calls_per_half_hour_of_4_minutes_needs_55_agents_for_80_percent_in_15_s(
    client: Any, viewer: dict[str, str]
) -> None:
    """Westbay Engineers' "The Erlang-C formula" (tests/tenants/test_erlang.py): A = 48 erlangs; 55 agents
    answer 84.59 % within 15 s with an ASA of 8.18 s and P(wait) 23.87 %.  30 % shrinkage: 55 / 0.7 = 78.6 -> 79."""
    body = {"calls": 360, "interval_minutes": 30, "aht_s": 240, "target_percent": 80, "target_s": 15, "shrinkage_percent": 30}
    response = await client.post(ERLANG_C, json=body, headers=viewer)
    assert response.status_code == 200, response.text
    traffic = Fraction(360 * 240, 30 * 60)
    assert traffic == 48
    assert smallest_staff(traffic, 240, 0.8, 15) == 55
    assert response.json() == {
        "traffic_erlangs": 48.0, "agents_on_phones": 55, "agents_scheduled": math.ceil(Fraction(55) / Fraction(7, 10)),
        **exact_figures(traffic, 55, 240, 15),
    }
    assert response.json()["agents_scheduled"] == 79
    assert (response.json()["service_level_percent"], response.json()["asa_s"]) == (84.59, 8.18)
    assert response.json()["occupancy_percent"] == 87.27


async def test_the_same_centre_for_80_percent_in_20_s_needs_54_agents(client: Any, viewer: dict[str, str]) -> None:
    # 53 agents answer 75.18 % within 20 s, 54 answer 81.7 % (not 63: computed, not remembered).
    body = {"calls": 360, "interval_minutes": 30, "aht_s": 240, "target_percent": 80, "target_s": 20}
    response = await client.post(ERLANG_C, json=body, headers=viewer)
    assert response.status_code == 200, response.text
    assert smallest_staff(Fraction(48), 240, 0.8, 20) == 54
    assert exact_figures(Fraction(48), 53, 240, 20)["service_level_percent"] == 75.18
    assert response.json() == {"traffic_erlangs": 48.0, "agents_on_phones": 54, "agents_scheduled": 54, **exact_figures(Fraction(48), 54, 240, 20)}


async def test_call_centre_helper_example_100_calls_per_half_hour_of_3_minutes_needs_14_agents_and_20_with_shrinkage(
    client: Any, viewer: dict[str, str]
) -> None:
    """Call Centre Helper's "Erlang C Formula – Made Simple With an Easy Worked Example" (its inputs: 100
    calls in 30 minutes, AHT 180 s, 80 % within 20 s, 30 % shrinkage, maximum occupancy 85 %; its method:
    A = 10 erlangs, start at N = A + 1 = 11 and add agents until the target is met, then gross up for
    shrinkage).  The figures below are computed here exactly: 11 agents wait 68.21 % and answer 38.96 %
    within 20 s; 13 answer 79.56 %, 14 answer 88.84 % (occupancy 71.43 %, under the 85 % cap);
    14 / (1 - 0.3) = 20 scheduled."""
    body = {"calls": 100, "interval_minutes": 30, "aht_s": 180, "target_percent": 80, "target_s": 20, "shrinkage_percent": 30}
    response = await client.post(ERLANG_C, json=body, headers=viewer)
    assert response.status_code == 200, response.text
    traffic = Fraction(10)
    assert round(float(exact_erlang_c(traffic, 11)), 4) == 0.6821
    assert exact_figures(traffic, 11, 180, 20)["service_level_percent"] == 38.96
    assert exact_figures(traffic, 13, 180, 20)["service_level_percent"] == 79.56
    assert smallest_staff(traffic, 180, 0.8, 20) == 14
    assert response.json() == {"traffic_erlangs": 10.0, "agents_on_phones": 14, "agents_scheduled": 20, **exact_figures(traffic, 14, 180, 20)}
    assert (response.json()["service_level_percent"], response.json()["occupancy_percent"]) == (88.84, 71.43)


async def test_shrinkage_grosses_up_without_adding_an_agent_to_an_exact_quotient(client: Any, viewer: dict[str, str]) -> None:
    # 54 on the phones: 10 % -> 60 exactly (not 61); 25 % -> 72 exactly; 31 % -> 78.3 -> 79.
    base = {"calls": 360, "interval_minutes": 30, "aht_s": 240, "target_percent": 80, "target_s": 20}
    scheduled = {}
    for shrinkage in (0, 10, 25, 31):
        response = await client.post(ERLANG_C, json={**base, "shrinkage_percent": shrinkage}, headers=viewer)
        assert response.status_code == 200, response.text
        assert response.json()["agents_on_phones"] == 54
        scheduled[shrinkage] = response.json()["agents_scheduled"]
    assert scheduled == {0: 54, 10: 60, 25: 72, 31: 79}


async def test_no_calls_need_no_agents(client: Any, viewer: dict[str, str]) -> None:
    body = {"calls": 0, "interval_minutes": 30, "aht_s": 240, "target_percent": 80, "target_s": 20, "shrinkage_percent": 30}
    response = await client.post(ERLANG_C, json=body, headers=viewer)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "traffic_erlangs": 0.0, "agents_on_phones": 0, "agents_scheduled": 0, "service_level_percent": 100.0, "asa_s": 0.0,
        "occupancy_percent": None, "probability_of_waiting": 0.0,
    }


async def test_the_workload_formula_divides_the_hours_to_answer_by_one_agents_productive_hours(client: Any, viewer: dict[str, str]) -> None:
    # 20,000 calls x 300 s x 90 % answered = 1,500 h; 168 h x 90 % attendance x 80 % utilisation = 120.96 h;
    # 1,500 / 120.96 = 12.40 -> 13 agents.
    body = {"monthly_calls": 20_000, "aht_s": 300, "answer_rate_percent": 90, "monthly_hours_per_agent": 168,
            "attendance_percent": 90, "utilisation_percent": 80}
    response = await client.post(WORKLOAD, json=body, headers=viewer)
    assert response.status_code == 200, response.text
    exact = Fraction(20_000 * 300 * 90, 100 * 3600) / (168 * Fraction(90, 100) * Fraction(80, 100))
    assert response.json() == {"workload_hours": 1500.0, "productive_hours_per_agent": 120.96, "agents_exact": round(float(exact), 2),
                               "agents": math.ceil(exact)}
    assert response.json()["agents"] == 13
    # An exact quotient is not rounded up: 1,200 h / (160 h x 75 %) = 10.
    body = {"monthly_calls": 17_280, "aht_s": 250, "answer_rate_percent": 100, "monthly_hours_per_agent": 160,
            "attendance_percent": 100, "utilisation_percent": 75}
    response = await client.post(WORKLOAD, json=body, headers=viewer)
    assert response.status_code == 200, response.text
    assert (response.json()["agents_exact"], response.json()["agents"]) == (10.0, 10)


ERLANG_OK = {"calls": 360, "interval_minutes": 30, "aht_s": 240, "target_percent": 80, "target_s": 20, "shrinkage_percent": 30}
WORKLOAD_OK = {"monthly_calls": 20_000, "aht_s": 300, "answer_rate_percent": 90, "monthly_hours_per_agent": 168,
               "attendance_percent": 90, "utilisation_percent": 80}
BAD_INPUTS = [
    (ERLANG_C, {"calls": -1}, "calls"),
    (ERLANG_C, {"calls": 1e300}, "calls"),
    (ERLANG_C, {"calls": 999_999_999}, "calls"),  # 123 million erlangs: beyond the calculator's 10,000
    (ERLANG_C, {"interval_minutes": 0}, "interval_minutes"),
    (ERLANG_C, {"interval_minutes": 1e-320}, "calls"),  # a denormal interval: astronomical traffic, not a crash
    (ERLANG_C, {"aht_s": 0}, "aht_s"),
    (ERLANG_C, {"aht_s": -240}, "aht_s"),
    (ERLANG_C, {"target_percent": 100}, "target_percent"),
    (ERLANG_C, {"target_percent": 0}, "target_percent"),
    (ERLANG_C, {"target_percent": 250}, "target_percent"),
    (ERLANG_C, {"target_s": -1}, "target_s"),
    (ERLANG_C, {"shrinkage_percent": 100}, "shrinkage_percent"),
    (ERLANG_C, {"shrinkage_percent": -5}, "shrinkage_percent"),
    (WORKLOAD, {"monthly_calls": -1}, "monthly_calls"),
    (WORKLOAD, {"monthly_calls": 1e9, "aht_s": 86_400}, "monthly_calls"),  # more than MAX_AGENTS
    (WORKLOAD, {"aht_s": 0}, "aht_s"),
    (WORKLOAD, {"answer_rate_percent": 101}, "answer_rate_percent"),
    (WORKLOAD, {"monthly_hours_per_agent": 0}, "monthly_hours_per_agent"),
    (WORKLOAD, {"monthly_hours_per_agent": 1000}, "monthly_hours_per_agent"),
    (WORKLOAD, {"monthly_hours_per_agent": 5e-324, "attendance_percent": 1, "utilisation_percent": 1}, "monthly_hours_per_agent"),
    (WORKLOAD, {"monthly_hours_per_agent": 1e-300, "monthly_calls": 1e9}, "monthly_calls"),  # an astronomical quotient
    (WORKLOAD, {"attendance_percent": 0}, "attendance_percent"),
    (WORKLOAD, {"utilisation_percent": 0}, "utilisation_percent"),
    (WORKLOAD, {"utilisation_percent": 120}, "utilisation_percent"),
]


async def test_impossible_inputs_answer_400_naming_the_field_never_500(client: Any, viewer: dict[str, str]) -> None:
    answers = []
    for path, change, _ in BAD_INPUTS:
        body = {**(ERLANG_OK if path == ERLANG_C else WORKLOAD_OK), **change}
        response = await client.post(path, json=body, headers=viewer)
        answers.append((path, change, response.status_code, response.json().get("code"), response.json().get("field")))
    assert answers == [(path, change, 400, "invalid_staffing_input", field) for path, change, field in BAD_INPUTS]


async def test_wrong_types_and_unknown_fields_are_refused_by_the_schema(client: Any, viewer: dict[str, str]) -> None:
    for body in ({**ERLANG_OK, "calls": "many"}, {**ERLANG_OK, "calls": True}, {**ERLANG_OK, "agents": 3}, {"calls": 10}):
        response = await client.post(ERLANG_C, json=body, headers=viewer)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["code"] == "validation_error"


async def test_an_extreme_target_for_a_large_centre_is_computed_not_refused(client: Any, viewer: dict[str, str]) -> None:
    # 10,000 erlangs (the most the calculator takes), 99.999 % within 0 s.
    body = {"calls": 75_000, "interval_minutes": 30, "aht_s": 240, "target_percent": 99.999, "target_s": 0}
    response = await client.post(ERLANG_C, json=body, headers=viewer)
    assert response.status_code == 200, response.text
    figures = response.json()
    assert figures["traffic_erlangs"] == 10_000.0
    assert 10_000 < figures["agents_on_phones"] < 11_000
    assert figures["service_level_percent"] >= 99.99


async def test_the_calculator_needs_reports_read(runtime: Runtime, client: Any) -> None:
    agent = await headers_of(runtime, "agent")
    supervisor = await headers_of(runtime, "supervisor")
    for path, body in ((ERLANG_C, ERLANG_OK), (WORKLOAD, WORKLOAD_OK)):
        refused = await client.post(path, json=body, headers=agent)
        assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
        anonymous = await client.post(path, json=body)
        assert anonymous.status_code == 401
        allowed = await client.post(path, json=body, headers=supervisor)
        assert allowed.status_code == 200, allowed.text
