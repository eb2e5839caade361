"""IVR flows on live calls: entry points mapped to published flows, menus answered by
the caller's keys, timeouts on the ACD's timers, business hours, HTTP lookups to a
real local server (answering, hanging, failing, garbage), voicemail tasks,
callbacks, transfers, goodbyes, a version kept for the whole call, and waits that
survive the loss of their timer."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import select, update
from sqlalchemy.util import await_only
from tenants_support import Admin, AgentSeat, InProcessMedia, MakeAgent, bearer, create_user
from test_acd import events_of, go_ready, place_call, state_of

from kefu.platform.runtime import Runtime
from kefu.tenants.clock import ManualClock, ManualTimers
from kefu.tenants.models import Call, IvrSession
from kefu.tenants.services import ContactCenter

PROMPT_MS = 1000


@dataclass
class IvrMedia(InProcessMedia):
    """The in-process media plane with prompts, recording switches and the caller's keys."""

    on_dtmf: Any = None
    prompts: list[tuple[uuid.UUID, str, str]] = field(default_factory=list)
    stopped: list[uuid.UUID] = field(default_factory=list)
    recording: set[tuple[uuid.UUID, str]] = field(default_factory=set)
    parts: list[tuple[uuid.UUID, list[dict[str, str]]]] = field(default_factory=list)

    async def play_prompt(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str, prompt_id: str, file: str | None = None,
                          text: str | None = None, locale: str = "en-US", voice: str | None = None, loop: bool = False,
                          parts: list[dict[str, str]] | None = None) -> int:
        assert (call_id, party) in self.legs, "a prompt for a party without a leg"
        if parts is not None:
            self.parts.append((call_id, parts))
            text = " ".join(part.get("text", "<audio>") for part in parts)
        self.prompts.append((call_id, text or "", locale))
        return PROMPT_MS

    async def stop_prompt(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str) -> bool:
        self.stopped.append(call_id)
        return True

    async def record_party(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str, enabled: bool = True) -> None:
        self.recording.add((call_id, party))

    async def press(self, call_id: str, keys: str) -> None:
        key = uuid.UUID(call_id)
        for digit in keys:
            await self.on_dtmf(self.tenant_of[key], key, "caller", digit)

    def said(self, call_id: str) -> list[str]:
        return [text for call, text, _ in self.prompts if call == uuid.UUID(call_id)]


@pytest.fixture
def media(runtime: Runtime, clock: ManualClock) -> IvrMedia:
    return IvrMedia(runtime.settings.recordings_dir, clock)


async def new_queue(client: AsyncClient, admin: Admin, name: str, seats: list[AgentSeat] = ()) -> str:  # type: ignore[assignment]
    queue = await client.post("/api/v1/queues", json={"name": name}, headers=admin.headers)
    assert queue.status_code == 201, queue.text
    queue_id = queue.json()["id"]
    if seats:
        await client.put(f"/api/v1/queues/{queue_id}/members", json={"agent_ids": [str(s.agent_id) for s in seats]}, headers=admin.headers)
    return queue_id


async def publish(client: AsyncClient, admin: Admin, name: str, document: dict[str, Any]) -> str:
    flow = await client.post("/api/v1/ivr/flows", json={"name": name, "document": document}, headers=admin.headers)
    assert flow.status_code == 201, flow.text
    published = await client.post(f"/api/v1/ivr/flows/{flow.json()['id']}/publish", headers=admin.headers)
    assert published.status_code == 201, published.text
    return flow.json()["id"]


async def entry_with_flow(client: AsyncClient, admin: Admin, queue_id: str, flow_id: str | None) -> str:
    entry = await client.post("/api/v1/entry-points", json={"name": f"Line {uuid.uuid4().hex[:6]}", "queue_id": queue_id, "flow_id": flow_id},
                              headers=admin.headers)
    assert entry.status_code == 201, entry.text
    assert entry.json()["flow_id"] == flow_id
    return entry.json()["widget_key"]


def say(text: str) -> dict[str, Any]:
    return {"en": {"text": text}}


