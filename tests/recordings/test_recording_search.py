"""GET /api/v1/recordings: the calls of the caller's tenant that have recordings, newest
first, filtered, in keyset pages; and the serial number a call is shown with."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from recordings_support import T0, RecordedCall, Tenant, add_agent, add_queue, recorded_call

from kefu.tenants.models import Call
from kefu.tenants.recordings import hooks
from kefu.tenants.recordings.serials import call_serial, serial_of

SEARCH = "/api/v1/recordings"


def test_a_serial_is_the_utc_start_and_the_first_eight_hex_digits_of_the_id() -> None:
    call_id = uuid.UUID("9f3a2b1c-0000-4000-8000-000000000001")
    in_shanghai = datetime(2026, 11, 23, 17, 5, 9, 999_999, tzinfo=UTC).astimezone(ZoneInfo("Asia/Shanghai"))
    assert serial_of(call_id, in_shanghai) == "20261123170509-9f3a2b1c"
    assert call_serial(Call(id=call_id, started_at=datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC))) == "20270102030405-9f3a2b1c"
    with pytest.raises(ValueError):
        serial_of(call_id, datetime(2027, 1, 2, 3, 4, 5))


async def ids(client: Any, tenant: Tenant, role: str = "tenant_admin", **params: Any) -> list[str]:
    response = await client.get(SEARCH, params=params, headers=tenant.headers(role))
    assert response.status_code == 200, response.text
    return [item["call_id"] for item in response.json()["items"]]


@pytest.fixture
async def floor(client: Any, acme: Tenant, globex: Tenant) -> dict[str, Any]:
    """Acme's recorded calls (and one without recordings), Globex's one."""
    support, sales = await add_queue(client, acme, "Support"), await add_queue(client, acme, "Sales")
    ann, bob = await add_agent(client, acme, "Ann"), await add_agent(client, acme, "Bob")
    day = timedelta(days=1)
    calls = {
        "wang": await recorded_call(acme, started_at=T0 - 3 * day, caller_name="Wang Wei", caller_ref="CRM-100", queue_id=support,
                                    agent_id=ann.id, talk_s=45, disposition="resolved"),
        "smith": await recorded_call(acme, started_at=T0 - 2 * day, caller_name="Jo Smith", caller_ref="crm-200", queue_id=sales,
                                     agent_id=bob.id, talk_s=300, disposition="callback"),
        "percent": await recorded_call(acme, started_at=T0 - day, caller_name="100% Genuine", queue_id=support, agent_id=ann.id, talk_s=120),
        "voicemail": await recorded_call(acme, started_at=T0 - timedelta(hours=1), caller_name="Li Na", queue_id=support, talk_s=None,
                                         parties=("caller",)),
    }
    unrecorded = await recorded_call(acme, started_at=T0 - timedelta(minutes=5), caller_name="Wang Unrecorded", parties=())
    foreign = await recorded_call(globex, started_at=T0 - timedelta(minutes=1), caller_name="Wang Globex", caller_ref="CRM-100")
    return {"support": support, "sales": sales, "ann": ann, "bob": bob, "calls": calls, "unrecorded": unrecorded, "foreign": foreign}


async def test_the_search_shows_calls_with_recordings_newest_first_with_everything_a_row_needs(
    client: Any, acme: Tenant, floor: dict[str, Any]
) -> None:
    calls: dict[str, RecordedCall] = floor["calls"]
    response = await client.get(SEARCH, headers=acme.headers())
    assert response.status_code == 200, response.text
    page = response.json()
    assert [item["call_id"] for item in page["items"]] == [str(calls[n].id) for n in ("voicemail", "percent", "smith", "wang")]
    assert page["next_cursor"] is None and page["limit"] == 50
    wang = page["items"][3]
    started = T0 - timedelta(days=3)
    assert wang == {
        "call_id": str(calls["wang"].id),
        "serial": f"{started:%Y%m%d%H%M%S}-{calls['wang'].id.hex[:8]}",
        "caller_name": "Wang Wei",
        "caller_ref": "CRM-100",
        "agent": {"id": str(floor["ann"].id), "name": "Ann"},
        "queue": {"id": str(floor["support"]), "name": "Support"},
        "started_at": started.isoformat().replace("+00:00", "Z"),
        "answered_at": (started + timedelta(seconds=10)).isoformat().replace("+00:00", "Z"),
        "ended_at": (started + timedelta(seconds=55)).isoformat().replace("+00:00", "Z"),
        "talk_s": 45,
        "disposition_code": "resolved",
        "held": False,
        "parties": [
            {"party": "agent", "recording_id": str(calls["wang"].recording_id("agent")), "media_type": "audio/ogg",
             "duration_ms": 45000, "size_bytes": 4000},
            {"party": "caller", "recording_id": str(calls["wang"].recording_id("caller")), "media_type": "audio/ogg",
             "duration_ms": 45000, "size_bytes": 4000},
        ],
    }
    voicemail = page["items"][0]
    assert (voicemail["agent"], voicemail["answered_at"], voicemail["talk_s"], [p["party"] for p in voicemail["parties"]]) == (None, None, 0, ["caller"])


async def test_each_filter_narrows_the_search(client: Any, acme: Tenant, floor: dict[str, Any]) -> None:
    calls: dict[str, RecordedCall] = floor["calls"]

    def named(*names: str) -> list[str]:
        return [str(calls[n].id) for n in names]

    # The caller: a substring of the name or of the customer reference, any case; % and _ are plain characters.
    assert await ids(client, acme, caller="wang") == named("wang")
    assert await ids(client, acme, caller="crm-") == named("smith", "wang")
    assert await ids(client, acme, caller="100%") == named("percent")
    assert await ids(client, acme, caller="%") == named("percent")
    assert await ids(client, acme, caller="_") == []
    assert await ids(client, acme, agent_id=str(floor["ann"].id)) == named("percent", "wang")
    assert await ids(client, acme, queue_id=str(floor["sales"])) == named("smith")
    # Times are inclusive; without a zone they are UTC.
    two_days_ago = T0 - timedelta(days=2)
    assert await ids(client, acme, started_from=two_days_ago.isoformat()) == named("voicemail", "percent", "smith")
    assert await ids(client, acme, started_to=two_days_ago.isoformat()) == named("smith", "wang")
    assert await ids(client, acme, started_from=two_days_ago.replace(tzinfo=None).isoformat(),
                     started_to=(T0 - timedelta(days=1)).astimezone(ZoneInfo("Asia/Shanghai")).isoformat()) == named("percent", "smith")
    assert await ids(client, acme, disposition="callback") == named("smith")
    # Talk time: answered to ended, whole seconds; a call never answered talked 0 s.
    assert await ids(client, acme, min_talk_s=45, max_talk_s=120) == named("percent", "wang")
    assert await ids(client, acme, min_talk_s=46) == named("percent", "smith")
    assert await ids(client, acme, max_talk_s=0) == named("voicemail")
    assert await ids(client, acme, caller="wang", agent_id=str(floor["bob"].id)) == []
    hold = await client.put(f"/api/v1/calls/{calls['smith'].id}/legal-hold", json={"reason": "dispute 7"}, headers=acme.headers())
    assert hold.status_code == 200, hold.text
    assert await ids(client, acme, held="true") == named("smith")
    assert await ids(client, acme, held="false") == named("voicemail", "percent", "wang")
    response = await client.get(SEARCH, params={"held": "true"}, headers=acme.headers())
    assert response.json()["items"][0]["held"] is True


async def test_pages_follow_the_cursor_without_repeating_or_skipping_a_call(client: Any, acme: Tenant) -> None:
    same_second = T0 - timedelta(hours=2)
    made = [await recorded_call(acme, started_at=same_second, caller_name=f"Twin {i}") for i in range(3)]
    made += [await recorded_call(acme, started_at=T0 - timedelta(hours=3 + i), caller_name=f"Early {i}") for i in range(4)]
    expected = [str(c.id) for c in sorted(made[:3], key=lambda c: c.id.hex, reverse=True)] + [str(c.id) for c in made[3:]]
    seen, cursor, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(SEARCH, params=params, headers=acme.headers())).json()
        seen += [item["call_id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # A call arriving meanwhile goes on the first page, not into the middle of this walk.
        if pages == 1:
            await recorded_call(acme, started_at=T0, caller_name="Newcomer")
    assert seen == expected
    assert pages == 4


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"started_from": "2027-02-02T00:00:00Z", "started_to": "2027-02-01T00:00:00Z"}, "invalid_time_range"),
        ({"min_talk_s": -1}, "invalid_duration_range"),
        ({"max_talk_s": -5}, "invalid_duration_range"),
        ({"min_talk_s": 61, "max_talk_s": 60}, "invalid_duration_range"),
        ({"qa_status": "reviewed"}, "invalid_qa_status"),
        ({"qa_status": "evaluated"}, "qa_status_unavailable"),
        ({"cursor": "not-a-cursor"}, "invalid_cursor"),
        ({"cursor": "WyJ4IiwgInkiXQ"}, "invalid_cursor"),
        ({"limit": 0}, "invalid_limit"),
        ({"limit": 201}, "invalid_limit"),
        ({"caller": "x" * 201}, "invalid_filter"),
        ({"agent_id": "not-a-uuid"}, "validation_error"),
        ({"started_from": "yesterday"}, "validation_error"),
    ],
)
async def test_bad_filters_answer_a_problem_with_a_stable_code(
    client: Any, acme: Tenant, params: dict[str, Any], code: str, unregistered_qa: None
) -> None:
    response = await client.get(SEARCH, params=params, headers=acme.headers())
    assert (response.status_code, response.json()["code"]) == (400, code), response.text


@pytest.fixture
def unregistered_qa() -> Iterator[None]:
    """No QA package registered its filters (restored afterwards, whatever the test did)."""
    saved = dict(hooks.qa_status_filters)
    hooks.qa_status_filters.clear()
    yield
    hooks.qa_status_filters.clear()
    hooks.qa_status_filters.update(saved)


async def test_the_qa_status_filter_uses_the_predicates_the_qa_package_registers(
    client: Any, acme: Tenant, floor: dict[str, Any], unregistered_qa: None
) -> None:
    calls: dict[str, RecordedCall] = floor["calls"]
    # Stand-in predicates over the searched call, as the QA package would give over its evaluations.
    hooks.register_qa_status_filter("evaluated", lambda tenant_id: Call.disposition_code.is_not(None))
    assert await ids(client, acme, qa_status="evaluated") == [str(calls[n].id) for n in ("smith", "wang")]
    response = await client.get(SEARCH, params={"qa_status": "unevaluated"}, headers=acme.headers())
    assert (response.status_code, response.json()["code"]) == (400, "qa_status_unavailable")
    hooks.register_qa_status_filter("unevaluated", lambda tenant_id: Call.disposition_code.is_(None))
    assert await ids(client, acme, qa_status="unevaluated") == [str(calls[n].id) for n in ("voicemail", "percent")]
    with pytest.raises(ValueError):
        hooks.register_qa_status_filter("reviewed", lambda tenant_id: Call.disposition_code.is_(None))


async def test_the_search_never_shows_another_tenants_calls_and_needs_recordings_read(
    client: Any, acme: Tenant, globex: Tenant, floor: dict[str, Any]
) -> None:
    foreign: RecordedCall = floor["foreign"]
    body = (await client.get(SEARCH, params={"caller": "crm-100"}, headers=acme.headers())).text
    assert str(foreign.id) not in body and str(globex.id) not in body
    assert await ids(client, acme, caller="globex") == []
    assert await ids(client, globex) == [str(foreign.id)]
    # A supervisor and a QA reviewer hold recordings.read; an agent does not.
    assert len(await ids(client, acme, role="supervisor")) == 4
    assert len(await ids(client, acme, role="qa_reviewer")) == 4
    ann = floor["ann"]
    response = await client.get(SEARCH, headers=acme.headers("agent", user_id=ann.user_id))
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert (await client.get(SEARCH)).status_code == 401
