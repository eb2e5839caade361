"""A call's lifecycle through the API: caller widget, answer, hang-up, recordings,
and the call-detail record derived from the event log."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from litestar import Litestar
from tenants_support import Admin, MakeAgent
from httpx import AsyncClient
from sqlalchemy import select
from tenants_support import OFFER, InProcessMedia
from test_acd import go_ready, make_queue, place_call
from test_sockets import Socket

from kefu.platform.models import AuditEntry
from kefu.platform.runtime import Runtime
from kefu.tenants.reconnect import RECONNECT_GRACE_S
from kefu.tenants.clock import ManualTimers
from kefu.tenants.services import ContactCenter


async def test_answered_call_has_exact_events_cdr_and_recordings(
    runtime: Runtime, cc: ContactCenter, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers, media: InProcessMedia
) -> None:
    ann = await make_agent(acme, "Ann")
    queue_id, widget = await make_queue(client, acme, [ann])
    await go_ready(client, ann)
    call = await place_call(client, widget, "Li Lei")
    call_id = call["call_id"]
    assert call["answer_sdp"] == "v=0\r\ns=answer-caller\r\n"
    caller = {"X-Caller-Token": call["caller_token"]}
    assert (await client.get(f"/api/v1/widget/calls/{call_id}", headers=caller)).json()["status"] == "ringing"

    await timers.advance(3)
    answered = await client.post(f"/api/v1/agent/calls/{call_id}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)
    assert answered.json() == {"answer_sdp": "v=0\r\ns=answer-agent\r\n"}
    assert uuid.UUID(call_id) in media.bridged
    assert (await client.get(f"/api/v1/widget/calls/{call_id}", headers=caller)).json()["status"] == "connected"
    assert (await client.get("/api/v1/agent/state", headers=ann.headers)).json()["state"] == "on_call"

    await timers.advance(20)
    assert await cc.acd.renew_lease(tenant_id=acme.tenant_id, agent_id=ann.agent_id)  # the desktop's ping
    await timers.advance(22.5)
    assert (await client.post(f"/api/v1/agent/calls/{call_id}/hangup", headers=ann.headers)).status_code == 204
    assert (await client.get("/api/v1/agent/state", headers=ann.headers)).json()["state"] == "available"
    assert (await client.get(f"/api/v1/widget/calls/{call_id}", headers=caller)).json() == {"call_id": call_id, "status": "ended", "end_reason": "agent_hangup"}

    events = (await client.get(f"/api/v1/calls/{call_id}/events", headers=acme.headers)).json()
    assert [(e["seq"], e["type"], e["actor"], e["at"]) for e in events] == [
        (1, "created", "caller", "2026-11-23T09:00:00Z"),
        (2, "queued", "acd", "2026-11-23T09:00:00Z"),
        (3, "offered", "acd", "2026-11-23T09:00:00Z"),
        (4, "answered", f"user:{ann.user_id}", "2026-11-23T09:00:03Z"),
        (5, "recording_started", "media", "2026-11-23T09:00:03Z"),
        (6, "ended", f"user:{ann.user_id}", "2026-11-23T09:00:45.500000Z"),
        (7, "recording_saved", "media", "2026-11-23T09:00:45.500000Z"),
        (8, "recording_saved", "media", "2026-11-23T09:00:45.500000Z"),
    ]
    assert events[3]["data"] == {"agent_id": str(ann.agent_id), "ring_s": 3.0}
    assert events[5]["data"] == {"reason": "agent_hangup", "previous_status": "connected"}

    detail = (await client.get(f"/api/v1/calls/{call_id}", headers=acme.headers)).json()
    recordings = detail.pop("recordings")
    assert detail == {
        "call_id": call_id, "caller_name": "Li Lei", "entry_point_id": detail["entry_point_id"], "queue_id": queue_id,
        "queue_name": "Support", "agent_id": str(ann.agent_id), "agent_name": "Ann", "status": "ended",
        "queued_at": "2026-11-23T09:00:00Z", "answered_at": "2026-11-23T09:00:03Z", "ended_at": "2026-11-23T09:00:45.500000Z",
        "wait_s": 3.0, "talk_s": 42.5, "end_reason": "agent_hangup", "offers": 1,
    }
    assert [(r["party"], r["duration_ms"], r["media_type"]) for r in recordings] == [("agent", 42500, "audio/ogg"), ("caller", 42500, "audio/ogg")]
    assert (await client.get(f"/api/v1/calls/{call_id}/recordings", headers=acme.headers)).json() == recordings

    played = await client.get(recordings[1]["media_url"], headers=acme.headers)
    assert (played.status_code, played.headers["content-type"], played.content) == (200, "audio/ogg", b"OggS" + b"caller" * 10)
    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:
        audit = [(a.action, a.target) for a in await session.scalars(select(AuditEntry).where(AuditEntry.action == "recording.played"))]
    assert audit == [("recording.played", f"recording:{recordings[1]['id']}")]

    page = (await client.get("/api/v1/calls", headers=acme.headers)).json()
    assert (page["total"], [c["id"] for c in page["items"]]) == (1, [call_id])


async def test_agents_see_only_their_own_calls(client: AsyncClient, acme: Admin, make_agent: MakeAgent) -> None:
    ann, ben = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    _queue_id, widget = await make_queue(client, acme, [ann])
    await go_ready(client, ann)
    call = await place_call(client, widget, "Li Lei")
    await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)
    await client.post(f"/api/v1/agent/calls/{call['call_id']}/hangup", headers=ann.headers)
    recordings = (await client.get(f"/api/v1/calls/{call['call_id']}/recordings", headers=ann.headers)).json()
    assert len(recordings) == 2
    assert [c["id"] for c in (await client.get("/api/v1/calls", headers=ann.headers)).json()["items"]] == [call["call_id"]]
    assert (await client.get("/api/v1/calls", headers=ben.headers)).json() == {"items": [], "total": 0, "limit": 50, "offset": 0}
    for url in (f"/api/v1/calls/{call['call_id']}", f"/api/v1/calls/{call['call_id']}/events", recordings[0]["media_url"]):
        response = await client.get(url, headers=ben.headers)
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), url


async def test_caller_hanging_up_in_queue_is_an_abandoned_call(client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers) -> None:
    ann = await make_agent(acme, "Ann")
    _queue_id, widget = await make_queue(client, acme, [ann])
    call = await place_call(client, widget, "Li Lei")
    await timers.advance(7)
    wrong = await client.post(f"/api/v1/widget/calls/{call['call_id']}/hangup", headers={"X-Caller-Token": "guess"})
    assert (wrong.status_code, wrong.json()["code"]) == (404, "not_found")
    ok = await client.post(f"/api/v1/widget/calls/{call['call_id']}/hangup", headers={"X-Caller-Token": call["caller_token"]})
    assert ok.status_code == 204
    detail = (await client.get(f"/api/v1/calls/{call['call_id']}", headers=acme.headers)).json()
    assert (detail["status"], detail["end_reason"], detail["wait_s"], detail["talk_s"], detail["agent_id"], detail["recordings"]) == (
        "ended", "abandoned", 7.0, None, None, [],
    )
    again = await client.post(f"/api/v1/widget/calls/{call['call_id']}/hangup", headers={"X-Caller-Token": call["caller_token"]})
    assert again.status_code == 204  # idempotent
    assert [e["type"] for e in (await client.get(f"/api/v1/calls/{call['call_id']}/events", headers=acme.headers)).json()] == ["created", "queued", "ended"]


async def test_caller_ringing_hangup_frees_the_agent(client: AsyncClient, acme: Admin, make_agent: MakeAgent) -> None:
    ann = await make_agent(acme, "Ann")
    _queue_id, widget = await make_queue(client, acme, [ann])
    await go_ready(client, ann)
    call = await place_call(client, widget, "Li Lei")
    await client.post(f"/api/v1/widget/calls/{call['call_id']}/hangup", headers={"X-Caller-Token": call["caller_token"]})
    state = (await client.get("/api/v1/agent/state", headers=ann.headers)).json()
    assert (state["state"], state["current_call_id"]) == ("available", None)


async def test_a_dropped_leg_ends_the_call(client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: InProcessMedia, timers: ManualTimers) -> None:
    ann = await make_agent(acme, "Ann")
    _queue_id, widget = await make_queue(client, acme, [ann])
    await go_ready(client, ann)
    call = await place_call(client, widget, "Li Lei")
    await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)
    await timers.advance(10)
    await media.drop_leg(uuid.UUID(call["call_id"]), "caller")
    # The caller gets the reconnect grace period to come back; it does not, so the call ends when it runs out.
    still = (await client.get(f"/api/v1/calls/{call['call_id']}", headers=acme.headers)).json()
    assert still["status"] == "connected"
    await timers.advance(RECONNECT_GRACE_S)
    detail = (await client.get(f"/api/v1/calls/{call['call_id']}", headers=acme.headers)).json()
    assert (detail["end_reason"], detail["talk_s"], len(detail["recordings"])) == ("caller_disconnected", 10.0 + RECONNECT_GRACE_S, 2)
    assert (await client.get("/api/v1/agent/state", headers=ann.headers)).json()["state"] == "available"


async def test_widget_bad_input(client: AsyncClient, acme: Admin, make_agent: MakeAgent, runtime: Runtime) -> None:
    _queue_id, widget = await make_queue(client, acme, [])
    cases = [
        ("/api/v1/widget/wk_nope/calls", {"caller_name": "A", "offer_sdp": OFFER}, 404, "not_found"),
        (f"/api/v1/widget/{widget}/calls", {"caller_name": " ", "offer_sdp": OFFER}, 400, "invalid_caller_name"),
        (f"/api/v1/widget/{widget}/calls", {"caller_name": "A", "offer_sdp": "hello"}, 400, "invalid_sdp"),
        (f"/api/v1/widget/{widget}/calls", {"caller_name": "A", "offer_sdp": OFFER + "m=audio bad\r\n"}, 400, "invalid_sdp"),
        (f"/api/v1/widget/{widget}/calls", {"caller_name": "A"}, 400, "validation_error"),
        (f"/api/v1/widget/{widget}/calls", {"caller_name": "A", "offer_sdp": OFFER, "tenant": "x"}, 400, "validation_error"),
    ]
    for url, body, status, code in cases:
        response = await client.post(url, json=body)
        assert (response.status_code, response.json()["code"]) == (status, code), (url, body)
    calls = (await client.get("/api/v1/calls", headers=acme.headers)).json()
    # Only the offer the media plane rejected created a call, ended as media_failed.
    assert [(c["status"], c["end_reason"]) for c in calls["items"]] == [("ended", "media_failed")]
    runtime.components.pop("media")
    unavailable = await client.post(f"/api/v1/widget/{widget}/calls", json={"caller_name": "A", "offer_sdp": OFFER})
    assert (unavailable.status_code, unavailable.json()["code"]) == (503, "media_unavailable")


async def test_answering_a_call_not_ringing_at_you(client: AsyncClient, acme: Admin, make_agent: MakeAgent) -> None:
    ann = await make_agent(acme, "Ann")
    _queue_id, widget = await make_queue(client, acme, [ann])
    call = await place_call(client, widget, "Li Lei")  # queued: nobody is ready
    response = await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    bad = await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": "nope"}, headers=ann.headers)
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_sdp")


async def test_caller_token_names_its_tenant_and_the_caller_endpoints_never_open_a_platform_session(
    app: Litestar, client: AsyncClient, acme: Admin, globex: Admin, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    _queue_id, widget = await make_queue(client, acme, [])
    call = await place_call(client, widget, "Li Lei")
    prefix, dot, secret = call["caller_token"].partition(".")
    assert (prefix, dot, len(secret) >= 43) == (acme.tenant_id.hex, ".", True)

    def no_platform_session(*, reason: str) -> None:
        raise AssertionError(f"platform session opened: {reason}")

    monkeypatch.setattr(runtime.db, "platform_session", no_platform_session)
    url = f"/api/v1/widget/calls/{call['call_id']}"
    own = await client.get(url, headers={"X-Caller-Token": call["caller_token"]})
    # Nobody staffs the queue: first in line, no expected wait.
    assert own.json() == {"call_id": call["call_id"], "status": "queued", "end_reason": None, "position": 1}
    socket = Socket(app, f"/ws/caller/{call['call_id']}", f"caller_token={call['caller_token']}")
    assert await socket.receive_json() == {"type": "call.state", "call_id": call["call_id"], "status": "queued"}
    await socket.close()
    for wrong in (f"{globex.tenant_id.hex}.{secret}", secret, f"nothex.{secret}", f"{acme.tenant_id.hex}.", "."):
        for method, path in (("GET", url), ("POST", f"{url}/hangup"), ("POST", f"{url}/callback")):
            response = await client.request(method, path, headers={"X-Caller-Token": wrong}, json={} if path.endswith("callback") else None)
            assert (response.status_code, response.json()["code"]) == (404, "not_found"), (wrong, method)
        refused = Socket(app, f"/ws/caller/{call['call_id']}", f"caller_token={wrong}")
        assert await refused.closed_with() == 4404
    hangup = await client.post(f"{url}/hangup", headers={"X-Caller-Token": call["caller_token"]})
    assert hangup.status_code == 204
    ended = await client.get(url, headers={"X-Caller-Token": call["caller_token"]})
    assert ended.json() == {"call_id": call["call_id"], "status": "ended", "end_reason": "abandoned"}


async def test_a_recording_keeps_the_media_type_the_media_plane_wrote(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: InProcessMedia, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PCMU caller is recorded as mu-law WAV: the call's recording says audio/wav, not Ogg."""
    ann = await make_agent(acme, "Ann")
    _queue_id, widget = await make_queue(client, acme, [ann])
    await go_ready(client, ann)
    call = await place_call(client, widget, "Li Lei")
    assert (await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)).status_code == 200
    end_call = media.end_call

    async def wav_caller(**kwargs: object) -> list:
        files = await end_call(**kwargs)  # type: ignore[arg-type]
        return [dataclasses.replace(f, media_type="audio/wav") if f.party == "caller" else f for f in files]

    monkeypatch.setattr(media, "end_call", wav_caller)
    assert (await client.post(f"/api/v1/agent/calls/{call['call_id']}/hangup", headers=ann.headers)).status_code == 204
    recordings = (await client.get(f"/api/v1/calls/{call['call_id']}/recordings", headers=acme.headers)).json()
    assert sorted((r["party"], r["media_type"]) for r in recordings) == [("agent", "audio/ogg"), ("caller", "audio/wav")]


