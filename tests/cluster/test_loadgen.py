"""The load generator (bench/loadgen.py) against the production topology, small: two tenants
of three agents onboarded through the public APIs, a few seconds of calls through both API
replicas.  Every call must reach an agent's socket, be answered and hung up, and show as
ended in its tenant's call log; the report must count what happened, with no errors.

Also the p99 arithmetic of bench/cluster_load.py, which reads Prometheus buckets the way
``histogram_quantile`` does.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
from cluster_load import histogram_quantile, wait_for_media  # noqa: E402
from loadgen import LoadConfig, run_load  # noqa: E402

from kefu.platform.devcluster import Topology  # noqa: E402

TENANTS, AGENTS = 2, 3


@pytest.mark.postgres
@pytest.mark.redis
async def test_every_generated_call_reaches_an_agent_and_ends_in_the_call_log(topology: Topology) -> None:
    wait_for_media(topology, topology.env["KEFU_METRICS_TOKEN"])  # the replicas see both media nodes
    operator_id, operator_secret = topology.operator_client("loadgen-test")
    lines: list[str] = []
    run = await run_load(LoadConfig(
        apis=topology.api_urls(), operator_id=operator_id, operator_secret=operator_secret,
        tenants=TENANTS, agents=AGENTS, rate=3, seconds=3, talk_s=0.3, drain_s=15, log=lines.append,
    ))
    report = run.report

    assert report["errors"] == {} and report["error_count"] == 0
    calls = report["calls"]
    placed = calls["arrivals"]
    assert placed > 0
    assert (calls["created"], calls["offered"], calls["answered"], calls["hung_up"], calls["ended_pushes"]) == (placed,) * 5
    assert calls["still_busy"] == calls["abandoned"] == 0 and calls["setups_per_s"] > 0
    operations = report["operations"]
    seats = TENANTS * AGENTS
    for name in ("auth.login", "agent.session", "ws.connect", "agent.not_ready", "agent.available", "agent.logout"):
        assert (operations[name]["count"], operations[name]["errors"]) == (seats, 0), name
    for name in ("call.create", "call.setup", "call.answer", "call.hangup", "call.ended_push"):
        assert (operations[name]["count"], operations[name]["errors"]) == (placed, 0), name
    for name, figures in operations.items():
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"] <= figures["max_ms"], name
    assert [line.split(":")[0] for line in lines if line.endswith("start")] == [
        "== phase onboarding", "== phase logins", "== phase agent_states", "== phase calls", "== phase logout"]

    # The tenants' own call logs, read through the API with each tenant admin's token.
    assert sum(len(tenant.call_ids) for tenant in run.tenants) == placed
    async with httpx.AsyncClient(timeout=30) as http:
        for tenant in run.tenants:
            response = await http.get(f"{tenant.api}/api/v1/calls", params={"limit": 200},
                                      headers={"Authorization": f"Bearer {tenant.admin_token}"})
            assert response.status_code == 200, response.text
            logged = {item["id"]: (item["status"], item["end_reason"], item["agent_id"] is not None) for item in response.json()["items"]}
            assert logged == {call_id: ("ended", "agent_hangup", True) for call_id in tenant.call_ids}


@pytest.mark.postgres
@pytest.mark.redis
async def test_callers_who_leave_while_it_rings_free_their_agents_and_end_abandoned(topology: Topology) -> None:
    """``after_ring="caller-hangup"`` (the set-up alone): each caller hangs up once its agent
    rings; the agent hears ``call.withdrawn`` and takes the next call; nobody answers."""
    wait_for_media(topology, topology.env["KEFU_METRICS_TOKEN"])
    operator_id, operator_secret = topology.operator_client("loadgen-ring-test")
    run = await run_load(LoadConfig(
        apis=topology.api_urls(), operator_id=operator_id, operator_secret=operator_secret, tenants=1, agents=2,
        rate=4, seconds=2, after_ring="caller-hangup", drain_s=15, log=lambda line: None,
    ))
    calls = run.report["calls"]
    placed = calls["arrivals"]
    assert run.report["error_count"] == 0 and placed > 0
    assert (calls["created"], calls["offered"], calls["hung_up"], calls["ended_pushes"], calls["answered"]) == (placed,) * 4 + (0,)
    [tenant] = run.tenants
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(f"{tenant.api}/api/v1/calls", params={"limit": 200}, headers={"Authorization": f"Bearer {tenant.admin_token}"})
        logged = {item["id"]: (item["status"], item["end_reason"]) for item in response.json()["items"]}
    assert logged == {call_id: ("ended", "abandoned") for call_id in tenant.call_ids}


def test_p99_is_interpolated_inside_its_bucket_as_prometheus_does() -> None:
    buckets = {0.1: 50.0, 0.2: 90.0, 0.3: 100.0, math.inf: 100.0}  # cumulative, summed over replicas
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.29)  # rank 99 of 100: 9/10 into (0.2, 0.3]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)  # the first bucket starts at 0
    assert histogram_quantile(0.99, {0.1: 10.0, math.inf: 20.0}) == 0.1  # in +Inf: the largest finite bound
    assert math.isnan(histogram_quantile(0.99, {0.1: 0.0, math.inf: 0.0}))