def three_levels(general: str, printers: str, laptops: str, skill: str) -> dict[str, Any]:
    return {"start": "welcome", "nodes": {
        "welcome": {"type": "play", "prompt": say("Welcome to Acme."), "exits": {"next": "main"}},
        "main": {"type": "menu", "prompt": say("Sales, press 1. Support, press 2."), "timeout_s": 5, "retries": 1,
                 "exits": {"1": "sales", "2": "support", "invalid": "general", "no_input": "general"}},
        "sales": {"type": "queue", "queue_id": general},
        "support": {"type": "menu", "prompt": say("Hardware, press 1. Software, press 2."),
                    "exits": {"1": "hardware", "2": "general", "*": "main", "invalid": "general", "no_input": "general"}},
        "hardware": {"type": "menu", "prompt": say("Printers, press 1. Laptops, press 2."),
                     "exits": {"1": "printers", "2": "laptops", "invalid": "general", "no_input": "general"}},
        "printers": {"type": "queue", "queue_id": printers, "priority": 7,
                     "skills": [{"skill_id": skill, "min_proficiency": 2, "required": True}]},
        "laptops": {"type": "queue", "queue_id": laptops},
        "general": {"type": "queue", "queue_id": general},
    }}


async def call_row(runtime: Runtime, tenant_id: uuid.UUID, call_id: str) -> Call:
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == uuid.UUID(call_id)))
        assert call is not None
        return call


async def ivr_session(runtime: Runtime, tenant_id: uuid.UUID, call_id: str) -> IvrSession | None:
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        return await session.scalar(select(IvrSession).where(IvrSession.tenant_id == tenant_id, IvrSession.call_id == uuid.UUID(call_id)))


async def test_a_caller_walks_three_menus_by_keys_into_the_right_queue_with_its_priority_and_skills(
    client: AsyncClient, runtime: Runtime, acme: Admin, make_agent: MakeAgent, media: IvrMedia,
) -> None:
    ann = await make_agent(acme, "Ann")
    skill = (await client.post("/api/v1/skills", json={"name": "printers"}, headers=acme.headers)).json()["id"]
    await client.put(f"/api/v1/agents/{ann.agent_id}/skills", json={"skills": [{"skill_id": skill, "proficiency": 3}]}, headers=acme.headers)
    general = await new_queue(client, acme, "General")
    printers = await new_queue(client, acme, "Printers", [ann])
    laptops = await new_queue(client, acme, "Laptops")
    flow_id = await publish(client, acme, "Main", three_levels(general, printers, laptops, skill))
    key = await entry_with_flow(client, acme, general, flow_id)
    await go_ready(client, ann)

    call = await place_call(client, key, "Carol")
    row = await call_row(runtime, acme.tenant_id, call["call_id"])
    assert (row.status, row.queue_id) == ("ivr", None) and row.ivr_flow_version_id is not None
    assert media.said(call["call_id"]) == ["Welcome to Acme. Sales, press 1. Support, press 2."]

    await media.press(call["call_id"], "2")
    await media.press(call["call_id"], "1")
    assert media.said(call["call_id"])[-1] == "Printers, press 1. Laptops, press 2."
    await media.press(call["call_id"], "1")

    row = await call_row(runtime, acme.tenant_id, call["call_id"])
    assert (str(row.queue_id), row.priority, row.status) == (printers, 7, "ringing")
    assert row.skills == [{"skill_id": skill, "min_proficiency": 2, "required": True}]
    assert (await state_of(client, ann))["state"] == "ringing"
    assert await ivr_session(runtime, acme.tenant_id, call["call_id"]) is None
    assert len(media.stopped) == 3  # each key interrupted the prompt playing

    log = [(e["type"], e["data"].get("node"), e["data"].get("exit")) for e in await events_of(client, acme, call["call_id"])
           if e["type"].startswith("ivr_")]
    assert log == [
        ("ivr_started", None, None),
        ("ivr_entered", "welcome", None), ("ivr_left", "welcome", "next"), ("ivr_entered", "main", None),
        ("ivr_left", "main", "2"), ("ivr_entered", "support", None),
        ("ivr_left", "support", "1"), ("ivr_entered", "hardware", None),
        ("ivr_left", "hardware", "1"), ("ivr_entered", "printers", None), ("ivr_finished", "printers", None),
    ]