async def test_a_disabled_agents_token_neither_answers_nor_hangs_up_and_changes_nothing(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: InProcessMedia
) -> None:
    ann, ben = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    _queue_id, widget = await make_queue(client, acme, [ann])
    await go_ready(client, ann)
    ringing = await place_call(client, widget, "Li Lei")
    disabled = await client.patch(f"/api/v1/users/{ann.user_id}", json={"status": "disabled"}, headers=acme.headers)
    assert disabled.status_code == 200, disabled.text
    refused = await client.post(f"/api/v1/agent/calls/{ringing['call_id']}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "user_disabled")
    caller = {"X-Caller-Token": ringing["caller_token"]}
    assert (await client.get(f"/api/v1/widget/calls/{ringing['call_id']}", headers=caller)).json()["status"] == "ringing"
    assert (uuid.UUID(ringing["call_id"]), "agent") not in media.legs  # no agent leg was negotiated

    # Ben answers a call of his own, then his account is disabled mid-call: the token no longer hangs up.
    _other_queue, other_widget = await make_queue(client, acme, [ben], name="Sales")
    await go_ready(client, ben)
    talking = await place_call(client, other_widget, "Han Mei")
    answered = await client.post(f"/api/v1/agent/calls/{talking['call_id']}/answer", json={"offer_sdp": OFFER}, headers=ben.headers)
    assert answered.status_code == 200, answered.text
    assert (await client.patch(f"/api/v1/users/{ben.user_id}", json={"status": "disabled"}, headers=acme.headers)).status_code == 200
    hangup = await client.post(f"/api/v1/agent/calls/{talking['call_id']}/hangup", headers=ben.headers)
    assert (hangup.status_code, hangup.json()["code"]) == (403, "user_disabled")
    detail = (await client.get(f"/api/v1/calls/{talking['call_id']}", headers=acme.headers)).json()
    assert (detail["status"], detail["end_reason"]) == ("connected", None)