async def test_silence_and_wrong_keys_follow_the_menus_retries_and_exits(
    client: AsyncClient, runtime: Runtime, acme: Admin, media: IvrMedia, timers: ManualTimers,
) -> None:
    general = await new_queue(client, acme, "General")
    printers = await new_queue(client, acme, "Printers")
    skill = (await client.post("/api/v1/skills", json={"name": "printers"}, headers=acme.headers)).json()["id"]
    key = await entry_with_flow(client, acme, general, await publish(client, acme, "Main", three_levels(general, printers, printers, skill)))

    call = await place_call(client, key, "Dan")
    # The timeout counts from the end of the prompt: nothing happens before it.
    await timers.advance(PROMPT_MS / 1000 + 4.9)
    assert len(media.said(call["call_id"])) == 1
    await timers.advance(0.2)
    assert media.said(call["call_id"])[-1] == "Sales, press 1. Support, press 2."  # asked again (one retry)
    await timers.advance(PROMPT_MS / 1000 + 5)
    row = await call_row(runtime, acme.tenant_id, call["call_id"])
    assert (str(row.queue_id), row.status) == (general, "queued")  # no_input exit

    wrong = await place_call(client, key, "Eve")
    await media.press(wrong["call_id"], "9")  # not an option: asked again
    assert (await call_row(runtime, acme.tenant_id, wrong["call_id"])).status == "ivr"
    await media.press(wrong["call_id"], "2*")  # support, then * back to the main menu
    assert media.said(wrong["call_id"])[-1] == "Sales, press 1. Support, press 2."
    await media.press(wrong["call_id"], "7")
    await media.press(wrong["call_id"], "8")  # second wrong key: the invalid exit
    assert str((await call_row(runtime, acme.tenant_id, wrong["call_id"])).queue_id) == general


async def test_collected_digits_with_terminator_and_inter_digit_timeout_become_a_variable(
    client: AsyncClient, runtime: Runtime, acme: Admin, media: IvrMedia, timers: ManualTimers,
) -> None:
    general = await new_queue(client, acme, "General")
    flow = {"start": "account", "nodes": {
        "account": {"type": "collect", "prompt": say("Your account number, then hash."), "variable": "account", "min_length": 4,
                    "max_length": 8, "timeout_s": 3, "retries": 0, "exits": {"done": "confirm", "invalid": "sorry", "no_input": "sorry"}},
        "confirm": {"type": "play", "prompt": say("Account {account}, thank you."), "exits": {"next": "q"}},
        "q": {"type": "queue", "queue_id": general},
        "sorry": {"type": "hangup", "prompt": say("Sorry, goodbye.")},
    }}
    key = await entry_with_flow(client, acme, general, await publish(client, acme, "Collect", flow))
    call = await place_call(client, key, "Fay")
    await media.press(call["call_id"], "12")
    await timers.advance(2.5)  # less than the timeout after the last key
    await media.press(call["call_id"], "34#")
    assert media.said(call["call_id"])[-1] == "Account 1234, thank you."
    assert (await call_row(runtime, acme.tenant_id, call["call_id"])).status == "queued"

    short = await place_call(client, key, "Gus")
    await media.press(short["call_id"], "12")
    await timers.advance(3.1)  # the caller stopped: "12" is too short -> invalid -> goodbye, then the call ends
    assert media.said(short["call_id"])[-1] == "Sorry, goodbye."
    assert (await call_row(runtime, acme.tenant_id, short["call_id"])).status == "ivr"
    await timers.advance(PROMPT_MS / 1000 + 0.5)
    row = await call_row(runtime, acme.tenant_id, short["call_id"])
    assert (row.status, row.end_reason) == ("ended", "ivr_completed")
    assert await ivr_session(runtime, acme.tenant_id, short["call_id"]) is None
    assert uuid.UUID(short["call_id"]) in media.ended


async def test_after_hours_the_caller_leaves_a_voicemail_that_is_a_task_of_the_queue(
    client: AsyncClient, runtime: Runtime, acme: Admin, make_agent: MakeAgent, media: IvrMedia, cc: ContactCenter,
) -> None:
    ann = await make_agent(acme, "Ann")
    bob = await make_agent(acme, "Bob")
    general = await new_queue(client, acme, "General", [ann])
    other = await new_queue(client, acme, "Other", [bob])
    holiday = {"date": "2026-11-23", "name": "Founders' day", "hours": []}
    schedule = (await client.post("/api/v1/schedules", json={"name": "Office", "time_zone": "UTC", "weekly": {"mon": [["08:00", "18:00"]]},
                                                              "holidays": [holiday]}, headers=acme.headers)).json()
    assert schedule.get("id"), schedule
    flow = {"start": "hours", "nodes": {
        "hours": {"type": "hours", "schedule_id": schedule["id"], "exits": {"open": "q", "closed": "vm", "holiday": "closed_today"}},
        "closed_today": {"type": "play", "prompt": say("We are closed today for a holiday."), "exits": {"next": "vm"}},
        "q": {"type": "queue", "queue_id": general},
        "vm": {"type": "voicemail", "queue_id": general},
    }}
    key = await entry_with_flow(client, acme, other, await publish(client, acme, "Hours", flow))
    call = await place_call(client, key, "Hal")  # Monday 09:00, but a holiday
    row = await call_row(runtime, acme.tenant_id, call["call_id"])
    assert (row.status, str(row.queue_id)) == ("voicemail", general)
    assert media.said(call["call_id"]) == ["We are closed today for a holiday. Please leave your message now. Hang up when you are done."]
    assert (uuid.UUID(call["call_id"]), "caller") in media.recording
    media.bridged.setdefault(uuid.UUID(call["call_id"]), media.clock())  # the caller's message is recorded
    await media.drop_leg(uuid.UUID(call["call_id"]), "caller")
    row = await call_row(runtime, acme.tenant_id, call["call_id"])
    assert (row.status, row.end_reason) == ("ended", "voicemail")

    listed = (await client.get("/api/v1/voicemails", headers=acme.headers)).json()
    assert [(v["call_id"], v["queue_name"], v["caller_name"], v["status"]) for v in listed] == [(call["call_id"], "General", "Hal", "new")]
    assert listed[0]["media_url"] is not None
    # Ann (a member of General) sees and hears it; Bob (Other) neither.
    assert [v["id"] for v in (await client.get("/api/v1/voicemails", headers=ann.headers)).json()] == [listed[0]["id"]]
    assert (await client.get(listed[0]["media_url"], headers=ann.headers)).status_code == 200
    assert (await client.get("/api/v1/voicemails", headers=bob.headers)).json() == []
    assert (await client.get(listed[0]["media_url"], headers=bob.headers)).status_code == 404
    assert (await client.post(f"/api/v1/voicemails/{listed[0]['id']}/done", headers=bob.headers)).status_code == 404
    done = await client.post(f"/api/v1/voicemails/{listed[0]['id']}/done", headers=ann.headers)
    again = await client.post(f"/api/v1/voicemails/{listed[0]['id']}/done", headers=ann.headers)
    assert (done.status_code, done.json()["status"], again.json()["done_at"]) == (200, "done", done.json()["done_at"])
    assert (await client.get("/api/v1/voicemails", headers=acme.headers)).json() == []
    assert len((await client.get("/api/v1/voicemails?status=all", headers=acme.headers)).json()) == 1


@dataclass
class LookupServer:
    """A real HTTP server on loopback: /ok answers JSON, /hang never answers, /fail 500,
    /garbage is not JSON, /huge is 1 MiB, /moved redirects."""

    base: str
    requests: list[str]
    server: asyncio.Server


@pytest.fixture
async def lookup_server() -> Any:
    requests: list[str] = []
    hung: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        target = head.split(" ")[1]
        requests.append(target)
        path = target.split("?")[0]
        if path.startswith("/crm/hang"):
            hung.append(writer)
            return
        status, body = "200 OK", b""
        if path.startswith("/crm/ok/"):
            body = json.dumps({"customer": {"tier": "gold", "name": path.rsplit("/", 1)[1]}}).encode()
        elif path.startswith("/crm/fail"):
            status, body = "500 Internal Server Error", b'{"error": true}'
        elif path.startswith("/crm/garbage"):
            body = b"<html>not json</html>"
        elif path.startswith("/crm/huge"):
            body = b"[" + b"1," * (512 * 1024) + b"1]"
        elif path.startswith("/crm/moved"):
            status, body = "302 Found", b""
        headers = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        if status.startswith("302"):
            headers += "Location: http://127.0.0.1:1/elsewhere\r\n"
        writer.write(headers.encode() + b"\r\n" + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield LookupServer(f"http://127.0.0.1:{port}/crm/", requests, server)
    for writer in hung:
        writer.close()
    server.close()


def lookup_flow(general: str, vip: str, url: str) -> dict[str, Any]:
    return {"start": "look", "nodes": {
        "look": {"type": "http", "url": url, "timeout_s": 1, "retries": 1, "assign": {"tier": "customer.tier"},
                 "exits": {"ok": "tier", "fallback": "q"}},
        "tier": {"type": "branch", "on": "var:tier", "cases": [{"op": "equals", "value": "gold", "exit": "gold"}],
                 "exits": {"gold": "vip", "else": "q"}},
        "vip": {"type": "queue", "queue_id": vip, "priority": 9},
        "q": {"type": "queue", "queue_id": general},
    }}


@pytest.mark.parametrize("path,tries", [("ok/{caller_name}", 1), ("hang", 2), ("fail", 2), ("garbage", 2), ("huge", 2), ("moved", 2)])
async def test_a_lookup_answer_routes_the_call_and_every_failure_takes_the_fallback_exit(
    client: AsyncClient, runtime: Runtime, acme: Admin, media: IvrMedia, cc: ContactCenter, lookup_server: LookupServer, path: str, tries: int,
) -> None:
    general = await new_queue(client, acme, "General")
    vip = await new_queue(client, acme, "VIP")
    added = await client.post("/api/v1/ivr/lookup-addresses", json={"prefix": lookup_server.base}, headers=acme.headers)
    assert added.status_code == 201, added.text
    key = await entry_with_flow(client, acme, general, await publish(client, acme, "Lookup", lookup_flow(general, vip, lookup_server.base + path)))
    call = await place_call(client, key, "Ivy/../admin")
    await cc.calls.ivr.idle()
    row = await call_row(runtime, acme.tenant_id, call["call_id"])
    expected = vip if path.startswith("ok") else general
    assert (str(row.queue_id), row.status) == (expected, "queued")
    assert len(lookup_server.requests) == tries
    if path.startswith("ok"):
        assert lookup_server.requests == ["/crm/ok/Ivy%2F..%2Fadmin"]  # the caller's name cannot leave the address
        events = await events_of(client, acme, call["call_id"])
        assert ("ivr_left", "look", "ok") in [(e["type"], e["data"].get("node"), e["data"].get("exit")) for e in events]


async def test_a_lookup_address_removed_after_publishing_is_not_called(
    client: AsyncClient, runtime: Runtime, acme: Admin, media: IvrMedia, cc: ContactCenter, lookup_server: LookupServer,
) -> None:
    general = await new_queue(client, acme, "General")
    address = (await client.post("/api/v1/ivr/lookup-addresses", json={"prefix": lookup_server.base}, headers=acme.headers)).json()
    key = await entry_with_flow(client, acme, general, await publish(client, acme, "Lookup", lookup_flow(general, general, lookup_server.base + "ok/x")))
    await client.delete(f"/api/v1/ivr/lookup-addresses/{address['id']}", headers=acme.headers)
    call = await place_call(client, key, "Jo")
    await cc.calls.ivr.idle()
    assert (await call_row(runtime, acme.tenant_id, call["call_id"])).status == "queued"
    assert lookup_server.requests == []


async def test_a_lookup_cannot_climb_out_of_its_address(
    client: AsyncClient, acme: Admin, cc: ContactCenter, lookup_server: LookupServer,
) -> None:
    from kefu.tenants.ivr.machine import Lookup

    await client.post("/api/v1/ivr/lookup-addresses", json={"prefix": lookup_server.base + "ok/"}, headers=acme.headers)
    assert await cc.calls.ivr.fetch(acme.tenant_id, Lookup("n", lookup_server.base + "ok/../fail", "GET", None, 1)) is None
    assert await cc.calls.ivr.fetch(acme.tenant_id, Lookup("n", "http://[::1", "GET", None, 1)) is None
    assert lookup_server.requests == []
    answer = await cc.calls.ivr.fetch(acme.tenant_id, Lookup("n", lookup_server.base + "ok/x/../y", "GET", None, 1))
    assert answer == {"customer": {"tier": "gold", "name": "y"}} and lookup_server.requests == ["/crm/ok/y"]


async def test_a_call_keeps_the_version_it_started_with(client: AsyncClient, runtime: Runtime, acme: Admin, media: IvrMedia) -> None:
    general = await new_queue(client, acme, "General")
    other = await new_queue(client, acme, "Other")
    menu = lambda target: {"start": "m", "nodes": {  # noqa: E731
        "m": {"type": "menu", "prompt": say("Press 1."), "exits": {"1": "q", "invalid": "q", "no_input": "q"}},
        "q": {"type": "queue", "queue_id": target},
    }}
    flow_id = await publish(client, acme, "Versions", menu(general))
    key = await entry_with_flow(client, acme, general, flow_id)
    first = await place_call(client, key, "Kim")
    await client.put(f"/api/v1/ivr/flows/{flow_id}/draft", json={"document": menu(other)}, headers=acme.headers)
    assert (await client.post(f"/api/v1/ivr/flows/{flow_id}/publish", headers=acme.headers)).json()["number"] == 2
    second = await place_call(client, key, "Lee")
    await media.press(first["call_id"], "1")
    await media.press(second["call_id"], "1")
    one, two = [await call_row(runtime, acme.tenant_id, c["call_id"]) for c in (first, second)]
    assert (str(one.queue_id), str(two.queue_id)) == (general, other)
    assert one.ivr_flow_version_id != two.ivr_flow_version_id


async def test_transfers_to_another_flow_and_to_one_agent(
    client: AsyncClient, runtime: Runtime, acme: Admin, make_agent: MakeAgent, media: IvrMedia,
) -> None:
    ann = await make_agent(acme, "Ann")
    bob = await make_agent(acme, "Bob")
    general = await new_queue(client, acme, "General", [ann, bob])
    to_bob = await publish(client, acme, "Bob's line", {"start": "hi", "nodes": {
        "hi": {"type": "play", "prompt": say("Connecting you to Bob."), "exits": {"next": "bob"}},
        "bob": {"type": "transfer", "agent_id": str(bob.agent_id)},
    }})
    key = await entry_with_flow(client, acme, general, await publish(client, acme, "Front", {"start": "m", "nodes": {
        "m": {"type": "menu", "prompt": say("Press 1 for Bob."), "exits": {"1": "go", "invalid": "m", "no_input": "m"}},
        "go": {"type": "transfer", "flow_id": to_bob},
    }}))
    await go_ready(client, ann)
    await go_ready(client, bob)
    call = await place_call(client, key, "Max")
    await media.press(call["call_id"], "1")
    assert media.said(call["call_id"])[-1] == "Connecting you to Bob."
    row = await call_row(runtime, acme.tenant_id, call["call_id"])
    assert (row.status, row.agent_id, row.preferred_agent_id) == ("ringing", bob.agent_id, bob.agent_id)
    types = [e["type"] for e in await events_of(client, acme, call["call_id"])]
    assert "ivr_transferred" in types


async def test_a_callback_keeps_the_place_and_the_caller_leaves_after_the_prompt(
    client: AsyncClient, runtime: Runtime, acme: Admin, media: IvrMedia, timers: ManualTimers,
) -> None:
    general = await new_queue(client, acme, "General")
    key = await entry_with_flow(client, acme, general, await publish(client, acme, "Callback", {"start": "number", "nodes": {
        "number": {"type": "collect", "prompt": say("Your phone number, then hash."), "variable": "callback_number", "min_length": 5,
                   "max_length": 15, "exits": {"done": "cb", "invalid": "cb", "no_input": "cb"}},
        "cb": {"type": "callback"},
    }}))
    call = await place_call(client, key, "Ned")
    await media.press(call["call_id"], "8613800#")
    row = await call_row(runtime, acme.tenant_id, call["call_id"])
    assert (row.status, row.callback_number, str(row.queue_id)) == ("queued", "8613800", general)
    assert row.callback_requested_at is not None
    assert media.said(call["call_id"])[-1].startswith("Thank you. We will call you back")
    assert media.legs_of(uuid.UUID(call["call_id"])) == ["caller"]
    await timers.advance(PROMPT_MS / 1000 + 0.5)
    assert media.legs_of(uuid.UUID(call["call_id"])) == []  # the caller's leg closed; the call waits
    assert (await call_row(runtime, acme.tenant_id, call["call_id"])).status == "queued"


async def test_a_caller_hanging_up_in_the_ivr_ends_the_call_there(
    client: AsyncClient, runtime: Runtime, acme: Admin, media: IvrMedia, timers: ManualTimers,
) -> None:
    general = await new_queue(client, acme, "General")
    skill = (await client.post("/api/v1/skills", json={"name": "s"}, headers=acme.headers)).json()["id"]
    key = await entry_with_flow(client, acme, general, await publish(client, acme, "Main", three_levels(general, general, general, skill)))
    call = await place_call(client, key, "Oz")
    await media.drop_leg(uuid.UUID(call["call_id"]), "caller")
    row = await call_row(runtime, acme.tenant_id, call["call_id"])
    assert (row.status, row.end_reason) == ("ended", "ivr_abandoned")
    assert await ivr_session(runtime, acme.tenant_id, call["call_id"]) is None
    await timers.advance(60)  # the menu's timer finds nothing to do
    assert (await call_row(runtime, acme.tenant_id, call["call_id"])).status == "ended"


async def test_a_key_pressed_while_the_previous_step_is_still_being_stored_is_not_lost(
    client: AsyncClient, runtime: Runtime, acme: Admin, media: IvrMedia,
) -> None:
    """A key's transaction waits for a concurrent write to the call's IVR state (the
    previous step storing its deadline) and then goes on; on SQLite a read before its
    lock would have been made stale by that commit and the key dropped as "database is
    locked"."""
    general = await new_queue(client, acme, "General")
    skill = (await client.post("/api/v1/skills", json={"name": "s"}, headers=acme.headers)).json()["id"]
    key = await entry_with_flow(client, acme, general, await publish(client, acme, "Main", three_levels(general, general, general, skill)))
    call = await place_call(client, key, "Quin")
    call_id = uuid.UUID(call["call_id"])
    engine = runtime.db.engine.sync_engine
    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as writer:
        await writer.execute(
            update(IvrSession).where(IvrSession.tenant_id == acme.tenant_id, IvrSession.call_id == call_id)
            .values(updated_at=datetime.now(UTC))  # a real change: SQLite writes nothing for a no-op
        )
        committed = []

        def commit_when_the_key_locks_the_call(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            # Inside the key's transaction, just before it locks the call: the other write commits.
            if statement.lstrip().upper().startswith("UPDATE CALLS") and not committed:
                committed.append(statement)
                await_only(writer.commit())

        sqlalchemy_event.listen(engine, "before_cursor_execute", commit_when_the_key_locks_the_call)
        try:
            await media.press(call["call_id"], "2")
        finally:
            sqlalchemy_event.remove(engine, "before_cursor_execute", commit_when_the_key_locks_the_call)
    assert committed
    exits = [(e["data"]["node"], e["data"]["exit"]) for e in await events_of(client, acme, call["call_id"]) if e["type"] == "ivr_left"]
    assert exits == [("welcome", "next"), ("main", "2")]
    assert media.said(call["call_id"])[-1] == "Hardware, press 1. Software, press 2."


async def test_a_wait_whose_timer_died_with_its_process_is_ended_by_the_sweep(
    client: AsyncClient, runtime: Runtime, acme: Admin, media: IvrMedia, timers: ManualTimers, clock: ManualClock, cc: ContactCenter,
) -> None:
    general = await new_queue(client, acme, "General")
    skill = (await client.post("/api/v1/skills", json={"name": "s"}, headers=acme.headers)).json()["id"]
    key = await entry_with_flow(client, acme, general, await publish(client, acme, "Main", three_levels(general, general, general, skill)))
    call = await place_call(client, key, "Pia")
    await timers.close()  # the process that armed the timer is gone
    clock.now += timedelta(seconds=PROMPT_MS / 1000 + 5 + 1)
    await cc.acd.sweep()
    assert media.said(call["call_id"])[-1] == "Sales, press 1. Support, press 2."  # the timeout happened: asked again
    session = await ivr_session(runtime, acme.tenant_id, call["call_id"])
    assert session is not None and session.state["attempt"] == 2


async def test_entry_points_take_only_published_flows_of_their_own_tenant(
    client: AsyncClient, runtime: Runtime, acme: Admin, globex: Admin, media: IvrMedia,
) -> None:
    general = await new_queue(client, acme, "General")
    draft_only = (await client.post("/api/v1/ivr/flows", json={"name": "Draft"}, headers=acme.headers)).json()["id"]
    refused = await client.post("/api/v1/entry-points", json={"name": "Web", "queue_id": general, "flow_id": draft_only}, headers=acme.headers)
    assert (refused.status_code, refused.json()["code"]) == (409, "flow_not_published")
    theirs = await publish(client, globex, "Theirs", {"start": "bye", "nodes": {"bye": {"type": "hangup"}}})
    refused = await client.post("/api/v1/entry-points", json={"name": "Web", "queue_id": general, "flow_id": theirs}, headers=acme.headers)
    assert refused.status_code == 404
    entry = (await client.post("/api/v1/entry-points", json={"name": "Web", "queue_id": general}, headers=acme.headers)).json()
    assert entry["flow_id"] is None
    ours = await publish(client, acme, "Ours", {"start": "bye", "nodes": {"bye": {"type": "hangup", "prompt": say("Goodbye.")}}})
    patched = await client.patch(f"/api/v1/entry-points/{entry['id']}", json={"flow_id": ours, "priority": 3}, headers=acme.headers)
    assert (patched.status_code, patched.json()["flow_id"], patched.json()["priority"]) == (200, ours, 3)
    # The change reaches the next call at once (the widget directory forgets the tenant's keys).
    call = await place_call(client, entry["widget_key"], "Quinn")
    assert media.said(call["call_id"]) == ["Goodbye."]
    assert (await client.patch(f"/api/v1/entry-points/{entry['id']}", json={"flow_id": theirs}, headers=acme.headers)).status_code == 404
    assert (await client.patch(f"/api/v1/entry-points/{entry['id']}", json={"priority": 1000}, headers=acme.headers)).status_code == 400
    cleared = await client.patch(f"/api/v1/entry-points/{entry['id']}", json={"flow_id": None}, headers=acme.headers)
    assert cleared.json()["flow_id"] is None and cleared.json()["priority"] == 3
    call = await place_call(client, entry["widget_key"], "Rae")
    assert (await call_row(runtime, acme.tenant_id, call["call_id"])).status == "queued"
    supervisor = bearer(runtime, tenant_id=acme.tenant_id, user_id=await create_user(runtime, acme.tenant_id, "sup@acme.test"), roles={"supervisor"})
    assert (await client.patch(f"/api/v1/entry-points/{entry['id']}", json={"priority": 1}, headers=supervisor)).status_code == 403


async def test_statistics_count_node_entries_exits_outcomes_and_containment_from_the_log(
    client: AsyncClient, runtime: Runtime, acme: Admin, media: IvrMedia, timers: ManualTimers,
) -> None:
    general = await new_queue(client, acme, "General")
    survey = await publish(client, acme, "Survey", {"start": "ask", "nodes": {
        "ask": {"type": "menu", "prompt": say("Happy? Press 1."), "exits": {"1": "bye", "invalid": "bye", "no_input": "bye"}},
        "bye": {"type": "hangup", "prompt": say("Thanks.")},
    }})
    main = await publish(client, acme, "Main", {"start": "m", "nodes": {
        "m": {"type": "menu", "prompt": say("1 agent, 2 survey, 3 goodbye."), "retries": 0,
              "exits": {"1": "q", "2": "to_survey", "3": "bye", "invalid": "q", "no_input": "q"}},
        "q": {"type": "queue", "queue_id": general},
        "to_survey": {"type": "transfer", "flow_id": survey},
        "bye": {"type": "hangup"},
    }})
    key = await entry_with_flow(client, acme, general, main)
    for keys in ("1", "1", "2", "3", "9"):
        call = await place_call(client, key, "S")
        await media.press(call["call_id"], keys)
    survey_call = next(call_id for call_id, text, _locale in media.prompts if text == "Happy? Press 1.")
    await media.press(str(survey_call), "1")
    await timers.advance(5)  # goodbyes end their calls
    abandoning = await place_call(client, key, "A")
    await media.drop_leg(uuid.UUID(abandoning["call_id"]), "caller")
    waiting = await place_call(client, key, "W")  # still in the menu

    period = {"from": "2026-11-23T00:00:00+00:00", "to": "2026-11-24T00:00:00+00:00"}
    report = (await client.get("/api/v1/ivr/statistics", params=period, headers=acme.headers)).json()
    # 7 calls started in Main; containment: the goodbye, the survey's goodbye and the abandon.
    assert (report["calls"], report["contained"], report["containment_rate"]) == (7, 3, round(3 / 7, 4))
    flows = {f["name"]: f for f in report["flows"]}
    assert flows["Main"]["calls"] == 7 and flows["Survey"]["calls"] == 1
    assert flows["Main"]["outcomes"] == {"queue": 3, "voicemail": 0, "callback": 0, "transfer_agent": 0, "transfer_flow": 1,
                                         "completed": 1, "abandoned": 1, "failed": 0, "in_progress": 1}
    assert flows["Survey"]["outcomes"]["completed"] == 1 and flows["Survey"]["contained"] == 1
    nodes = {n["node"]: n for n in flows["Main"]["nodes"]}
    assert nodes["m"] == {"node": "m", "entries": 7, "exits": {"1": 2, "2": 1, "3": 1, "invalid": 1}}
    assert (nodes["q"]["entries"], nodes["bye"]["entries"], nodes["to_survey"]["entries"]) == (3, 1, 1)
    one = (await client.get(f"/api/v1/ivr/flows/{survey}/statistics", params=period, headers=acme.headers)).json()
    assert [f["name"] for f in one["flows"]] == ["Survey"]
    assert waiting["call_id"]  # the waiting call counts as in progress above
    empty = (await client.get("/api/v1/ivr/statistics", params={"from": "2026-11-20T00:00:00+00:00", "to": "2026-11-21T00:00:00+00:00"},
                              headers=acme.headers)).json()
    assert empty["calls"] == 0 and empty["containment_rate"] is None and {f["name"] for f in empty["flows"]} == {"Main", "Survey"}
    for bad in ({"from": "2026-11-24T00:00:00+00:00", "to": "2026-11-23T00:00:00+00:00"},
                {"from": "2026-09-01T00:00:00+00:00", "to": "2026-11-23T00:00:00+00:00"}):
        refused = await client.get("/api/v1/ivr/statistics", params=bad, headers=acme.headers)
        assert (refused.status_code, refused.json()["code"]) == (400, "invalid_period")
